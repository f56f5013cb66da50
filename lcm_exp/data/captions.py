"""Caption extraction from a webdataset sample, tolerant of the ways real shards store text.

Shards from img2dataset, LAION, COYO, CC3M... put the caption in .txt, .text or .caption files, or in a field
of the .json; some store several captions as a list. Bytes that are not UTF-8 are decoded with replacement
characters rather than dropping the sample (one bad byte should not lose an image).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from lcm_exp.config.choices import CAPTION_CHOICES, EMPTY_CAPTION_POLICIES
from lcm_exp.data.skips import FilteredSample, SkipSample


class CaptionExtractor:
    """Callable: (raw sample, parsed json meta, rng) -> caption str.

    Sources are tried in order (`keys`, then `json_field` of the meta); the first non-empty caption wins.
    Raises SkipSample("missing_caption") when no source is present, and FilteredSample("empty_caption")
    for an empty caption under `empty="skip"` (under "keep" it is returned as "", which still trains the
    unconditional-like branch).
    """

    def __init__(
        self,
        keys: Sequence[str] = ("txt", "text", "caption"),
        json_field: str | None = "caption",
        *,
        choice: str = "first",
        empty: str = "keep",
    ):
        if choice not in CAPTION_CHOICES:
            raise ValueError(f"caption_choice must be one of {CAPTION_CHOICES}, got {choice!r}")
        if empty not in EMPTY_CAPTION_POLICIES:
            raise ValueError(f"empty_caption must be one of {EMPTY_CAPTION_POLICIES}, got {empty!r}")
        self.keys = tuple(keys)
        self.json_field = json_field
        self.choice = choice
        self.empty = empty

    def __call__(self, sample: Mapping[str, Any], meta: Mapping[str, Any], rng: random.Random) -> str:
        values = [sample[k] for k in self.keys if k in sample]
        if self.json_field and meta.get(self.json_field) is not None:
            values.append(meta[self.json_field])
        if not values:
            tried = list(self.keys) + ([f"json.{self.json_field}"] if self.json_field else [])
            raise SkipSample("missing_caption", f"none of {tried} present")
        for value in values:
            caption = self._pick(value, rng)
            if caption:
                return caption
        if self.empty == "skip":
            raise FilteredSample("empty_caption")
        return ""

    def _pick(self, value: Any, rng: random.Random) -> str:
        if isinstance(value, (list, tuple)):
            options = [c for c in (_as_text(v) for v in value) if c]
            if not options:
                return ""
            return options[0] if self.choice == "first" else rng.choice(options)
        return _as_text(value)


def _as_text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8-sig", errors="replace")  # -sig: drop a BOM
    elif value is None:
        return ""
    elif not isinstance(value, str):
        value = str(value)
    return value.strip()
