"""webdataset_pipeline.py end to end on tiny hand-built shards: specs, splitting, modes, and every defect."""

from __future__ import annotations

import random
import tarfile
from collections import Counter
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lcm_exp.config.errors import DataError
from lcm_exp.data.spec import DataSpec, FilterSpec
from lcm_exp.data.webdataset_pipeline import build_dataloader, build_webdataset

R = 32


def make_spec(shards, **kw) -> DataSpec:
    kw.setdefault("resampled", False)
    kw.setdefault("num_workers", 0)
    kw.setdefault("shuffle_buffer", 0)
    return DataSpec(shards=shards, **kw)


def collect(spec: DataSpec, *, batch_size=4, seed=0, max_batches=None, **kw) -> list[dict]:
    """Batches as the training process gets them (through the loader: counts-only and stop items handled)."""
    loader = build_dataloader(spec, resolution=R, batch_size=batch_size, seed=seed, **kw)
    return list(islice(loader, max_batches))


def keys(batches) -> list[str]:
    return [k for b in batches for k in b["keys"]]


def total(batches, field: str) -> int:
    return sum(b[field] for b in batches)


def reasons(batches) -> Counter:
    return sum((Counter(b["skip_reasons"]) for b in batches), Counter())


def by_shard(batches) -> Counter:
    return sum((Counter(b["skipped_by_shard"]) for b in batches), Counter())


def all_keys(n_shards: int, per_shard: int, prefix="s") -> list[str]:
    return sorted(f"{prefix}{s}_{i}" for s in range(n_shards) for i in range(per_shard))


def test_batch_format(kit):
    kit.plain_shards(2, 3)
    batches = collect(make_spec(f"{kit.root}/s-{{000..001}}.tar"))
    assert [len(b["keys"]) for b in batches] == [4, 2]  # final partial batch in finite mode
    b = batches[0]
    assert b["pixel_values"].dtype == torch.float32 and b["pixel_values"].shape == (4, 3, R, R)
    assert -1.0 <= b["pixel_values"].min() and b["pixel_values"].max() <= 1.0
    assert b["original_size"].dtype == torch.long and b["original_size"].tolist() == [[40, 48]] * 4
    assert b["crop_top_left"].dtype == torch.long and b["crop_top_left"].shape == (4, 2)
    assert b["captions"] == b["keys"]  # plain_shards captions each sample with its key
    assert b["num_skipped"] == 0 and b["num_filtered"] == 0 and b["skipped_by_shard"] == {}
    # colour survives decoding: sample s0_1 is (10, 0, 99)
    pixels = {k: b["pixel_values"][i] for b in batches for i, k in enumerate(b["keys"])}
    assert ((pixels["s0_1"][:, 5, 5] + 1) * 127.5).round().tolist() == [10, 0, 99]


def test_brace_list_and_pipe_specs_read_the_same_samples(kit):
    paths = kit.plain_shards(3, 2)
    expected = all_keys(3, 2)
    specs = [
        f"{kit.root}/s-{{000..002}}.tar",
        [str(p) for p in paths],
        [f"pipe:cat {p}" for p in paths],
        [f"pipe:cat {kit.root}/s-{{000..002}}.tar"],
        [f"{kit.root}/s-000.tar", f"{kit.root}/s-{{001..002}}.tar"],
    ]
    for shards in specs:
        assert sorted(keys(collect(make_spec(shards)))) == expected, shards


def test_split_by_rank_is_disjoint_and_complete(kit):
    kit.plain_shards(5, 2)
    shards = f"{kit.root}/s-{{000..004}}.tar"
    for epoch in (0, 1):
        per_rank = [set(keys(collect(make_spec(shards), rank=r, world_size=2, epoch=epoch))) for r in (0, 1)]
        assert not per_rank[0] & per_rank[1]
        assert sorted(per_rank[0] | per_rank[1]) == all_keys(5, 2)
        # shard granularity: with 5 shards one rank has 3, the other 2
        assert sorted(len(k) for k in per_rank) == [4, 6]


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_finite_yields_every_sample_once(kit, workers):
    kit.plain_shards(3, 3)
    spec = make_spec(f"{kit.root}/s-{{000..002}}.tar", num_workers=workers, shuffle_buffer=4)
    loader = build_dataloader(spec, resolution=R, batch_size=2, seed=1)
    got = keys(list(loader))
    assert sorted(got) == all_keys(3, 3)


