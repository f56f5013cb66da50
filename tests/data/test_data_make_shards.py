"""make_shards.py, image_folder.py, synthetic.py: what gets written, atomically, and that the pipeline reads it."""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lcm_exp.data.image_folder import image_folder_samples
from lcm_exp.data.make_shards import brace_spec, main, write_shards
from lcm_exp.data.spec import DataSpec
from lcm_exp.data.synthetic import BACKGROUNDS, COLOURS, synthetic_samples
from lcm_exp.data.webdataset_pipeline import build_webdataset


def read_tar(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers()}


def read_all(spec: str, resolution: int = 32) -> dict[str, tuple[str, list[int]]]:
    ds = build_webdataset(
        DataSpec(shards=spec, resampled=False, num_workers=0, shuffle_buffer=0),
        resolution=resolution,
        batch_size=64,
        seed=0,
    )
    return {
        k: (c, s) for b in ds for k, c, s in zip(b["keys"], b["captions"], b["original_size"].tolist(), strict=True)
    }


def test_brace_spec_literal():
    paths = [Path(f"/d/my-data-{i:06d}.tar") for i in range(12)]
    assert brace_spec(paths) == "/d/my-data-{000000..000011}.tar"
    assert brace_spec(paths[:1]) == "/d/my-data-000000.tar"


def test_synthetic_is_deterministic_and_captions_match_pixels():
    a = list(synthetic_samples(12, seed=3))
    b = list(synthetic_samples(12, seed=3))
    c = list(synthetic_samples(12, seed=4))
    assert [(k, cap) for k, _, cap, _ in a] == [(k, cap) for k, _, cap, _ in b]
    assert all(np.array_equal(np.asarray(x[1]), np.asarray(y[1])) for x, y in zip(a, b, strict=True))
    assert [cap for _, _, cap, _ in a] != [cap for _, _, cap, _ in c]
    assert {img.size for _, img, _, _ in a} == {(48, 48), (64, 40), (40, 64)}  # PIL size is (w, h)
    for _, img, caption, meta in a:
        assert caption.endswith(f"{meta['colour']} {meta['shape']} on a {meta['background']} background")
        counts = Counter(map(tuple, np.asarray(img).reshape(-1, 3).tolist()))
        assert counts[COLOURS[meta["colour"]]] > 20 and counts[BACKGROUNDS[meta["background"]]] > 20
    assert any(cap.startswith("an orange") for _, _, cap, _ in synthetic_samples(60, seed=0))


def test_write_shards_layout_and_pipeline_roundtrip(tmp_path):
    samples = list(synthetic_samples(5, seed=0))
    paths = write_shards(samples, tmp_path, "toy", samples_per_shard=2, image_format="png")
    assert [p.name for p in paths] == ["toy-000000.tar", "toy-000001.tar", "toy-000002.tar"]
    first = read_tar(paths[0])
    assert sorted(first) == sorted(f"synthetic_00000{i}.{e}" for i in (0, 1) for e in ("png", "json", "txt"))
    meta = json.loads(first["synthetic_000001.json"])
    assert (meta["original_height"], meta["original_width"]) == (40, 64)  # sizes cycle (48,48), (40,64), ...
    assert meta["shape"] == samples[1][3]["shape"]
    png = np.asarray(Image.open(io.BytesIO(first["synthetic_000001.png"])))
    assert np.array_equal(png, np.asarray(samples[1][1]))  # png is lossless
    got = read_all(brace_spec(paths))
    assert got == {k: (cap, [img.height, img.width]) for k, img, cap, _ in samples}


