"""Toy-world WebDataset shards for the training loop (lossless PNG, 32 x 32, attributes in the json)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from PIL import Image

from lcm_exp.data.make_shards import brace_spec, write_shards
from lcm_exp.toy.world import ATTRIBUTES, make_images

SAMPLES_PER_SHARD = 512
DEFAULT_SHARD_SEED = 7  # not the teacher's training images: the student sees fresh draws of the same world


def toy_samples(n: int, seed: int) -> Iterator[tuple[str, Image.Image, str, dict]]:
    images = make_images(n, seed)
    pixels = ((images.pixels + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for i in range(n):
        meta = {name: ATTRIBUTES[name][int(v)] for name, v in zip(ATTRIBUTES, images.attributes[i], strict=True)}
        yield f"toy_{i:06d}", Image.fromarray(pixels[i]), images.captions[i], meta


def ensure_toy_shards(cache_dir: str | Path, num_samples: int, seed: int = DEFAULT_SHARD_SEED) -> str:
    """Brace spec of ``num_samples`` toy samples under ``cache_dir``, written atomically on first use."""
    if num_samples < 1:
        raise ValueError(f"toy shards: num_samples must be >= 1, got {num_samples}")
    folder = Path(cache_dir).expanduser().resolve() / f"toy-shards-n{num_samples}-s{seed}"
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-toy-shards-", dir=folder.parent))
        tmp.chmod(0o755)
        write_shards(toy_samples(num_samples, seed), tmp, samples_per_shard=SAMPLES_PER_SHARD, image_format="png")
        try:
            os.rename(tmp, folder)
        except OSError:  # another process won the race: use its shards
            shutil.rmtree(tmp, ignore_errors=True)
    return brace_spec(sorted(folder.glob("shard-*.tar")))
