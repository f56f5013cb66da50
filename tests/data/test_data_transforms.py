"""transforms.py: crop coordinates checked against the pixels they claim to contain; mode conversions."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from lcm_exp.data.skips import FilteredSample, SkipSample
from lcm_exp.data.transforms import ImageTransform, resized_size, to_rgb, to_tensor

R = 32


def _uint8(t: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8, inverting to_tensor exactly."""
    return np.rint((t.permute(1, 2, 0).numpy() + 1.0) * 127.5).astype(np.int64)


def test_resized_size_truncates_long_side_like_torchvision():
    assert resized_size(40, 64, 32) == (32, 51)  # 32 * 64 / 40 = 51.2
    assert resized_size(64, 40, 32) == (51, 32)
    assert resized_size(33, 100, 32) == (32, 96)  # 96.97 truncated
    assert resized_size(32, 32, 32) == (32, 32)


def test_to_tensor_range():
    img = Image.fromarray(np.array([[[0, 255, 51]]], dtype=np.uint8), "RGB")
    t = to_tensor(img)
    assert t.dtype == torch.float32 and t.shape == (3, 1, 1)
    assert t.flatten().tolist() == pytest.approx([-1.0, 1.0, 51 / 127.5 - 1.0])


@pytest.mark.parametrize("h,w", [(32, 48), (48, 32)])
@pytest.mark.parametrize("flip", [False, True])
def test_random_crop_coordinates_match_pixels(kit, h, w, flip):
    """No resize (short side == R): the output must be exactly the region the reported corner names, in the
    (flipped, if flipped) image. The gradient encodes x in red and y in green."""
    img = kit.gradient(h, w)
    transform = ImageTransform(R, crop="random", random_flip=flip)
    seen_left, seen_top, flips = set(), set(), 0
    for seed in range(40):
        out = transform(img, random.Random(seed))
        pix = _uint8(out.pixel_values)
        top, left = out.crop_top_left
        assert out.original_size == (h, w)
        assert 0 <= top <= h - R and 0 <= left <= w - R
        assert (pix[:, :, 1] == 5 * (top + np.arange(R))[:, None]).all()
        red = pix[0, :, 0]
        if red[0] > red[-1]:  # flipped: column j of the output is column left+j of the mirrored image
            flips += 1
            assert (red == 5 * (w - 1 - (left + np.arange(R)))).all()
        else:
            assert (red == 5 * (left + np.arange(R))).all()
        seen_left.add(left)
        seen_top.add(top)
    assert len(seen_left | seen_top) > 5  # the corner really is random
    assert (0 < flips < 40) if flip else flips == 0


def test_flip_left_is_mirrored_corner(kit):
    """Same rng draws with and without flip: same crop; a flipped result is the mirrored crop and reports
    left' = W - left - R."""
    img = kit.gradient(32, 48)
    outcomes = set()
    for seed in range(20):
        plain = ImageTransform(R, crop="random")(img, random.Random(seed))
        flipped = ImageTransform(R, crop="random", random_flip=True)(img, random.Random(seed))
        (tp, lp), (tf, lf) = plain.crop_top_left, flipped.crop_top_left
        assert tf == tp
        if torch.equal(flipped.pixel_values, plain.pixel_values):
            assert lf == lp
            outcomes.add("kept")
        else:
            assert torch.equal(flipped.pixel_values, plain.pixel_values.flip(-1))
            assert lf == 48 - lp - R
            outcomes.add("flipped")
    assert outcomes == {"kept", "flipped"}


def test_center_crop_literal_offsets(kit):
    out = ImageTransform(R, crop="center")(kit.gradient(32, 48), random.Random(0))
    assert out.crop_top_left == (0, 8)
    assert _uint8(out.pixel_values)[0, :, 0].tolist() == [5 * (8 + j) for j in range(R)]
    # resized 32 x 51: (51 - 32) / 2 = 9.5 -> round() -> 10 (Python and torchvision CenterCrop agree)
    out = ImageTransform(R, crop="center")(kit.gradient(40, 64), random.Random(0))
    assert out.crop_top_left == (0, 10) and out.original_size == (40, 64)
    out = ImageTransform(R, crop="center")(kit.gradient(48, 32), random.Random(0))
    assert out.crop_top_left == (8, 0)