def test_writing_is_atomic(tmp_path):
    def samples():
        for i, sample in enumerate(synthetic_samples(5, seed=0)):
            if i == 3:  # shard 1 holds sample 2 and is being written: only its temporary name may exist
                assert (tmp_path / "shard-000001.tar.tmp").exists()
                assert not (tmp_path / "shard-000001.tar").exists()
                raise KeyboardInterrupt
            yield sample

    with pytest.raises(KeyboardInterrupt):
        write_shards(samples(), tmp_path, samples_per_shard=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-000000.tar"]
    assert len(read_tar(tmp_path / "shard-000000.tar")) == 6


def test_existing_shards_and_bad_keys(tmp_path):
    write_shards(synthetic_samples(4, seed=0), tmp_path, samples_per_shard=1)
    with pytest.raises(FileExistsError, match="overwrite"):
        write_shards(synthetic_samples(1, seed=0), tmp_path)
    write_shards(synthetic_samples(1, seed=0), tmp_path, overwrite=True)
    assert sorted(p.name for p in tmp_path.glob("*.tar")) == ["shard-000000.tar"]  # stale shards removed
    img = Image.new("RGB", (8, 8))
    for bad in ("a.b", "__meta__", ""):
        with pytest.raises(ValueError, match="key"):
            write_shards([(bad, img, "c", {})], tmp_path / "bad")
    with pytest.raises(ValueError, match="duplicate"):
        write_shards([("k", img, "c", {}), ("k", img, "c", {})], tmp_path / "dup")


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    Image.new("RGB", (48, 40), (255, 0, 0)).save(root / "a.png")
    Image.new("L", (40, 56), 90).save(root / "sub" / "b.v2.jpg")
    Image.new("RGBA", (44, 44), (0, 0, 255, 255)).save(root / "c.png")
    (root / "d.png").write_bytes(b"not an image")
    return root


def test_image_folder_with_txt_siblings(tmp_path, caplog):
    root = _folder(tmp_path)
    (root / "a.txt").write_bytes(b"a red image\n")
    (root / "sub" / "b.v2.txt").write_bytes(b"gr\xe9y")
    (root / "d.txt").write_text("corrupt")
    samples = list(image_folder_samples(root))
    # keys: index among ALL image files (sorted), so they do not shift when a file is left out
    assert [(k, cap) for k, _, cap, _ in samples] == [("00000000_a", "a red image"), ("00000003_sub_b_v2", "gr\ufffdy")]
    assert "c.png" in caplog.text and "d.png" in caplog.text  # no caption / unreadable: logged, left out
    paths = write_shards(samples, tmp_path / "out")
    got = read_all(str(paths[0]))
    assert got == {"00000000_a": ("a red image", [40, 48]), "00000003_sub_b_v2": ("gr\ufffdy", [56, 40])}


@pytest.mark.parametrize("table", ["metadata.jsonl", "captions.csv"])
def test_image_folder_with_caption_table(tmp_path, table):
    root = _folder(tmp_path)
    if table == "metadata.jsonl":
        rows = [
            {"file_name": "a.png", "text": "from jsonl", "aesthetic": 6.5},
            {"file_name": "c.png", "caption": "blue square", "aesthetic": 4.0},
        ]
        (root / table).write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    else:
        (root / table).write_text("file_name,caption,aesthetic\na.png,from jsonl,6.5\nc.png,blue square,4.0\n")
    (root / "sub" / "b.v2.txt").write_text("sibling still works")
    samples = {k: (cap, meta) for k, _, cap, meta in image_folder_samples(root)}
    assert {k: cap for k, (cap, _) in samples.items()} == {
        "00000000_a": "from jsonl",
        "00000003_sub_b_v2": "sibling still works",
        "00000001_c": "blue square",
    }
    assert float(samples["00000000_a"][1]["aesthetic"]) == 6.5
    paths = write_shards(image_folder_samples(root), tmp_path / "out")
    stored = json.loads(read_tar(paths[0])["00000001_c.json"])
    assert float(stored["aesthetic"]) == 4.0 and stored["file_name"] == "c.png"
    assert (stored["original_width"], stored["original_height"]) == (44, 44)


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        list(image_folder_samples(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        list(image_folder_samples(tmp_path / "empty"))
    root = _folder(tmp_path)
    (root / "metadata.jsonl").write_text('{"file_name": "a.png"}\n')
    assert list(image_folder_samples(root)) == []  # a row without a caption and no .txt: left out, like training
    (root / "metadata.csv").write_text("file_name,text\na.png,x\n")
    with pytest.raises(ValueError, match="several metadata files"):
        list(image_folder_samples(root))


def test_cli_synthetic(tmp_path, capsys):
    paths = main(["--synthetic", "5", "--out", str(tmp_path), "--samples-per-shard", "2", "--size", "36x52"])
    out = capsys.readouterr().out
    spec = f"{tmp_path}/shard-{{000000..000002}}.tar"
    assert len(paths) == 3 and f"'data.shards=\"{spec}\"'" in out
    got = read_all(spec)
    assert len(got) == 5 and all(size == [36, 52] for _, size in got.values())


def test_cli_image_folder(tmp_path, capsys):
    root = _folder(tmp_path)
    (root / "a.txt").write_text("a red image")
    paths = main(["--image-folder", str(root), "--out", str(tmp_path / "out")])
    assert capsys.readouterr().out.startswith(str(paths[0]))
    assert list(read_all(str(paths[0])).values()) == [("a red image", [40, 48])]
