import io
import json
import tarfile

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from lcm_exp.toy import build as toy_build
from lcm_exp.toy.resolvers import register_toy_resolvers
from lcm_exp.toy.shards import ensure_toy_shards
from lcm_exp.toy.world import caption, make_images


def test_shards_hold_lossless_images_with_captions(tmp_path):
    spec = ensure_toy_shards(tmp_path, 8, seed=5)
    assert ensure_toy_shards(tmp_path, 8, seed=5) == spec  # cached
    images = make_images(8, seed=5)
    with tarfile.open(spec) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    for i in range(8):
        key = f"toy_{i:06d}"
        assert members[f"{key}.txt"].decode() == images.captions[i] == caption(images.attributes[i])
        png = Image.open(io.BytesIO(members[f"{key}.png"]))
        expected = ((images.pixels[i] + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
        assert (np.asarray(png) == expected).all()
        assert json.loads(members[f"{key}.json"])["shape"] in caption(images.attributes[i])


def test_shards_reject_empty(tmp_path):
    with pytest.raises(ValueError, match="num_samples"):
        ensure_toy_shards(tmp_path, 0)


def test_resolvers(tmp_path, monkeypatch):
    register_toy_resolvers()
    register_toy_resolvers()  # idempotent
    calls = []
    monkeypatch.setattr(toy_build, "ensure_toy_teacher", lambda cache, seed: calls.append((cache, seed)) or tmp_path)
    cfg = OmegaConf.create({"cache": str(tmp_path), "teacher": "${toy_teacher:${cache},3}",
                            "shards": "${toy_shards:${cache},4}"})  # fmt: skip
    assert cfg.teacher == str(tmp_path) and calls == [(str(tmp_path), 3)]
    assert cfg.shards.endswith("shard-000000.tar")
