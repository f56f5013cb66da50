"""Tiny image folders and `datasets` datasets with known pixels, captions and planted defects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

R = 32


def gradient(h: int, w: int, salt: int) -> Image.Image:
    """Every pixel says where it came from (and which image), so crops and resizes are visible in the tensors."""
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([(5 * x) % 256, (5 * y) % 256, np.full_like(x, 40 * salt % 256)], axis=-1).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


# (relative path, height, width, caption); captions are unique so samples can be matched across sources
GOOD = [
    ("a.png", 40, 48, "red one"),
    ("sub/b.png", 48, 36, "green two"),
    ("c.png", 32, 32, "blue three"),
    ("d.png", 64, 40, "gray four"),
    ("e.png", 36, 60, "pink five"),
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """GOOD images captioned by metadata.jsonl, plus a corrupt image and an image without any caption."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    rows = []
    for i, (rel, h, w, caption) in enumerate(GOOD):
        gradient(h, w, i).save(root / rel)
        rows.append({"file_name": rel, "text": caption, "aesthetic": 5.0 + i})
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    rows.append({"file_name": "broken.png", "text": "never seen"})
    gradient(40, 40, 9).save(root / "nocaption.png")
    (root / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root
