"""Image -> training tensor with the SDXL micro-conditioning numbers (original size, crop corner).

Pure PIL + torch (torchvision is broken beside our CPU torch). Resize and crop follow torchvision/SDXL
conventions so runs are comparable with the diffusers scripts: the shorter side becomes `resolution`
(long side truncated like torchvision), center crops round like CenterCrop, and the crop corner is reported
flip-aware (left = resized_width - left - R after a horizontal flip). All randomness comes from a passed
`random.Random`, never from a time/pid seed.
"""

from __future__ import annotations

import random
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from lcm_exp.config.choices import CROPS, INTERPOLATIONS, SMALL_IMAGE_POLICIES
from lcm_exp.data.skips import FilteredSample, SkipSample

_RESAMPLE = {name: Image.Resampling[name.upper()] for name in INTERPOLATIONS}

_WHITE = (255, 255, 255, 255)


class TransformedImage(NamedTuple):
    pixel_values: torch.Tensor  # float32 (3, R, R) in [-1, 1]
    original_size: tuple[int, int]  # (height, width) of the decoded image
    crop_top_left: tuple[int, int]  # (top, left) in resized-image pixels, flip-aware


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB. Transparency is composited on white (a black background would teach the model
    that logos and cut-outs live on black); 16/32-bit integer images are scaled, not clipped."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba).convert("RGB")
    if mode.startswith("I") or mode == "F":
        return _high_depth_to_rgb(img)
    try:
        return img.convert("RGB")
    except ValueError as exn:  # e.g. LAB/HSV have no direct conversion in some Pillow builds
        raise SkipSample("unsupported_image_mode", f"cannot convert mode {mode} to RGB: {exn}") from exn


def _high_depth_to_rgb(img: Image.Image) -> Image.Image:
    arr = np.asarray(img).astype(np.float64)
    if img.mode.startswith("I;16") or arr.max(initial=0) > 255:
        arr = arr / 257.0  # 65535 -> 255
    gray = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    return Image.fromarray(gray, mode="L").convert("RGB")


def resized_size(height: int, width: int, resolution: int) -> tuple[int, int]:
    """(h, w) after scaling the shorter side to `resolution`; the long side truncates like torchvision."""
    if height <= width:
        return resolution, int(resolution * width / height)
    return int(resolution * height / width), resolution


class ImageTransform:
    """Callable: (PIL image, rng) -> TransformedImage."""

    def __init__(
        self,
        resolution: int,
        *,
        interpolation: str = "bilinear",
        crop: str = "random",
        random_flip: bool = False,
        small_image: str = "upscale",
    ):
        if resolution <= 0:
            raise ValueError(f"resolution must be positive, got {resolution}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"image_interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
        if crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
        if small_image not in SMALL_IMAGE_POLICIES:
            raise ValueError(f"small_image must be one of {SMALL_IMAGE_POLICIES}, got {small_image!r}")
        self.resolution = resolution
        self.resample = _RESAMPLE[interpolation]
        self.crop = crop
        self.random_flip = random_flip
        self.small_image = small_image

    def __call__(self, img: Image.Image, rng: random.Random) -> TransformedImage:
        R = self.resolution
        width, height = img.size
        if min(height, width) < R and self.small_image == "skip":
            raise FilteredSample("small_image", f"{width}x{height} is smaller than resolution {R}")
        img = to_rgb(img)
        new_h, new_w = resized_size(height, width, R)
        if (new_w, new_h) != (width, height):
            img = img.resize((new_w, new_h), resample=self.resample)
        if self.crop == "random":
            top, left = rng.randint(0, new_h - R), rng.randint(0, new_w - R)
        else:
            top, left = int(round((new_h - R) / 2.0)), int(round((new_w - R) / 2.0))
        img = img.crop((left, top, left + R, top + R))
        if self.random_flip and rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            left = new_w - left - R
        return TransformedImage(to_tensor(img), (height, width), (top, left))


def to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL -> float32 (3, H, W) in [-1, 1]."""
    arr = np.array(img, dtype=np.uint8, copy=True)
    return torch.from_numpy(arr).permute(2, 0, 1).float().div_(127.5).sub_(1.0)
