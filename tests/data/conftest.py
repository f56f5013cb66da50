"""Fixtures for the data tests: tiny hand-built shards (raw tar members, so we can plant defects)."""

from __future__ import annotations

import io
import json
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


class ShardKit:
    """Helpers to build tiny shards and images. Members are written in the order given (like real shards:
    all files of one sample together)."""

    def __init__(self, root: Path):
        self.root = root

    @staticmethod
    def image(h: int = 40, w: int = 48, color=(200, 30, 30), mode: str = "RGB") -> Image.Image:
        return Image.new(mode, (w, h), color)

    @staticmethod
    def encode(img: Image.Image, fmt: str = "PNG") -> bytes:
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        return buf.getvalue()

    def sample(self, key: str, *, img: Image.Image | None = None, caption="a thing", meta=None, ext="png"):
        """Members of one ordinary sample: image, optional json, optional txt."""
        img = img if img is not None else self.image()
        members = [(f"{key}.{ext}", self.encode(img, "JPEG" if ext in ("jpg", "jpeg") else "PNG"))]
        if meta is not None:
            members.append((f"{key}.json", json.dumps(meta).encode()))
        if caption is not None:
            members.append((f"{key}.txt", caption.encode() if isinstance(caption, str) else caption))
        return members

    def tar(self, name: str, members: list[tuple[str, bytes]]) -> Path:
        path = self.root / name
        with tarfile.open(path, "w") as tf:
            for fname, data in members:
                info = tarfile.TarInfo(fname)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        return path

    def plain_shards(self, n_shards: int, per_shard: int, prefix: str = "s") -> list[Path]:
        """n_shards good shards; keys "<prefix><shard>_<i>", each caption equals its key."""
        paths = []
        for s in range(n_shards):
            members = []
            for i in range(per_shard):
                key = f"{prefix}{s}_{i}"
                members += self.sample(key, caption=key, img=self.image(color=(10 * i, 20 * s, 99)))
            paths.append(self.tar(f"{prefix}-{s:03d}.tar", members))
        return paths

    @staticmethod
    def png_header_bomb(width: int, height: int) -> bytes:
        """A tiny PNG whose header declares width x height 1-bit pixels; its data is never needed because
        the pipeline must refuse it from the header alone."""

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b"")
        )

    @staticmethod
    def gradient(h: int, w: int) -> Image.Image:
        """Red = 5 * x, green = 5 * y: every pixel says where it came from."""
        y, x = np.mgrid[0:h, 0:w]
        arr = np.stack([5 * x, 5 * y, np.full_like(x, 77)], axis=-1).astype(np.uint8)
        return Image.fromarray(arr, "RGB")


@pytest.fixture
def kit(tmp_path: Path) -> ShardKit:
    return ShardKit(tmp_path)
