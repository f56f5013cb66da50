"""Read a folder of captioned images as (key, image, caption, meta) samples for `make_shards`.

Captions come from, in order of precedence: metadata.jsonl (the Hugging Face imagefolder layout: one JSON
object per line with "file_name" and "text" or "caption"; other fields are kept as metadata), captions.csv
(columns file_name and text/caption), or a sibling .txt next to each image. Images without a caption, and
unreadable images, are logged and left out (the writer is a data tool: one bad file should not stop it).
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
_NAME_COLUMNS = ("file_name", "filename", "image", "file")
_CAPTION_COLUMNS = ("text", "caption")

Sample = tuple[str, Image.Image, str, dict]


def image_folder_samples(folder: str | Path) -> Iterator[Sample]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    table = _caption_table(folder)
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}")
    for index, path in enumerate(paths):
        rel = path.relative_to(folder).as_posix()
        if rel in table:
            caption, extra = table[rel]
        elif path.with_suffix(".txt").is_file():
            caption, extra = path.with_suffix(".txt").read_bytes().decode("utf-8-sig", errors="replace").strip(), {}
        else:
            logger.warning("no caption for %s (no metadata.jsonl/captions.csv row, no .txt): left out", rel)
            continue
        try:
            image = Image.open(path)
            image.load()
        except Exception as exn:
            logger.warning("unreadable image %s (%s: %s): left out", rel, type(exn).__name__, exn)
            continue
        yield _key(index, rel), image, caption, {**extra, "file_name": rel}


def _key(index: int, rel: str) -> str:
    """Unique and webdataset-safe: no dots (webdataset splits key from extension at the first dot)."""
    stem = rel.rsplit(".", 1)[0]
    return f"{index:08d}_" + re.sub(r"[^A-Za-z0-9_-]", "_", stem)[:100]


def _caption_table(folder: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    jsonl, csv_path = folder / "metadata.jsonl", folder / "captions.csv"
    if jsonl.is_file():
        rows = []
        for n, line in enumerate(jsonl.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exn:
                    raise ValueError(f"{jsonl}:{n}: not valid JSON: {exn}") from exn
        return _rows_to_table(rows, jsonl)
    if csv_path.is_file():
        with csv_path.open(newline="", encoding="utf-8") as f:
            return _rows_to_table(list(csv.DictReader(f)), csv_path)
    return {}


def _rows_to_table(rows: list[dict], source: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    table = {}
    for n, row in enumerate(rows, 1):
        name_col = next((c for c in _NAME_COLUMNS if c in row), None)
        text_col = next((c for c in _CAPTION_COLUMNS if c in row), None)
        if name_col is None or text_col is None:
            raise ValueError(
                f"{source} row {n}: need a file name column {_NAME_COLUMNS} and a caption column "
                f"{_CAPTION_COLUMNS}, got {sorted(row)}"
            )
        extra = {k: v for k, v in row.items() if k not in (name_col, text_col)}
        table[Path(row[name_col]).as_posix()] = (str(row[text_col] or "").strip(), extra)
    return table
