"""The toy world: one shape per 32 x 32 image, every visible attribute named in the caption.

"a red circle on the left on a gray background": shape x colour x position x background (3 x 4 x 5 x 3 = 180
captions), with jittered size, position and colour so that images are not a lookup table. Rendering is vectorised
in torch with 4x supersampling (thousands of images per second), fully determined by a ``torch.Generator``.
Because each attribute is a label, a classifier can check whether a generated image matches its prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

RESOLUTION = 32
SUPERSAMPLE = 4

SHAPES = ("circle", "square", "triangle")
COLOURS = {
    "red": (0.86, 0.13, 0.13),
    "green": (0.13, 0.66, 0.25),
    "blue": (0.16, 0.28, 0.88),
    "yellow": (0.95, 0.83, 0.15),
}
POSITIONS = {  # name -> (centre x, centre y) as fractions of the side
    "on the left": (0.28, 0.5),
    "on the right": (0.72, 0.5),
    "at the top": (0.5, 0.28),
    "at the bottom": (0.5, 0.72),
    "in the center": (0.5, 0.5),
}
BACKGROUNDS = {"white": (0.95, 0.95, 0.95), "black": (0.06, 0.06, 0.06), "gray": (0.5, 0.5, 0.5)}

#: attribute name -> its values, in the column order of an attribute tensor
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "shape": SHAPES,
    "colour": tuple(COLOURS),
    "position": tuple(POSITIONS),
    "background": tuple(BACKGROUNDS),
}
NUM_CLASSES = tuple(len(v) for v in ATTRIBUTES.values())

_HALF_SIZE = (0.13, 0.19)  # half extent of a shape, fraction of the side
_POSITION_JITTER = 0.05
_COLOUR_JITTER = 0.04
_CHUNK = 256  # images drawn at once (the supersampled masks are large)


def caption(attrs: torch.Tensor | list[int]) -> str:
    """The caption of one attribute row (shape, colour, position, background)."""
    shape, colour, position, background = (ATTRIBUTES[k][int(i)] for k, i in zip(ATTRIBUTES, attrs, strict=True))
    return f"a {colour} {shape} {position} on a {background} background"


def vocabulary() -> list[str]:
    """Every word a caption can contain (the toy tokenizer gives each one token)."""
    words = {w for values in ATTRIBUTES.values() for value in values for w in value.split()}
    return sorted(words | {"a", "on", "background"})


def sample_attributes(n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 4) long: independent uniform draws per attribute."""
    return torch.stack([torch.randint(0, k, (n,), generator=generator) for k in NUM_CLASSES], dim=1)


def all_attributes() -> torch.Tensor:
    """(180, 4): every combination once, in lexicographic order."""
    grids = torch.meshgrid(*[torch.arange(k) for k in NUM_CLASSES], indexing="ij")
    return torch.stack([g.reshape(-1) for g in grids], dim=1)


@dataclass
class ToyImages:
    pixels: torch.Tensor  # float32 (n, 3, 32, 32) in [-1, 1]
    attributes: torch.Tensor  # long (n, 4)
    captions: list[str]


def render(attributes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Images (n, 3, 32, 32) in [-1, 1] of the given attribute rows; jitter drawn from ``generator``."""
    attributes = torch.as_tensor(attributes, dtype=torch.long)
    if attributes.ndim != 2 or attributes.shape[1] != len(ATTRIBUTES):
        raise ValueError(f"attributes must have shape (n, {len(ATTRIBUTES)}), got {tuple(attributes.shape)}")
    for col, (name, k) in enumerate(zip(ATTRIBUTES, NUM_CLASSES, strict=True)):
        bad = (attributes[:, col] < 0) | (attributes[:, col] >= k)
        if bad.any():
            raise ValueError(f"attribute {name!r} index out of range [0, {k}) in row {int(bad.nonzero()[0])}")
    n = attributes.shape[0]
    shape, colour, position, background = attributes.unbind(1)
    half = torch.empty(n).uniform_(*_HALF_SIZE, generator=generator)
    centres = torch.tensor(list(POSITIONS.values()))[position]
    centres = centres + torch.empty(n, 2).uniform_(-_POSITION_JITTER, _POSITION_JITTER, generator=generator)
    fg = torch.tensor(list(COLOURS.values()))[colour]
    fg = (fg + torch.empty(n, 3).uniform_(-_COLOUR_JITTER, _COLOUR_JITTER, generator=generator)).clamp(0, 1)
    bg = torch.tensor(list(BACKGROUNDS.values()))[background]

    if n == 0:
        return torch.empty(0, 3, RESOLUTION, RESOLUTION)
    chunks = [slice(i, i + _CHUNK) for i in range(0, n, _CHUNK)]
    return torch.cat([_draw(shape[c], centres[c], half[c], fg[c], bg[c]) for c in chunks])


def _draw(shape, centres, half, fg, bg) -> torch.Tensor:
    n = shape.shape[0]
    side = RESOLUTION * SUPERSAMPLE
    coords = (torch.arange(side, dtype=torch.float32) + 0.5) / side
    u = coords.view(1, 1, side) - centres[:, 0].view(n, 1, 1)  # x offset from the centre
    v = coords.view(1, side, 1) - centres[:, 1].view(n, 1, 1)  # y offset (down is positive)
    r = half.view(n, 1, 1)
    circle = u**2 + v**2 <= r**2
    square = (u.abs() <= 0.88 * r) & (v.abs() <= 0.88 * r)  # about the circle's area
    triangle = (v >= -r) & (v <= r) & (u.abs() <= (v + r) / 2)  # apex up, base 2r wide
    masks = torch.stack([circle, square, triangle], dim=1)  # (n, 3, side, side)
    mask = masks[torch.arange(n), shape].float().unsqueeze(1)
    image = bg.view(n, 3, 1, 1) * (1 - mask) + fg.view(n, 3, 1, 1) * mask
    image = F.avg_pool2d(image, SUPERSAMPLE)
    return image * 2 - 1


def make_images(n: int, seed: int) -> ToyImages:
    """n random toy images with their attributes and captions, identical for the same (n, seed)."""
    generator = torch.Generator().manual_seed(seed)
    attributes = sample_attributes(n, generator)
    return ToyImages(render(attributes, generator), attributes, [caption(a) for a in attributes])


def combination_index(attributes: torch.Tensor) -> torch.Tensor:
    """Row of each attribute tuple in ``all_attributes()`` (mixed-radix number, first attribute most significant)."""
    index = torch.zeros(attributes.shape[0], dtype=torch.long)
    for col, k in enumerate(NUM_CLASSES):
        index = index * k + attributes[:, col]
    return index
