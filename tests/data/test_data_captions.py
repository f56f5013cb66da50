"""captions.py: every way a shard stores a caption, and the missing / empty policies."""

from __future__ import annotations

import random

import pytest

from lcm_exp.data.captions import CaptionExtractor
from lcm_exp.data.skips import FilteredSample, SkipSample

RNG = random.Random(0)


def test_keys_in_order_bytes_and_str():
    ex = CaptionExtractor()
    assert ex({"txt": b"  a cat\n"}, {}, RNG) == "a cat"
    assert ex({"text": "a dog"}, {}, RNG) == "a dog"
    assert ex({"caption": b"a bird"}, {}, RNG) == "a bird"
    assert ex({"text": b"second", "txt": b"first"}, {}, RNG) == "first"  # keys order, not sample order
    assert ex({"txt": b"\xef\xbb\xbfwith bom"}, {}, RNG) == "with bom"


def test_non_utf8_bytes_are_replaced_not_dropped():
    assert CaptionExtractor()({"txt": b"caf\xe9 au lait"}, {}, RNG) == "caf\ufffd au lait"


def test_json_field_and_fallback_past_empty_txt():
    ex = CaptionExtractor(json_field="caption")
    assert ex({}, {"caption": "from json"}, RNG) == "from json"
    assert ex({"txt": b""}, {"caption": "from json"}, RNG) == "from json"
    assert CaptionExtractor(json_field="TEXT")({}, {"TEXT": "laion style"}, RNG) == "laion style"


def test_list_captions_first_and_random():
    captions = ["", "first real", "second", "third"]
    assert CaptionExtractor()({}, {"caption": captions}, RNG) == "first real"
    ex = CaptionExtractor(choice="random")
    picks = [ex({}, {"caption": captions}, random.Random(s)) for s in range(30)]
    assert set(picks) == {"first real", "second", "third"}
    assert picks == [ex({}, {"caption": captions}, random.Random(s)) for s in range(30)]  # seeded


def test_missing_caption_is_a_skip():
    with pytest.raises(SkipSample) as info:
        CaptionExtractor()({"jpg": b"..."}, {"other": 1}, RNG)
    assert info.value.reason == "missing_caption" and not isinstance(info.value, FilteredSample)
    assert "txt" in str(info.value) and "json.caption" in str(info.value)
    with pytest.raises(SkipSample):
        CaptionExtractor(json_field=None)({}, {"caption": "ignored"}, RNG)


def test_empty_caption_policy():
    assert CaptionExtractor(empty="keep")({"txt": b"   "}, {}, RNG) == ""
    assert CaptionExtractor(empty="keep")({}, {"caption": ["", ""]}, RNG) == ""
    with pytest.raises(FilteredSample) as info:
        CaptionExtractor(empty="skip")({"txt": b""}, {}, RNG)
    assert info.value.reason == "empty_caption"


def test_bad_options():
    with pytest.raises(ValueError, match="caption_choice"):
        CaptionExtractor(choice="longest")
    with pytest.raises(ValueError, match="empty_caption"):
        CaptionExtractor(empty="drop")
