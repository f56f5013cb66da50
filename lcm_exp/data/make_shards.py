"""Write (key, image, caption, meta) samples into webdataset shards; CLI: `python -m lcm_exp.data.make_shards`.

Each sample becomes <key>.jpg (or .png), <key>.txt and <key>.json (meta plus original_width/original_height,
the keys img2dataset uses, so SDXL size conditioning reads them). Each shard is written under a temporary
name and renamed when complete: a killed writer never leaves a half shard under a final name.

    python -m lcm_exp.data.make_shards --synthetic 1000 --out data/shapes
    python -m lcm_exp.data.make_shards --image-folder photos/ --out data/photos --samples-per-shard 500
    python -m lcm_exp.data.make_shards --hf-dataset saved_or_name --split train --caption-column prompt --out data/hf
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import webdataset as wds
from PIL import Image

from lcm_exp.data.shards import brace_spec
from lcm_exp.data.transforms import to_rgb

FORMATS = ("jpg", "png")
_TMP_SUFFIX = ".tmp"


def encode_image(img: Image.Image, image_format: str, jpeg_quality: int = 95) -> bytes:
    buf = io.BytesIO()
    if image_format == "jpg":
        img = img if img.mode in ("RGB", "L") else to_rgb(img)
        img.save(buf, format="JPEG", quality=jpeg_quality)
    elif image_format == "png":
        img = img if img.mode in ("RGB", "RGBA", "L", "LA", "P", "1", "I;16") else to_rgb(img)
        img.save(buf, format="PNG")
    else:
        raise ValueError(f"image format must be one of {FORMATS}, got {image_format!r}")
    return buf.getvalue()


class _ShardFile:
    """One shard being written: a tar under a temporary name, renamed into place by `commit`."""

    def __init__(self, path: Path):
        self.path = path
        self.tmp = path.with_name(path.name + _TMP_SUFFIX)
        self.file: BinaryIO = open(self.tmp, "wb")
        self.writer = wds.TarWriter(self.file, encoder=False, mtime=0)  # mtime fixed: reproducible tars
        self.count = 0

    def write(self, sample: dict[str, Any]) -> None:
        self.writer.write(sample)
        self.count += 1

    def commit(self) -> Path:
        self.writer.close()
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # finish the tar stream so it does not write on a closed file later
            self.writer.close()
        self.file.close()
        self.tmp.unlink(missing_ok=True)


def write_shards(
    samples: Iterable[tuple[str, Image.Image, str, dict]],
    out_dir: str | Path,
    prefix: str = "shard",
    samples_per_shard: int = 1000,
    *,
    image_format: str = "jpg",
    jpeg_quality: int = 95,
    overwrite: bool = False,
) -> list[Path]:
    """Write the samples into out_dir/<prefix>-NNNNNN.tar; returns the shard paths in order.

    Refuses (FileExistsError) to add to a folder that already has <prefix>-*.tar shards unless overwrite,
    which first removes them, so old and new shards never mix.
    """
    if samples_per_shard <= 0:
        raise ValueError(f"samples_per_shard must be positive, got {samples_per_shard}")
    if image_format not in FORMATS:
        raise ValueError(f"image format must be one of {FORMATS}, got {image_format!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    existing = sorted(out.glob(f"{prefix}-*.tar"))
    if existing and not overwrite:
        raise FileExistsError(
            f"{out} already holds {len(existing)} {prefix}-*.tar shard(s); pass overwrite=True (--overwrite)"
        )
    for path in existing:
        path.unlink()
    paths: list[Path] = []
    seen: set[str] = set()
    shard: _ShardFile | None = None
    try:
        for key, image, caption, meta in samples:
            _check_key(key, seen)
            if shard is None or shard.count == samples_per_shard:
                if shard is not None:
                    paths.append(shard.commit())
                shard = _ShardFile(out / f"{prefix}-{len(paths):06d}.tar")
            record = {"original_width": image.width, "original_height": image.height, **meta}
            shard.write(
                {
                    "__key__": key,
                    image_format: encode_image(image, image_format, jpeg_quality),
                    "txt": caption.encode("utf-8"),
                    "json": json.dumps(record, sort_keys=True).encode("utf-8"),
                }
            )
        if shard is not None:
            paths.append(shard.commit())
    except BaseException:
        if shard is not None:
            shard.abort()
        raise
    return paths


def _check_key(key: str, seen: set[str]) -> None:
    if not key or "." in key or key.startswith("__") or key in seen:
        reason = "duplicate" if key in seen else "empty, contains '.', or starts with '__'"
        raise ValueError(f"sample key {key!r} is not usable in a webdataset shard ({reason})")
    seen.add(key)


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as exn:
        raise argparse.ArgumentTypeError(f"size must be HxW (e.g. 48x64), got {text!r}") from exn
    return h, w


def main(argv: Sequence[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(
        prog="python -m lcm_exp.data.make_shards", description="Write captioned images into webdataset shards."
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image-folder", type=Path,
                        help="images with metadata.jsonl/.csv rows or .txt siblings, read as data=imagefolder reads it")
    source.add_argument("--synthetic", type=int, metavar="N", help="N generated captioned-shape images")
    source.add_argument("--hf-dataset", metavar="PATH_OR_NAME",
                        help="a `datasets` dataset: save_to_disk folder, local dataset folder, or hub name")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--prefix", default="shard")
    parser.add_argument("--samples-per-shard", type=int, default=1000)
    parser.add_argument("--format", choices=FORMATS, default="jpg", dest="image_format")
    parser.add_argument("--jpeg-quality", type=int, default=95)
    parser.add_argument("--seed", type=int, default=0, help="synthetic: generator seed")
    parser.add_argument("--size", type=_size, action="append", help="synthetic: HxW, repeatable (cycled)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing <prefix>-*.tar shards")
    parser.add_argument("--split", default="train", help="hf-dataset: the split")
    parser.add_argument("--dataset-config", help="hf-dataset: the dataset's config name")
    parser.add_argument("--image-column", default="image", help="hf-dataset: the image column")
    parser.add_argument("--caption-column", help="hf-dataset / image-folder: the caption column (default: the first of "
                        "text, caption; an image folder also a .txt sibling)")
    args = parser.parse_args(argv)

    if args.synthetic is not None:
        from lcm_exp.data.synthetic import DEFAULT_SIZES, synthetic_samples

        samples = synthetic_samples(args.synthetic, seed=args.seed, sizes=args.size or DEFAULT_SIZES)
    elif args.hf_dataset is not None:
        from lcm_exp.data.hf_dataset_source import hf_dataset_samples

        samples = hf_dataset_samples(args.hf_dataset, split=args.split, config_name=args.dataset_config,
                                     image_column=args.image_column, caption_column=args.caption_column)  # fmt: skip
    else:
        from lcm_exp.data.image_folder import image_folder_samples

        samples = image_folder_samples(args.image_folder, caption_column=args.caption_column)
    try:
        paths = write_shards(
            samples,
            args.out,
            args.prefix,
            args.samples_per_shard,
            image_format=args.image_format,
            jpeg_quality=args.jpeg_quality,
            overwrite=args.overwrite,
        )
    except (FileExistsError, FileNotFoundError, ValueError, ImportError, RuntimeError) as exn:
        parser.error(str(exn))
    if not paths:
        parser.error("no samples to write")
    for path in paths:
        print(path)
    # Hydra's override grammar needs a brace range quoted inside the argument (platform-facts)
    print(f"\n{len(paths)} shard(s). Use: 'data.shards=\"{brace_spec(paths)}\"'")
    return paths


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    main()
