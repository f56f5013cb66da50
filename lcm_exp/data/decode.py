"""One raw webdataset sample (bytes per extension) -> one training sample, or a classified SkipSample.

We decode images with PIL ourselves instead of webdataset's `.decode()`: its errors do not reach the
pipeline's handler (platform-facts), and we must tell a corrupt file from a decompression bomb from a
filtered sample. Cheap checks run first: json filters, then the image header (size, pixel budget), and only
then the full decode.
"""

from __future__ import annotations

import io
import random
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image

from lcm_exp.data.captions import CaptionExtractor
from lcm_exp.data.metadata import MetadataFilter, original_size_from_json, parse_json
from lcm_exp.data.skips import SkipSample
from lcm_exp.data.spec import DataSpec
from lcm_exp.data.transforms import ImageTransform


def open_image(sample: Mapping[str, Any], image_keys: Sequence[str], max_pixels: int) -> Image.Image:
    """The sample's image, header parsed but pixels NOT decoded yet (so a bomb is refused for free)."""
    key = next((k for k in image_keys if k in sample), None)
    if key is None:
        raise SkipSample("missing_image", f"none of {list(image_keys)} present")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we apply our own limit below
            img = Image.open(io.BytesIO(sample[key]))
    except Image.DecompressionBombError as exn:
        raise SkipSample("too_many_pixels", str(exn)) from exn
    except Exception as exn:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ... on bad headers
        raise SkipSample("bad_image", f".{key}: {type(exn).__name__}: {exn}") from exn
    if img.width * img.height > max_pixels:
        raise SkipSample("too_many_pixels", f"{img.width}x{img.height} exceeds max_image_pixels={max_pixels}")
    return img


def load_pixels(img: Image.Image) -> Image.Image:
    try:
        img.load()
    except Exception as exn:  # truncated / corrupt data surfaces only here
        raise SkipSample("bad_image", f"{type(exn).__name__}: {exn}") from exn
    return img


class SampleDecoder:
    """Callable: (raw sample, rng) -> dict(pixel_values, caption, original_size, crop_top_left, key)."""

    def __init__(self, spec: DataSpec, resolution: int):
        self.spec = spec
        self.transform = ImageTransform(
            resolution,
            interpolation=spec.image_interpolation,
            crop=spec.crop,
            random_flip=spec.random_flip,
            small_image=spec.small_image,
        )
        self.captions = CaptionExtractor(
            spec.caption_keys, spec.caption_json_field, choice=spec.caption_choice, empty=spec.empty_caption
        )
        self.filter = MetadataFilter(spec.filters)

    def __call__(self, raw: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
        meta = parse_json(raw.get("json"))
        caption = self.captions(raw, meta, rng)
        self.filter.check_json(meta)
        json_size = original_size_from_json(meta, self.spec.size_json_keys)
        if json_size is not None:
            self.filter.check_size(json_size)
        img = open_image(raw, self.spec.image_keys, self.spec.max_image_pixels)
        if json_size is None:
            self.filter.check_size((img.height, img.width))
        out = self.transform(load_pixels(img), rng)
        return {
            "pixel_values": out.pixel_values,
            "caption": caption,
            "original_size": json_size if json_size is not None else out.original_size,
            "crop_top_left": out.crop_top_left,
            "key": raw.get("__key__", "?"),
        }
