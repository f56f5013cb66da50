"""data=imagefolder: same samples and tensors as WebDataset shards of the same images, per-rank split, skips counted."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from lcm_exp.config.errors import ConfigError, DataError
from lcm_exp.config.schema import DataConfig
from lcm_exp.config.validate import validate_config
from lcm_exp.data.image_folder import image_folder_samples
from lcm_exp.data.image_folder_source import ImageFolderReader
from lcm_exp.data.make_shards import write_shards
from lcm_exp.train.data import build_train_loader
from tests.config.compose import compose_config
from tests.data_sources.conftest import GOOD, R, gradient

BATCH_FIELDS = {"pixel_values", "captions", "original_size", "crop_top_left", "keys", "num_skipped", "num_filtered",
                "skipped_by_shard", "skip_reasons", "skip_examples"}  # fmt: skip


def data_cfg(**kw) -> DataConfig:
    kw.setdefault("num_workers", 0)
    return DataConfig(**kw)


def one_epoch(cfg: DataConfig, *, batch_size=2, seed=0, rank=0, world_size=1) -> list[dict]:
    loader = build_train_loader(cfg, resolution=R, batch_size=batch_size, seed=seed, rank=rank, world_size=world_size)
    return list(loader)


def by_caption(batches) -> dict[str, tuple[torch.Tensor, list[int], list[int]]]:
    out = {}
    for b in batches:
        for i, cap in enumerate(b["captions"]):
            out[cap] = (b["pixel_values"][i], b["original_size"][i].tolist(), b["crop_top_left"][i].tolist())
    return out


def test_folder_gives_the_same_tensors_as_shards_of_it(folder, tmp_path):
    """Same decoder and ImageTransform: a center-cropped sample is bit-identical whichever source it comes from."""
    cfg = data_cfg(source="imagefolder", path=str(folder), shards=None, crop="center")
    from_folder = by_caption(one_epoch(cfg))
    shards = write_shards(image_folder_samples(folder), tmp_path / "shards", image_format="png")
    wds_cfg = replace(cfg, source="webdataset", shards=[str(p) for p in shards], resampled=False)
    from_shards = by_caption(one_epoch(wds_cfg))
    assert set(from_folder) == {cap for *_, cap in GOOD}
    assert set(from_shards) == set(from_folder)
    for cap, (pixels, size, crop) in from_folder.items():
        torch.testing.assert_close(pixels, from_shards[cap][0], rtol=0, atol=0)
        assert (size, crop) == (from_shards[cap][1], from_shards[cap][2])


def test_batch_fields_sizes_and_pixels_pinned(folder):
    cfg = data_cfg(source="imagefolder", path=str(folder), shards=None, crop="center", shuffle_buffer=0)
    batches = one_epoch(cfg, batch_size=3)
    assert all(set(b) == BATCH_FIELDS for b in batches)
    samples = by_caption(batches)
    # a.png is 40x48 (h x w): shorter side 40 -> 32, so 32 x int(32 * 48 / 40) = 32 x 38; center crop left = 3
    pixels, size, crop = samples["red one"]
    assert size == [40, 48] and crop == [0, 3]
    # c.png is 32x32: no resize, no crop; pixel (y=1, x=2) has red 5 * 2 = 10 -> 10 / 127.5 - 1
    pixels, size, crop = samples["blue three"]
    assert size == [32, 32] and crop == [0, 0]
    assert pixels.shape == (3, R, R) and pixels[0, 1, 2].item() == pytest.approx(10 / 127.5 - 1)
    assert pixels[1, 1, 2].item() == pytest.approx(5 / 127.5 - 1)
    keys = [k for b in batches for k in b["keys"]]
    assert keys == sorted(rel for rel, *_ in GOOD), "shuffle_buffer=0 keeps the sorted file order"


def test_bad_samples_are_skipped_and_counted(folder):
    batches = one_epoch(data_cfg(source="imagefolder", path=str(folder), shards=None))
    assert sum(b["num_skipped"] for b in batches) == 2
    reasons = Counter()
    for b in batches:
        reasons.update(b["skip_reasons"])
    assert reasons == {"bad_image": 1, "missing_caption": 1}
    assert sum(sum(b["skipped_by_shard"].values()) for b in batches) == 2
    assert len(by_caption(batches)) == len(GOOD)


def test_ranks_split_disjointly_and_epochs_reshuffle(folder):
    cfg = data_cfg(source="imagefolder", path=str(folder), shards=None)
    seen = [set(k for b in one_epoch(cfg, rank=r, world_size=2) for k in b["keys"]) for r in range(2)]
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == {rel for rel, *_ in GOOD}
    loader = build_train_loader(cfg, resolution=R, batch_size=8, seed=3, rank=0, world_size=1)
    epochs = [[k for b in loader for k in b["keys"]] for _ in range(3)]
    again = build_train_loader(cfg, resolution=R, batch_size=8, seed=3, rank=0, world_size=1)
    assert [k for b in again for k in b["keys"]] == epochs[0], "same seed, same order"
    assert len({tuple(e) for e in epochs}) > 1, "each epoch is a new permutation"
    assert all(sorted(e) == sorted(epochs[0]) for e in epochs)


def test_workers_split_the_rank_share_without_touching_the_global_rng(folder):
    cfg = data_cfg(source="imagefolder", path=str(folder), shards=None, num_workers=2)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    keys = [k for b in one_epoch(cfg, batch_size=1) for k in b["keys"]]
    assert sorted(keys) == sorted(rel for rel, *_ in GOOD), "every sample once across the two workers"
    assert torch.equal(torch.rand(3), expected), "the training step owns the global RNG (exact resume)"


def test_csv_metadata_columns_feed_filters_and_size(tmp_path):
    root = tmp_path / "csv"
    root.mkdir()
    for i in range(3):
        gradient(40, 40, i).save(root / f"{i}.png")
    (root / "metadata.csv").write_text(
        "file_name,prompt,aesthetic,original_height,original_width\n"
        "0.png,zero,6.5,400,300\n1.png,one,4.0,400,300\n2.png,two,7.0,,\n"
    )
    cfg = data_cfg(source="imagefolder", path=str(root), shards=None, caption_column="prompt")
    cfg.filters.min_aesthetic = 5.0
    batches = one_epoch(cfg, batch_size=4)
    samples = by_caption(batches)
    assert set(samples) == {"zero", "two"} and sum(b["num_filtered"] for b in batches) == 1
    assert samples["zero"][1] == [400, 300], "original size from the metadata columns"
    assert samples["two"][1] == [40, 40], "empty columns: the decoded image's size"


def test_txt_siblings_when_there_is_no_metadata(tmp_path):
    root = tmp_path / "txt"
    root.mkdir()
    gradient(32, 32, 0).save(root / "x.png")
    (root / "x.txt").write_bytes(b"caf\xe9 au lait\n")
    batch = one_epoch(data_cfg(source="imagefolder", path=str(root), shards=None))[0]
    assert batch["captions"] == ["caf\ufffd au lait"]


def test_folder_errors_name_the_problem(tmp_path, folder):
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        ImageFolderReader(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        ImageFolderReader(tmp_path / "empty")
    with pytest.raises(ValueError, match="caption column 'prompt' is not a metadata column"):
        ImageFolderReader(folder, caption_column="prompt")
    (folder / "metadata.csv").write_text("file_name,text\na.png,x\n")
    with pytest.raises(ValueError, match="several metadata files"):
        ImageFolderReader(folder)
    (folder / "metadata.csv").unlink()
    with pytest.raises(ValueError, match="cannot be split over 9 ranks"):
        build_train_loader(data_cfg(source="imagefolder", path=str(folder), shards=None), resolution=R, batch_size=1,
                           seed=0, rank=0, world_size=9)  # fmt: skip


def test_a_pass_without_any_usable_sample_raises_instead_of_spinning(tmp_path):
    root = tmp_path / "dead"
    root.mkdir()
    for i in range(2):
        (root / f"{i}.png").write_bytes(b"junk")
    rows = [json.dumps({"file_name": f"{i}.png", "text": "x"}) for i in range(2)]
    (root / "metadata.jsonl").write_text("\n".join(rows))
    with pytest.raises(DataError, match=f"data.path='{root}'.*no usable sample.*0.png"):
        one_epoch(data_cfg(source="imagefolder", path=str(root), shards=None))


def test_conf_option_composes_and_validation_needs_the_path(folder):
    cfg = compose_config(["data=imagefolder", f"data.path={folder}"])
    validate_config(cfg)
    data = OmegaConf.to_object(cfg.data)
    assert data.source == "imagefolder" and data.shards is None
    assert len(by_caption(one_epoch(replace(data, num_workers=0)))) == len(GOOD)
    with pytest.raises(ConfigError, match="data.path is not set"):
        validate_config(compose_config(["data=imagefolder"]))
    with pytest.raises(ConfigError, match="no such folder"):
        validate_config(compose_config(["data=imagefolder", f"data.path={folder}/nope"]))


def test_webdataset_source_still_goes_through_the_shard_pipeline(folder, tmp_path):
    shards = write_shards(image_folder_samples(folder), tmp_path / "s", image_format="png")
    cfg = data_cfg(shards=[str(p) for p in shards], resampled=False)
    assert Path(shards[0]).exists() and len(by_caption(one_epoch(cfg))) == len(GOOD)


def mixed_folder(root: Path) -> Path:
    """metadata.csv (the layout the shard tool used to ignore) with a caption column named by the user, one row
    without a caption (its .txt counts), and an image with only a .txt."""
    root.mkdir()
    for i in range(4):
        gradient(40, 40, i).save(root / f"{i}.png")
    (root / "metadata.csv").write_text("file_name,prompt,aesthetic\n0.png,zero,6.5\n1.png,one,4.0\n2.png,,5.0\n")
    (root / "2.txt").write_text("two from txt")
    (root / "3.txt").write_text("three from txt")
    return root


def test_the_shard_tool_reads_a_folder_as_training_does(tmp_path):
    """One reader: make_shards --image-folder keeps every sample data=imagefolder trains on (it used to drop every
    image without a .txt, ignoring metadata.csv), with the same captions."""
    from lcm_exp.data.make_shards import main as make_shards

    root = mixed_folder(tmp_path / "mixed")
    cfg = data_cfg(source="imagefolder", path=str(root), shards=None, caption_column="prompt")
    trained = sorted(c for b in one_epoch(cfg, batch_size=4) for c in b["captions"])
    assert trained == ["one", "three from txt", "two from txt", "zero"]
    paths = make_shards(["--image-folder", str(root), "--caption-column", "prompt", "--out", str(tmp_path / "out"),
                         "--format", "png"])  # fmt: skip
    shard_cfg = data_cfg(shards=[str(p) for p in paths], resampled=False)
    assert sorted(c for b in one_epoch(shard_cfg, batch_size=4) for c in b["captions"]) == trained


def test_the_shard_tool_reads_metadata_csv(tmp_path, capsys):
    from lcm_exp.data.make_shards import main as make_shards

    root = tmp_path / "csv"
    root.mkdir()
    for i in range(3):
        gradient(40, 40, i).save(root / f"{i}.png")
    (root / "metadata.csv").write_text("file_name,text\n0.png,zero\n1.png,one\n2.png,two\n")
    paths = make_shards(["--image-folder", str(root), "--out", str(tmp_path / "out")])
    shard_cfg = data_cfg(shards=[str(p) for p in paths], resampled=False)
    assert sorted(c for b in one_epoch(shard_cfg, batch_size=4) for c in b["captions"]) == ["one", "two", "zero"]
