"""The one reader of a folder of captioned images: ``data=imagefolder`` trains from it, the shard tool
(``make_shards --image-folder``, through ``image_folder.py``) converts it, so both see the same samples.

Layout: the Hugging Face ``imagefolder`` one. A ``metadata.jsonl`` or ``metadata.csv`` (or ``captions.csv``) at the
folder root has one row per image, a ``file_name`` column relative to the root and the caption in a column
(``data.caption_column``, else the first of ``data.caption_keys`` present: "text", "caption"); other columns are
metadata that the filters and the SDXL original-size keys read. An image whose row has no caption (or that has no row)
uses a sibling ``.txt`` (the "txt" caption key). Images are listed once at start; reading happens per sample, so a file
that turns out unreadable or captionless is skipped and counted like a bad WebDataset sample.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

from lcm_exp.data.indexed_source import Record
from lcm_exp.data.skips import SkipSample
from lcm_exp.data.spec import DataSpec

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
METADATA_FILES = ("metadata.jsonl", "metadata.csv", "captions.csv")
NAME_COLUMNS = ("file_name", "filename", "image", "file")
CAPTION_KEYS = tuple(DataSpec().caption_keys)  # data.caption_keys' default: txt, text, caption


class ImageFolderReader:
    """RecordReader over ``folder``: record i is the i-th image in sorted relative-path order.

    ``caption_column`` / ``caption_keys``: where a row's caption is. An image whose row has none (or that has no row)
    gets its .txt sibling under the first of them, so the caption rule finds it there.
    """

    def __init__(self, folder: str | Path, caption_column: str | None = None, caption_keys=CAPTION_KEYS):
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{str(folder)!r}: image folder not found")
        self.name = str(self.folder)
        self.caption_keys = [caption_column] if caption_column else list(caption_keys)
        self.rows = read_metadata(self.folder)
        self.files = sorted(
            p.relative_to(self.folder).as_posix()
            for p in self.folder.rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not self.files:
            raise ValueError(f"{self.name!r}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in the folder")
        if caption_column and self.rows and not any(caption_column in row for row in self.rows.values()):
            columns = sorted({c for row in self.rows.values() for c in row})
            raise ValueError(f"caption column {caption_column!r} is not a metadata column of {self.name} "
                             f"(columns: {columns})")
        stray = sorted(set(self.rows) - set(self.files))
        if stray:
            logger.warning("%s: %d metadata row(s) name no image in the folder, e.g. %s", self.name, len(stray),
                           stray[:3])  # fmt: skip

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int) -> Record:
        rel = self.files[index]
        path = self.folder / rel
        fields: dict[str, Any] = dict(self.rows.get(rel, {}))
        if not any(fields.get(k) not in (None, "") for k in self.caption_keys) and path.with_suffix(".txt").is_file():
            fields[self.caption_keys[0]] = path.with_suffix(".txt").read_bytes()  # where the caption rule looks first
        try:
            image = path.read_bytes()
        except OSError as exn:
            raise SkipSample("bad_image", f"{rel}: {exn}") from exn
        return Record(key=rel, image=image, fields=fields)


def read_metadata(folder: Path) -> dict[str, dict[str, Any]]:
    """Relative image path -> the other columns of its row; {} without a metadata file."""
    present = [folder / name for name in METADATA_FILES if (folder / name).is_file()]
    if len(present) > 1:
        raise ValueError(f"{folder}: several metadata files {[p.name for p in present]}; keep one")
    if not present:
        return {}
    path = present[0]
    if path.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exn:
                    raise ValueError(f"{path}:{n}: not valid JSON: {exn}") from exn
    else:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    table = {}
    for n, row in enumerate(rows, 1):
        name_col = next((c for c in NAME_COLUMNS if c in row), None) if isinstance(row, dict) else None
        if name_col is None:
            raise ValueError(f"{path} row {n}: needs a file name column (one of {list(NAME_COLUMNS)})")
        table[Path(str(row[name_col])).as_posix()] = {k: v for k, v in row.items() if k != name_col}
    return table
