"""``data=hf_dataset``: train from a Hugging Face ``datasets`` dataset with an image and a caption column.

``data.path`` is a ``save_to_disk`` folder (read with ``load_from_disk``), a local dataset folder or file set
(``load_dataset(path)``, e.g. the imagefolder layout or parquet files), or a hub dataset name (downloaded whole by
``load_dataset``; for web-scale sets convert to shards instead). Images are read undecoded (``Image(decode=False)``)
so our decoder applies the pixel budget and counts a corrupt image as one skipped sample. ``datasets`` is an optional
dependency (``pip install 'lcm_exp[datasets]'``).
"""

from __future__ import annotations

import io
import logging
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from lcm_exp.data.captions import CaptionExtractor
from lcm_exp.data.indexed_source import Record, scalar_fields
from lcm_exp.data.skips import SkipSample

logger = logging.getLogger(__name__)

_SAVED_MARKERS = ("state.json", "dataset_dict.json")  # what save_to_disk writes


def import_datasets():
    try:
        import datasets
    except ImportError as exn:
        raise ImportError(
            "data.source=hf_dataset (and make_shards --hf-dataset) need the `datasets` package: "
            "pip install 'lcm_exp[datasets]'"
        ) from exn
    return datasets


def load_hf_dataset(path: str, *, split: str = "train", config_name: str | None = None):
    """One split of the dataset at ``path`` (saved folder, local dataset, or hub name)."""
    datasets = import_datasets()
    local = Path(path).expanduser()
    try:
        if local.is_dir() and any((local / m).is_file() for m in _SAVED_MARKERS):
            ds = datasets.load_from_disk(str(local))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise KeyError(f"data.split={split!r}: {path} has splits {sorted(ds)}")
                ds = ds[split]
        else:
            ds = datasets.load_dataset(str(local) if local.exists() else path, name=config_name, split=split)
    except (ValueError, OSError) as exn:  # not found (also offline), unknown split or config, unreadable files
        message = f"data.path={path!r} (split {split!r}, config {config_name!r}): cannot load the dataset: {exn}"
        raise (FileNotFoundError if isinstance(exn, FileNotFoundError) else RuntimeError)(message) from exn
    if not isinstance(ds, datasets.Dataset):
        raise TypeError(f"data.path={path!r}: got a {type(ds).__name__}; only map-style datasets are supported")
    return ds


class HFDatasetReader:
    """RecordReader over one split: record i is row i (image bytes, caption and scalar metadata columns)."""

    def __init__(self, dataset, *, name: str, image_column: str = "image", caption_column: str | None = None,
                 caption_keys: Sequence[str] = ("txt", "text", "caption")):  # fmt: skip
        datasets = import_datasets()
        columns = list(dataset.column_names)
        if image_column not in columns:
            raise ValueError(f"data.image_column={image_column!r} is not a column of {name} (columns: {columns})")
        captions = [caption_column] if caption_column else [k for k in caption_keys if k in columns]
        if not captions or captions[0] not in columns:
            problem = (f"data.caption_column={caption_column!r} is not" if caption_column
                       else f"none of data.caption_keys {list(caption_keys)} is")  # fmt: skip
            raise ValueError(f"{problem} a column of {name} (columns: {columns}); set data.caption_column")
        if isinstance(dataset.features[image_column], datasets.Image):
            dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
        scalars = [c for c, f in dataset.features.items() if isinstance(f, datasets.Value)]
        keep = list(dict.fromkeys([image_column, *captions, *scalars]))
        self.dataset = dataset.select_columns(keep)
        self.name, self.image_column = name, image_column

    def __len__(self) -> int:
        return len(self.dataset)

    def read(self, index: int) -> Record:
        row = dict(self.dataset[index])
        image = image_bytes(row.pop(self.image_column), f"{self.name}#{index}")
        return Record(key=f"{index}", image=image, fields=row)


def image_bytes(value: Any, where: str) -> bytes:
    """The encoded image behind a datasets image value: {"bytes", "path"}, raw bytes, a file path or a PIL image."""
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if value is None:
        raise SkipSample("missing_image", f"{where}: no image")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        try:
            return Path(value).read_bytes()
        except OSError as exn:
            raise SkipSample("bad_image", f"{where}: {exn}") from exn
    if isinstance(value, Image.Image):
        buf = io.BytesIO()
        value.save(buf, format="PNG")  # lossless: the transform still sees the original pixels
        return buf.getvalue()
    raise SkipSample("bad_image", f"{where}: unsupported image value of type {type(value).__name__}")


def hf_dataset_samples(path: str, *, split: str = "train", config_name: str | None = None,
                       image_column: str = "image", caption_column: str | None = None,
                       ) -> Iterator[tuple[str, Image.Image, str, dict]]:  # fmt: skip
    """(key, image, caption, meta) for make_shards; unreadable or captionless rows are logged and left out."""
    reader = HFDatasetReader(load_hf_dataset(path, split=split, config_name=config_name), name=path,
                             image_column=image_column, caption_column=caption_column)  # fmt: skip
    keys = [caption_column] if caption_column else ["txt", "text", "caption"]
    captions = CaptionExtractor(keys, json_field=None)
    rng = random.Random(0)  # unused with choice="first"; the extractor's interface takes one
    for index in range(len(reader)):
        try:
            record = reader.read(index)
            caption = captions(record.fields, {}, rng)
            image = Image.open(io.BytesIO(record.image))
            image.load()
        except Exception as exn:
            logger.warning("%s row %d left out (%s: %s)", path, index, type(exn).__name__, exn)
            continue
        meta = {k: v for k, v in scalar_fields(record.fields).items() if k not in keys}
        yield f"{index:08d}", image, caption, meta