def test_finite_epochs_reshuffle_and_reproduce(kit):
    kit.plain_shards(4, 3)
    spec = make_spec(f"{kit.root}/s-{{000..003}}.tar", shuffle_buffer=5)
    e0, e0_again, e1 = (keys(collect(spec, epoch=e)) for e in (0, 0, 1))
    assert e0 == e0_again and e0 != e1 and sorted(e0) == sorted(e1) == all_keys(4, 3)
    assert keys(collect(spec, epoch=0, seed=5)) != e0
    loader = build_dataloader(spec, resolution=R, batch_size=4, seed=0)
    assert [keys(list(loader)) for _ in range(2)] == [e0, e1]  # each iter() is the next epoch


def test_persistent_workers_advance_epochs_like_fresh_workers(kit):
    kit.plain_shards(4, 2)
    runs = []
    for persistent in (True, False):
        spec = make_spec(
            f"{kit.root}/s-{{000..003}}.tar", num_workers=2, persistent_workers=persistent, shuffle_buffer=3
        )
        loader = build_dataloader(spec, resolution=R, batch_size=2, seed=0)
        runs.append([keys(list(loader)) for _ in range(2)])
    assert runs[0] == runs[1]
    assert runs[0][0] != runs[0][1] and sorted(runs[0][0]) == all_keys(4, 2)


def test_resampled_is_infinite_and_seeded(kit):
    kit.plain_shards(2, 2)
    spec = make_spec(f"{kit.root}/s-{{000..001}}.tar", resampled=True, shuffle_buffer=3)
    run = keys(collect(spec, max_batches=10, seed=3))
    assert len(run) == 40 and set(run) == set(all_keys(2, 2))  # 4 samples, 40 drawn: it never ends
    assert keys(collect(spec, max_batches=10, seed=3)) == run
    assert keys(collect(spec, max_batches=10, seed=4)) != run
    assert keys(collect(spec, max_batches=10, seed=3, rank=1, world_size=2)) != run
    assert keys(collect(spec, max_batches=10, seed=3, epoch=1)) != run


def test_resampled_workers_draw_different_reproducible_streams(kit):
    kit.plain_shards(3, 2)
    spec = make_spec(f"{kit.root}/s-{{000..002}}.tar", resampled=True, num_workers=2, shuffle_buffer=3)

    def run():
        loader = build_dataloader(spec, resolution=R, batch_size=3, seed=0)
        return [b["keys"] for b in islice(loader, 8)]  # batches alternate: worker 0, worker 1, worker 0, ...

    first = run()
    assert first[0::2] != first[1::2]  # workers are not clones of each other
    assert run() == first


