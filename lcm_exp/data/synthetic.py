"""A deterministic captioned-shapes dataset: offline data for tests, smoke runs and toy teachers.

Each sample is one coloured shape on a plain background with a caption naming both ("a red circle on a
blue background"), so whether a model follows the prompt can be checked by eye or by pixel colour.
Sizes cycle through a list that includes non-square images, to exercise resize/crop and SDXL size
conditioning. Shapes are drawn at 4x and downsampled for anti-aliased edges.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from PIL import Image, ImageDraw

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (240, 210, 40),
    "purple": (140, 50, 180),
    "orange": (245, 140, 30),
}
BACKGROUNDS = {"white": (245, 245, 245), "black": (15, 15, 15), "blue": (60, 110, 200), "grey": (128, 128, 128)}
SHAPES = ("circle", "square", "triangle")
DEFAULT_SIZES = ((48, 48), (40, 64), (64, 40))  # (height, width)
_SUPERSAMPLE = 4

Sample = tuple[str, Image.Image, str, dict]


def render(shape: str, colour: str, background: str, size: tuple[int, int], rng: random.Random) -> Image.Image:
    """One RGB image of `size` (height, width); shape extent and position drawn from rng."""
    h, w = size
    s = _SUPERSAMPLE
    canvas = Image.new("RGB", (w * s, h * s), BACKGROUNDS[background])
    side = rng.uniform(0.35, 0.7) * min(h, w) * s
    x0 = rng.uniform(0, w * s - side)
    y0 = rng.uniform(0, h * s - side)
    box = (x0, y0, x0 + side, y0 + side)
    draw = ImageDraw.Draw(canvas)
    fill = COLOURS[colour]
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([(x0 + side / 2, y0), (x0 + side, y0 + side), (x0, y0 + side)], fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")
    return canvas.resize((w, h), Image.Resampling.BOX)


def synthetic_samples(n: int, *, seed: int = 0, sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES) -> Iterator[Sample]:
    """n samples (key, image, caption, meta), identical for the same seed and sizes."""
    if n < 0:
        raise ValueError(f"synthetic sample count must be >= 0, got {n}")
    if not sizes:
        raise ValueError("synthetic sizes must not be empty")
    rng = random.Random(seed)
    colours, backgrounds = sorted(COLOURS), sorted(BACKGROUNDS)
    for i in range(n):
        shape = rng.choice(SHAPES)
        background = rng.choice(backgrounds)
        colour = rng.choice([c for c in colours if c != background])
        size = tuple(sizes[i % len(sizes)])
        image = render(shape, colour, background, size, rng)
        article = "an" if colour[0] in "aeiou" else "a"
        caption = f"{article} {colour} {shape} on a {background} background"
        meta = {"shape": shape, "colour": colour, "background": background}
        yield f"synthetic_{i:06d}", image, caption, meta
