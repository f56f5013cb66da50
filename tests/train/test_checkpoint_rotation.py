"""Rotation and resume selection over finished, temporary and unmarked checkpoint folders."""

from __future__ import annotations

import pytest

from lcm_exp.train.checkpoint import MARKER, _rotate, complete_checkpoints, find_resume_checkpoint


def _make(root, name, complete=True):
    path = root / name
    path.mkdir(parents=True)
    if complete:
        (path / MARKER).write_text("ok")
    return path


def test_latest_ignores_temporary_and_unmarked_folders(tmp_path):
    _make(tmp_path, "checkpoint-2")
    _make(tmp_path, "checkpoint-10")
    _make(tmp_path, "checkpoint-12", complete=False)  # killed before the marker
    _make(tmp_path, ".tmp-checkpoint-14", complete=True)  # killed before the rename
    assert find_resume_checkpoint(tmp_path, "latest").name == "checkpoint-10"  # numeric, not lexical order
    assert find_resume_checkpoint(tmp_path, None) is None
    assert find_resume_checkpoint(tmp_path / "none", "latest") is None


def test_rotation_keeps_the_newest_complete_ones_and_never_the_only_good_one(tmp_path):
    for step in (1, 2, 3):
        _make(tmp_path, f"checkpoint-{step}")
    _make(tmp_path, "checkpoint-4", complete=False)
    _rotate(tmp_path, total_limit=1)
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["checkpoint-3"]


def test_explicit_path_must_be_complete(tmp_path):
    bad = _make(tmp_path, "checkpoint-5", complete=False)
    with pytest.raises(FileNotFoundError, match="resume_from_checkpoint"):
        find_resume_checkpoint(tmp_path, str(bad))