def test_bad_samples_are_skipped_counted_or_converted(kit):
    """One shard holding every per-sample defect between good samples; each gets its classified outcome."""
    i16 = Image.fromarray(np.full((40, 48), 32896, dtype=np.uint16))  # 128 * 257
    rgba = Image.new("RGBA", (48, 40), (255, 0, 0, 0))
    pal = Image.new("P", (48, 40), 0)
    pal.putpalette([0, 0, 255] * 256)
    noise = np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    jpeg = kit.encode(Image.fromarray(noise), "JPEG")
    members = (
        kit.sample("good0")
        + [("corrupt.jpg", b"\xff\xd8\xff\xe0 not really a jpeg"), ("corrupt.txt", b"x")]
        + [("cut.jpg", jpeg[: len(jpeg) // 2]), ("cut.txt", b"x")]  # valid header, data cut: fails at decode
        + kit.sample("nocaption", caption=None)
        + kit.sample("latin1", caption=b"caf\xe9")
        + kit.sample("listcap", caption=None, meta={"caption": ["", "from a list"]})
        + kit.sample("gray", img=kit.image(mode="L", color=128))
        + kit.sample("rgba", img=rgba)
        + kit.sample("palette", img=pal)
        + kit.sample("cmyk", img=kit.image(mode="CMYK", color=(0, 255, 255, 0)), ext="jpg")
        + kit.sample("sixteen", img=i16)
        + kit.sample("onebit", img=kit.image(mode="1", color=1))
        + [("bomb.png", kit.png_header_bomb(9000, 9000)), ("bomb.txt", b"x")]  # 81 MP > our 67 MP default
        + [("pilbomb.png", kit.png_header_bomb(100_000, 100_000)), ("pilbomb.txt", b"x")]  # PIL refuses
        + [("badjson.png", kit.encode(kit.image())), ("badjson.json", b"{oops"), ("badjson.txt", b"x")]
        + [("noimage.txt", b"only text")]
        + kit.sample("small", img=kit.image(20, 20))
        + kit.sample("good1")
    )
    path = kit.tar("mixed.tar", members)
    batches = collect(make_spec(str(path)), batch_size=3)
    got = {
        k: (c, b["pixel_values"][i])
        for b in batches
        for i, (k, c) in enumerate(zip(b["keys"], b["captions"], strict=True))
    }
    assert sorted(got) == sorted(
        ["good0", "latin1", "listcap", "gray", "rgba", "palette", "cmyk", "sixteen", "onebit", "small", "good1"]
    )
    assert got["latin1"][0] == "caf\ufffd" and got["listcap"][0] == "from a list"

    def px(key):
        return ((got[key][1][:, 5, 5] + 1) * 127.5).round().tolist()

    assert px("rgba") == [255, 255, 255]  # transparent -> white
    assert px("sixteen") == [128, 128, 128]  # scaled by 1/257, not clipped to 255
    assert px("palette") == [0, 0, 255] and px("gray") == [128, 128, 128] and px("onebit") == [255, 255, 255]
    assert reasons(batches) == {
        "bad_image": 2,
        "missing_caption": 1,
        "too_many_pixels": 2,
        "bad_json": 1,
        "missing_image": 1,
    }
    assert total(batches, "num_skipped") == 7 and total(batches, "num_filtered") == 0
    assert by_shard(batches) == {str(path): 7}


def test_small_image_skip_policy_filters(kit):
    path = kit.tar("s.tar", kit.sample("small", img=kit.image(20, 20)) + kit.sample("big"))
    batches = collect(make_spec(str(path), small_image="skip"))
    assert keys(batches) == ["big"]
    assert total(batches, "num_filtered") == 1 and total(batches, "num_skipped") == 0
    assert reasons(batches) == {"small_image": 1}


def test_max_image_pixels_refuses_before_decoding(kit):
    path = kit.tar("s.tar", kit.sample("a", img=kit.image(64, 64)) + kit.sample("b", img=kit.image(32, 32)))
    batches = collect(make_spec(str(path), max_image_pixels=32 * 32))
    assert keys(batches) == ["b"] and reasons(batches) == {"too_many_pixels": 1}


def test_skip_counts_ride_with_the_next_batch(kit):
    members = []
    for i, entry in enumerate(["g", "b", "g", "g", "b", "b", "g", "g"]):
        members += kit.sample(f"k{i}") if entry == "g" else [(f"k{i}.png", b"garbage"), (f"k{i}.txt", b"x")]
    batches = collect(make_spec(str(kit.tar("s.tar", members))), batch_size=2)
    assert [b["keys"] for b in batches] == [["k0", "k2"], ["k3", "k6"], ["k7"]]
    assert [b["num_skipped"] for b in batches] == [1, 2, 0]


def test_truncated_tar_mid_sample(kit):
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8))
    members = kit.sample("t0") + kit.sample("t1", img=noise) + kit.sample("t2")
    path = kit.tar("trunc.tar", members)
    with tarfile.open(path) as tf:
        t1 = tf.getmember("t1.png")
    cut = t1.offset_data + t1.size // 2  # in the middle of t1's image bytes
    path.write_bytes(path.read_bytes()[:cut])
    kit.plain_shards(1, 2)
    batches = collect(make_spec([str(path), str(kit.root / "s-000.tar")]))
    assert sorted(keys(batches)) == ["s0_0", "s0_1", "t0"]
    assert total(batches, "num_skipped") >= 1 and set(by_shard(batches)) == {str(path)}


def test_garbage_tar_and_failing_pipe_are_bad_shards(kit):
    garbage = kit.root / "garbage.tar"
    garbage.write_bytes(random.Random(0).randbytes(5000))
    kit.plain_shards(2, 2)
    failing = f"pipe:cat {kit.root}/no-such-shard.tar"
    shards = [failing, str(garbage), f"{kit.root}/s-{{000..001}}.tar"]
    batches = collect(make_spec(shards), batch_size=8)  # one partial batch: it carries every count
    assert sorted(keys(batches)) == all_keys(2, 2)
    counted = by_shard(batches)
    assert set(counted) == {failing, str(garbage)} and all(v >= 1 for v in counted.values())


def test_empty_or_missing_shards_fail_before_reading(kit):
    with pytest.raises(ValueError, match="data.shards is empty"):
        build_webdataset(DataSpec(shards=""), resolution=R, batch_size=2, seed=0)
    with pytest.raises(ValueError, match="data.shards is empty"):
        build_webdataset(DataSpec(shards=[]), resolution=R, batch_size=2, seed=0)
    kit.plain_shards(2, 1)
    with pytest.raises(FileNotFoundError, match=r"s-002\.tar") as info:
        build_webdataset(DataSpec(shards=f"{kit.root}/s-{{000..002}}.tar"), resolution=R, batch_size=2, seed=0)
    assert "s-{000..002}" in str(info.value) and "s-000.tar," not in str(info.value)
    with pytest.raises(FileNotFoundError, match="nope.tar"):
        build_webdataset(DataSpec(shards=[f"{kit.root}/s-000.tar", "nope.tar"]), resolution=R, batch_size=2, seed=0)
    build_webdataset(DataSpec(shards="pipe:false"), resolution=R, batch_size=2, seed=0)  # unverifiable: accepted
    with pytest.raises(ValueError, match="2 shard.*3 ranks"):
        build_webdataset(
            make_spec(f"{kit.root}/s-{{000..001}}.tar"), resolution=R, batch_size=2, seed=0, rank=0, world_size=3
        )
    with pytest.raises(ValueError, match="rank"):
        build_webdataset(make_spec(f"{kit.root}/s-000.tar"), resolution=R, batch_size=2, seed=0, rank=1)


def _filter_shard(kit) -> Path:
    members = (
        kit.sample("ok", meta={"pwatermark": 0.1, "aesthetic": 6.5, "original_width": 1024, "original_height": 512})
        + kit.sample("watermark", meta={"pwatermark": 0.9, "aesthetic": 6.5, "width": 800, "height": 600})
        + kit.sample("ugly", meta={"pwatermark": 0.1, "aesthetic": 3.0, "width": 800, "height": 600})
        + kit.sample("nokeys", meta={"width": 900, "height": 700})
        + kit.sample("tiny_orig", meta={"pwatermark": 0.1, "aesthetic": 7.0, "width": 100, "height": 300})
        + kit.sample("nojson")  # decoded 40 x 48: fails min_original_size through the decoded-size fallback
    )
    return kit.tar("f.tar", members)


@pytest.mark.parametrize("on_missing", ["keep", "drop"])
def test_sdxl_filters_with_present_and_missing_keys(kit, on_missing):
    filters = FilterSpec(min_original_size=256, max_pwatermark=0.5, min_aesthetic=5.0, on_missing=on_missing)
    batches = collect(make_spec(str(_filter_shard(kit)), filters=filters), batch_size=8)
    expected = ["ok", "nokeys"] if on_missing == "keep" else ["ok"]
    assert keys(batches) == expected
    sizes = dict(zip(keys(batches), batches[0]["original_size"].tolist(), strict=True))
    assert sizes["ok"] == [512, 1024]  # (h, w) from original_* keys, not the (W, H) of the reference
    if on_missing == "keep":
        assert sizes["nokeys"] == [700, 900]
    if on_missing == "keep":  # nojson passes the json filters, then fails the decoded-size fallback
        want = {"pwatermark": 1, "aesthetic": 1, "original_size": 2}
    else:  # nokeys and nojson lack pwatermark (checked first)
        want = {"pwatermark": 1, "aesthetic": 1, "original_size": 1, "missing_pwatermark": 2}
    assert reasons(batches) == want
    assert total(batches, "num_filtered") == sum(want.values()) and total(batches, "num_skipped") == 0


def test_no_filters_keep_everything(kit):
    batches = collect(make_spec(str(_filter_shard(kit))), batch_size=8)
    assert len(keys(batches)) == 6 and total(batches, "num_filtered") == 0


def test_dead_data_raises_instead_of_spinning(kit):
    for name in ("g0.tar", "g1.tar"):
        (kit.root / name).write_bytes(b"not a tar at all" * 50)
    spec = make_spec([str(kit.root / "g0.tar"), str(kit.root / "g1.tar")], resampled=True, max_consecutive_skips=25)
    with pytest.raises(DataError, match="max_consecutive_skips"):
        collect(spec, max_batches=1)
    # a filter that drops everything (diffusers #5743) in resampled mode: same guard
    kit.plain_shards(1, 3)
    spec = make_spec(
        f"{kit.root}/s-000.tar",
        resampled=True,
        max_consecutive_skips=25,
        filters=FilterSpec(min_aesthetic=5.0, on_missing="drop"),
    )
    with pytest.raises(DataError, match="missing_aesthetic"):
        collect(spec, max_batches=1)
