"""failure.py: a failed job's record, written only where nothing better is recorded."""

from __future__ import annotations

import json

from lcm_exp.sweep.failure import record_failure

OVERRIDES = ["sweep=guidance_range", "guidance.w_min=-1", "guidance.w_max=3"]


def _fail():
    try:
        raise ValueError("guidance.w_min=-1.0: must be >= 0")
    except ValueError as err:
        return err


def _record(run_dir):
    return json.loads((run_dir / "run.json").read_text())


def test_failure_before_the_run_started_is_recorded_with_traceback(tmp_path):
    assert record_failure(tmp_path, OVERRIDES, _fail())
    rec = _record(tmp_path)
    assert rec["status"] == "failed" and rec["overrides"] == OVERRIDES
    assert rec["error"]["type"] == "ValueError" and "must be >= 0" in rec["error"]["message"]
    assert "Traceback" in rec["error"]["traceback"] and "_fail" in rec["error"]["traceback"]


def test_completed_run_is_left_alone(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"status": "completed", "overrides": OVERRIDES}))
    assert not record_failure(tmp_path, OVERRIDES, _fail())
    assert _record(tmp_path)["status"] == "completed"


def test_another_jobs_record_is_left_alone(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"status": "failed", "overrides": ["guidance.w_min=5"]}))
    assert not record_failure(tmp_path, OVERRIDES, _fail())
    assert _record(tmp_path)["overrides"] == ["guidance.w_min=5"]


def test_failure_the_task_recorded_itself_is_not_rewritten(tmp_path):
    err = _fail()
    rec = {"status": "failed", "overrides": OVERRIDES, "error": {"message": str(err), "traceback": "original"}}
    (tmp_path / "run.json").write_text(json.dumps(rec))
    assert not record_failure(tmp_path, OVERRIDES, err)
    assert _record(tmp_path)["error"]["traceback"] == "original"


def test_a_new_failure_of_an_interrupted_run_replaces_the_old_status(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"status": "running", "overrides": OVERRIDES, "attempts": 2}))
    assert record_failure(tmp_path, OVERRIDES, _fail())
    rec = _record(tmp_path)
    assert rec["status"] == "failed" and rec["attempts"] == 2
