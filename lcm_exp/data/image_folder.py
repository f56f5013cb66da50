"""A folder of captioned images as (key, image, caption, meta) samples for `make_shards`.

The folder is read by the same reader training uses (``image_folder_source.ImageFolderReader``: metadata.jsonl,
metadata.csv or captions.csv rows, else .txt siblings), with the same caption rule (``CaptionExtractor``), so shards
of a folder hold exactly the samples ``data=imagefolder`` would train on. Images without a caption, and unreadable
images, are logged and left out (the writer is a data tool: one bad file should not stop it).
"""

from __future__ import annotations

import io
import logging
import random
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from PIL import Image

from lcm_exp.data.captions import CaptionExtractor
from lcm_exp.data.image_folder_source import CAPTION_KEYS, ImageFolderReader
from lcm_exp.data.indexed_source import scalar_fields
from lcm_exp.data.skips import SkipSample

logger = logging.getLogger(__name__)

Sample = tuple[str, Image.Image, str, dict]


def image_folder_samples(
    folder: str | Path, caption_column: str | None = None, caption_keys: Sequence[str] = CAPTION_KEYS
) -> Iterator[Sample]:
    reader = ImageFolderReader(folder, caption_column, caption_keys)
    keys = [caption_column] if caption_column else list(caption_keys)
    captions = CaptionExtractor(keys, json_field=None)
    rng = random.Random(0)  # unused with caption_choice="first"
    for index in range(len(reader)):
        rel = reader.files[index]
        try:
            record = reader.read(index)
            caption = captions(record.fields, {}, rng)
            image = Image.open(io.BytesIO(record.image))
            image.load()
        except SkipSample as exn:
            logger.warning("%s: %s: left out", rel, exn)
            continue
        except Exception as exn:
            logger.warning("unreadable image %s (%s: %s): left out", rel, type(exn).__name__, exn)
            continue
        meta = {k: v for k, v in scalar_fields(record.fields).items() if k not in keys}
        yield _key(index, rel), image, caption, {**meta, "file_name": rel}


def _key(index: int, rel: str) -> str:
    """Unique and webdataset-safe: no dots (webdataset splits key from extension at the first dot)."""
    stem = rel.rsplit(".", 1)[0]
    return f"{index:08d}_" + re.sub(r"[^A-Za-z0-9_-]", "_", stem)[:100]
