"""Per-sample json metadata: the original size for SDXL micro-conditioning and the SDXL data filters.

Sizes are (height, width) everywhere: the diffusers SDXL webdataset scripts pass (W, H), a defect we do not copy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from lcm_exp.data.skips import FilteredSample, SkipSample
from lcm_exp.data.spec import FilterSpec


def parse_json(raw: bytes | str | None) -> dict[str, Any]:
    """The sample's .json as a dict ({} when the sample has none); unreadable json skips the sample."""
    if raw is None:
        return {}
    try:
        meta = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exn:
        raise SkipSample("bad_json", str(exn)) from exn
    if not isinstance(meta, dict):
        raise SkipSample("bad_json", f"expected an object, got {type(meta).__name__}")
    return meta


def original_size_from_json(meta: Mapping[str, Any], key_pairs: Sequence[Sequence[str]]) -> tuple[int, int] | None:
    """(height, width) from the first [height_key, width_key] pair whose values are both positive numbers."""
    for h_key, w_key in key_pairs:
        h, w = _number(meta.get(h_key)), _number(meta.get(w_key))
        if h is not None and w is not None and h > 0 and w > 0:
            return int(h), int(w)
    return None


class MetadataFilter:
    """Raises FilteredSample when a sample fails a configured SDXL filter."""

    def __init__(self, spec: FilterSpec):
        self.spec = spec

    def check_json(self, meta: Mapping[str, Any]) -> None:
        """The filters that need only the json (run before decoding the image, which is the expensive part)."""
        s = self.spec
        if s.max_pwatermark is not None:
            value = self._lookup(meta, s.pwatermark_keys, "pwatermark")
            if value is not None and value > s.max_pwatermark:
                raise FilteredSample("pwatermark", f"{value} > {s.max_pwatermark}")
        if s.min_aesthetic is not None:
            value = self._lookup(meta, s.aesthetic_keys, "aesthetic")
            if value is not None and value < s.min_aesthetic:
                raise FilteredSample("aesthetic", f"{value} < {s.min_aesthetic}")

    def check_size(self, original_size: tuple[int, int]) -> None:
        minimum = self.spec.min_original_size
        if minimum is not None and min(original_size) < minimum:
            raise FilteredSample("original_size", f"(h, w) = {original_size} below {minimum}")

    def _lookup(self, meta: Mapping[str, Any], keys: Sequence[str], name: str) -> float | None:
        for key in keys:
            value = _number(meta.get(key))
            if value is not None:
                return value
        if self.spec.on_missing == "drop":
            raise FilteredSample(f"missing_{name}", f"none of {list(keys)} in json")
        return None


def _number(value: Any) -> float | None:
    """A finite number, or None for missing / null / non-numeric / NaN (LAION json has all of these)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
