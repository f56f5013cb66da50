"""What the data pipeline needs to know, as plain dataclasses (the Hydra `data` schema mirrors these fields).

The seed, rank, world size, resolution and batch size are not here: the caller owns them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lcm_exp.config.choices import (
    CAPTION_CHOICES,
    CROPS,
    EMPTY_CAPTION_POLICIES,
    INTERPOLATIONS,
    ON_MISSING,
    SMALL_IMAGE_POLICIES,
)


@dataclass
class FilterSpec:
    """SDXL-style metadata filters; None switches one off.

    `on_missing` decides what happens to a sample whose json lacks a filter's key: "keep" (default) lets
    datasets without those keys train at all (with "drop", the diffusers SDXL script stalls forever on them,
    diffusers #5743). The size filter never has a missing key: it falls back to the decoded image's size.
    """

    min_original_size: int | None = None  # both original height and width must reach it
    max_pwatermark: float | None = None
    min_aesthetic: float | None = None
    on_missing: str = "keep"
    pwatermark_keys: list[str] = field(default_factory=lambda: ["pwatermark"])
    aesthetic_keys: list[str] = field(default_factory=lambda: ["aesthetic", "AESTHETIC_SCORE", "aesthetic_score"])

    def __post_init__(self) -> None:
        _check_choice("data.filters.on_missing", self.on_missing, ON_MISSING)


@dataclass
class DataSpec:
    """One image-text webdataset source.

    shards: a brace range ("/d/s-{000..009}.tar"), a `pipe:` command ("pipe:curl -s URL"), or a list of such
    specs; each entry is brace-expanded.
    resampled: True = infinite stream of shards drawn with replacement (seeded per rank and worker);
    False = finite epochs, shards shuffled with seed + epoch and split disjointly across ranks and workers.
    size_json_keys: candidate [height_key, width_key] pairs for the ORIGINAL size in the sample's json, tried
    in order; img2dataset writes original_height/original_width (before its resize) and height/width (after).
    When none is present the decoded image's size is used.
    max_consecutive_skips: raise instead of spinning forever after this many drops in a row in one worker.
    stall_timeout_s: a shard that sends no byte for this long stops the stream naming it (a warning at half of it).
    """

    shards: str | list[str] = ""
    resampled: bool = True
    shuffle_buffer: int = 1000
    num_workers: int = 4
    persistent_workers: bool = False
    image_keys: list[str] = field(default_factory=lambda: ["jpg", "jpeg", "png", "webp"])
    image_interpolation: str = "bilinear"
    crop: str = "random"
    random_flip: bool = False
    small_image: str = "upscale"
    max_image_pixels: int = 8192 * 8192
    caption_keys: list[str] = field(default_factory=lambda: ["txt", "text", "caption"])
    caption_json_field: str | None = "caption"
    caption_choice: str = "first"
    empty_caption: str = "keep"
    size_json_keys: list[list[str]] = field(
        default_factory=lambda: [["original_height", "original_width"], ["height", "width"]]
    )
    filters: FilterSpec = field(default_factory=FilterSpec)
    max_consecutive_skips: int = 1000
    stall_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if isinstance(self.filters, dict):
            self.filters = FilterSpec(**self.filters)
        _check_choice("data.image_interpolation", self.image_interpolation, INTERPOLATIONS)
        _check_choice("data.crop", self.crop, CROPS)
        _check_choice("data.small_image", self.small_image, SMALL_IMAGE_POLICIES)
        _check_choice("data.caption_choice", self.caption_choice, CAPTION_CHOICES)
        _check_choice("data.empty_caption", self.empty_caption, EMPTY_CAPTION_POLICIES)
        for name in ("shuffle_buffer", "num_workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"data.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("max_image_pixels", "max_consecutive_skips", "stall_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"data.{name} must be > 0, got {getattr(self, name)}")
        for pair in self.size_json_keys:
            if len(pair) != 2:
                raise ValueError(f"data.size_json_keys entries must be [height_key, width_key], got {list(pair)}")
        if not self.image_keys:
            raise ValueError("data.image_keys must not be empty")


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
