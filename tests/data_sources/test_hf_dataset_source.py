"""data=hf_dataset: saved and local `datasets` datasets through the same decoding; the shard tool converts them."""

from __future__ import annotations

import io
import sys
from collections import Counter

import pytest
import torch

from lcm_exp.config.schema import DataConfig
from lcm_exp.data.hf_dataset_source import HFDatasetReader, load_hf_dataset
from lcm_exp.data.make_shards import main as make_shards
from lcm_exp.data.spec import DataSpec
from lcm_exp.data.webdataset_pipeline import build_webdataset
from lcm_exp.train.data import build_train_loader
from tests.data_sources.conftest import GOOD, R, gradient

datasets = pytest.importorskip("datasets")


def png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def saved(tmp_path):
    """A save_to_disk DatasetDict: GOOD images (Image feature), list captions, a score column, and one corrupt row."""
    images = [{"bytes": png(gradient(h, w, i)), "path": None} for i, (_, h, w, _) in enumerate(GOOD)]
    images.append({"bytes": b"garbage", "path": None})
    captions = [[cap, "alt"] for *_, cap in GOOD] + [["broken"]]
    features = datasets.Features({"picture": datasets.Image(), "prompt": [datasets.Value("string")],
                                  "score": datasets.Value("float32")})  # fmt: skip
    ds = datasets.Dataset.from_dict(
        {"picture": images, "prompt": captions, "score": [float(i) for i in range(len(images))]}, features=features
    )
    path = tmp_path / "saved"
    datasets.DatasetDict({"train": ds, "test": ds.select([0])}).save_to_disk(str(path))
    return path


def cfg(path, **kw) -> DataConfig:
    kw.setdefault("num_workers", 0)
    return DataConfig(source="hf_dataset", shards=None, path=str(path), image_column="picture",
                      caption_column="prompt", **kw)  # fmt: skip


def epoch(data_cfg, **kw) -> list[dict]:
    kw.setdefault("rank", 0)
    kw.setdefault("world_size", 1)
    return list(build_train_loader(data_cfg, resolution=R, batch_size=2, seed=0, **kw))


def pixels_by_caption(batches) -> dict[str, torch.Tensor]:
    return {c: p for b in batches for c, p in zip(b["captions"], b["pixel_values"], strict=True)}


def test_saved_dataset_trains_with_list_captions_and_counts_the_bad_row(saved):
    batches = epoch(cfg(saved, crop="center"))
    captions = [c for b in batches for c in b["captions"]]
    assert sorted(captions) == sorted(cap for *_, cap in GOOD), "caption_choice=first picks the first of the list"
    assert sum(b["num_skipped"] for b in batches) == 1
    reasons = Counter()
    for b in batches:
        reasons.update(b["skip_reasons"])
    assert reasons == {"bad_image": 1}
    sizes = {c: s.tolist() for b in batches for c, s in zip(b["captions"], b["original_size"], strict=True)}
    assert sizes == {cap: [h, w] for _, h, w, cap in GOOD}


def test_split_rank_split_and_filter_on_a_column(saved):
    assert len([c for b in epoch(cfg(saved, split="test")) for c in b["captions"]]) == 1
    halves = [{k for b in epoch(cfg(saved), rank=r, world_size=2) for k in b["keys"]} for r in range(2)]
    assert not halves[0] & halves[1] and len(halves[0] | halves[1]) == len(GOOD)
    filtered = cfg(saved)
    filtered.filters.min_aesthetic = 2.5
    filtered.filters.aesthetic_keys = ["score"]
    kept = [c for b in epoch(filtered) for c in b["captions"]]
    assert sorted(kept) == sorted(cap for i, (*_, cap) in enumerate(GOOD) if i >= 3)


def test_same_pixels_as_the_image_folder_route(saved, folder):
    from_hf = pixels_by_caption(epoch(cfg(saved, crop="center")))
    folder_cfg = DataConfig(source="imagefolder", shards=None, path=str(folder), crop="center", num_workers=0)
    from_folder = pixels_by_caption(epoch(folder_cfg))
    for cap in from_hf:
        torch.testing.assert_close(from_hf[cap], from_folder[cap], rtol=0, atol=0)


def test_local_imagefolder_layout_through_load_dataset(folder, tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    (folder / "broken.png").unlink()
    (folder / "nocaption.png").unlink()
    lines = [ln for ln in (folder / "metadata.jsonl").read_text().splitlines() if "broken" not in ln]
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    data = DataConfig(source="hf_dataset", shards=None, path=str(folder), num_workers=0)  # image + text columns
    captions = [c for b in epoch(data) for c in b["captions"]]
    assert sorted(captions) == sorted(cap for *_, cap in GOOD)


def test_clear_errors(saved, tmp_path, monkeypatch):
    ds = load_hf_dataset(str(saved))
    with pytest.raises(ValueError, match="data.image_column='image' is not a column"):
        HFDatasetReader(ds, name="x")
    with pytest.raises(ValueError, match=r"none of data.caption_keys \['txt', 'text', 'caption'\] is a column"):
        HFDatasetReader(ds, name="x", image_column="picture")
    with pytest.raises(ValueError, match="data.caption_column='title' is not a column"):
        HFDatasetReader(ds, name="x", image_column="picture", caption_column="title")
    with pytest.raises(KeyError, match="data.split='valid'"):
        load_hf_dataset(str(saved), split="valid")
    with pytest.raises((FileNotFoundError, RuntimeError), match="data.path=.no-such-user/no-such-set."):
        load_hf_dataset("no-such-user/no-such-set")
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'lcm_exp\[datasets\]'"):
        load_hf_dataset(str(saved))


def test_shard_tool_converts_a_dataset(saved, tmp_path, capsys):
    out = tmp_path / "shards"
    paths = make_shards(["--hf-dataset", str(saved), "--image-column", "picture", "--caption-column", "prompt",
                         "--out", str(out), "--samples-per-shard", "2", "--format", "png"])  # fmt: skip
    assert len(paths) == 3 and "data.shards=" in capsys.readouterr().out
    spec = DataSpec(shards=[str(p) for p in paths], resampled=False, num_workers=0, shuffle_buffer=0, crop="center")
    got = {c: (s.tolist(), p) for b in build_webdataset(spec, resolution=R, batch_size=8, seed=0)
           for c, s, p in zip(b["captions"], b["original_size"], b["pixel_values"], strict=True)}  # fmt: skip
    assert {c: s for c, (s, _) in got.items()} == {cap: [h, w] for _, h, w, cap in GOOD}, "the corrupt row is left out"
    from_source = pixels_by_caption(epoch(cfg(saved, crop="center")))
    for cap, (_, pixels) in got.items():
        torch.testing.assert_close(pixels, from_source[cap], rtol=0, atol=0)