def test_resize_then_crop_region(kit):
    """64 x 96 -> 32 x 48; the crop is read from the resized image at the reported corner (resized pixels)."""
    img = kit.gradient(48, 48).resize((96, 64), Image.Resampling.NEAREST)
    for interp, pil in [("bilinear", Image.Resampling.BILINEAR), ("bicubic", Image.Resampling.BICUBIC)]:
        out = ImageTransform(R, crop="random", interpolation=interp)(img, random.Random(3))
        top, left = out.crop_top_left
        assert out.original_size == (64, 96) and top == 0 and 0 <= left <= 16
        expected = np.asarray(img.resize((48, 32), pil))[top : top + R, left : left + R]
        assert (_uint8(out.pixel_values) == expected).all()


def test_same_seed_same_output(kit):
    img = kit.gradient(40, 64)
    t = ImageTransform(R, crop="random", random_flip=True)
    a = [t(img, random.Random(7)) for _ in range(2)]
    assert a[0].crop_top_left == a[1].crop_top_left and torch.equal(a[0].pixel_values, a[1].pixel_values)


def test_small_image_policies(kit):
    small = kit.image(20, 24, color=(0, 255, 0))
    up = ImageTransform(R, small_image="upscale")(small, random.Random(0))
    assert up.pixel_values.shape == (3, R, R) and up.original_size == (20, 24)
    assert _uint8(up.pixel_values)[5, 5].tolist() == [0, 255, 0]
    with pytest.raises(FilteredSample) as info:
        ImageTransform(R, small_image="skip")(small, random.Random(0))
    assert info.value.reason == "small_image" and isinstance(info.value, SkipSample)


def test_bad_options():
    with pytest.raises(ValueError, match="crop"):
        ImageTransform(R, crop="diagonal")
    with pytest.raises(ValueError, match="image_interpolation"):
        ImageTransform(R, interpolation="nearest")
    with pytest.raises(ValueError, match="small_image"):
        ImageTransform(R, small_image="pad")


def _px(img: Image.Image) -> list[int]:
    rgb = to_rgb(img)
    assert rgb.mode == "RGB" and rgb.size == img.size
    return list(rgb.getpixel((0, 0)))


def test_mode_conversions():
    assert _px(Image.new("L", (4, 4), 77)) == [77, 77, 77]
    assert _px(Image.new("1", (4, 4), 1)) == [255, 255, 255]
    assert _px(Image.new("LA", (4, 4), (0, 0))) == [255, 255, 255]  # fully transparent -> white
    # red at alpha 128 over white: 0 * 128/255 + 255 * 127/255 = 127
    assert _px(Image.new("RGBA", (4, 4), (255, 0, 0, 128))) == pytest.approx([255, 127, 127], abs=1)
    assert _px(Image.new("CMYK", (4, 4), (0, 255, 255, 0))) == [255, 0, 0]
    palette = Image.new("RGB", (4, 4), (10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE)
    assert _px(palette) == [10, 200, 30]
    transparent = Image.new("P", (4, 4), 0)
    transparent.putpalette([0, 0, 0] * 256)
    transparent.info["transparency"] = 0
    assert _px(transparent) == [255, 255, 255]  # black but transparent -> white background


def test_16bit_is_scaled_not_clipped():
    arr = np.array([[65535, 32896, 0, 257]], dtype=np.uint16)
    rgb = to_rgb(Image.fromarray(arr))  # mode I;16
    assert np.asarray(rgb)[0, :, 0].tolist() == [255, 128, 0, 1]
    i32 = Image.fromarray(arr.astype(np.int32), "I")
    assert np.asarray(to_rgb(i32))[0, :, 0].tolist() == [255, 128, 0, 1]
