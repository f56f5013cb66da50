"""metadata.py + spec.py: original size lookup (h, w order) and the SDXL filters' missing-key policies."""

from __future__ import annotations

import contextlib

import pytest

from lcm_exp.data.metadata import MetadataFilter, original_size_from_json, parse_json
from lcm_exp.data.skips import FilteredSample, SkipSample
from lcm_exp.data.spec import DataSpec, FilterSpec

PAIRS = DataSpec().size_json_keys


def test_original_size_is_height_width_and_prefers_original_keys():
    meta = {"original_width": 1024, "original_height": 768, "width": 512, "height": 384}
    assert original_size_from_json(meta, PAIRS) == (768, 1024)
    assert original_size_from_json({"width": 640, "height": 480}, PAIRS) == (480, 640)
    # unusable values fall through to the next pair, then to None (decoded size is used)
    partial = {"original_width": None, "original_height": 9, "width": 3, "height": 2}
    assert original_size_from_json(partial, PAIRS) == (2, 3)
    assert original_size_from_json({"width": "nan", "height": 5}, PAIRS) is None
    assert original_size_from_json({}, PAIRS) is None


def test_parse_json():
    assert parse_json(None) == {}
    assert parse_json(b'{"a": 1}') == {"a": 1}
    for bad in (b"{not json", b"[1, 2]"):
        with pytest.raises(SkipSample) as info:
            parse_json(bad)
        assert info.value.reason == "bad_json"


def _passes(f: MetadataFilter, meta: dict) -> bool:
    try:
        f.check_json(meta)
        return True
    except FilteredSample:
        return False


def test_filters_with_present_keys():
    f = MetadataFilter(FilterSpec(max_pwatermark=0.5, min_aesthetic=5.0))
    assert _passes(f, {"pwatermark": 0.5, "aesthetic": 5.0})  # bounds inclusive
    assert not _passes(f, {"pwatermark": 0.51, "aesthetic": 6.0})
    assert not _passes(f, {"pwatermark": 0.1, "aesthetic": 4.9})
    assert _passes(f, {"pwatermark": 0.1, "AESTHETIC_SCORE": 6.2})  # LAION's column name is a candidate
    assert not _passes(f, {"pwatermark": 0.1, "AESTHETIC_SCORE": 4.0})


@pytest.mark.parametrize("policy", ["keep", "drop"])
def test_filters_with_missing_keys(policy):
    f = MetadataFilter(FilterSpec(max_pwatermark=0.5, min_aesthetic=5.0, on_missing=policy))
    for meta in ({}, {"pwatermark": None, "aesthetic": None}, {"pwatermark": 0.1}):
        assert _passes(f, meta) == (policy == "keep")
    with pytest.raises(FilteredSample) if policy == "drop" else contextlib.nullcontext():
        f.check_json({"aesthetic": 9.0})


def test_disabled_filters_ignore_everything():
    f = MetadataFilter(FilterSpec(on_missing="drop"))
    assert _passes(f, {}) and _passes(f, {"pwatermark": 1.0, "aesthetic": 0.0})
    f.check_size((1, 1))


def test_size_filter_needs_both_sides():
    f = MetadataFilter(FilterSpec(min_original_size=512))
    f.check_size((512, 900))
    with pytest.raises(FilteredSample) as info:
        f.check_size((900, 511))
    assert info.value.reason == "original_size"


def test_spec_validation_names_the_key():
    with pytest.raises(ValueError, match="data.crop"):
        DataSpec(shards="x", crop="diagonal")
    with pytest.raises(ValueError, match="data.filters.on_missing"):
        DataSpec(shards="x", filters={"on_missing": "maybe"})
    with pytest.raises(ValueError, match="size_json_keys"):
        DataSpec(shards="x", size_json_keys=[["h"]])
    assert DataSpec(shards="x", filters={"min_aesthetic": 6.0}).filters.min_aesthetic == 6.0
