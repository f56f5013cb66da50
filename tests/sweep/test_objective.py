"""objective.py: metrics read back from a run dir, and the error for an unknown objective name."""

from __future__ import annotations

import json

import pytest

from lcm_exp.sweep.objective import ObjectiveError, job_metrics, job_objective, select_objective


def _run_dir(tmp_path, losses, metrics):
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"step": i + 1, "loss": v}) + "\n"
                                                    for i, v in enumerate(losses)))  # fmt: skip
    (tmp_path / "run.json").write_text(json.dumps({"status": "completed", "metrics": metrics,
                                                   "start_time": "2026-01-01T10:00:00+00:00",
                                                   "end_time": "2026-01-01T10:01:30+00:00"}))  # fmt: skip
    return tmp_path


def test_job_metrics_adds_tail_loss_and_time(tmp_path):
    losses = [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.4, 0.2]  # 10 rows -> tail = last 2: (0.4 + 0.2) / 2
    run = _run_dir(tmp_path, losses, {"final_loss": 0.2, "steps": 10, "model_dir": "/x", "flag": True})
    metrics = job_metrics(run)
    assert metrics == pytest.approx({"final_loss": 0.2, "steps": 10.0, "tail_loss": 0.3, "time_s": 90.0})


def test_tail_loss_of_a_short_run_is_its_last_loss(tmp_path):
    assert job_metrics(_run_dir(tmp_path, [0.5, 0.25], {}))["tail_loss"] == 0.25


def test_select_objective():
    assert select_objective({"final_loss": 0.5}, "final_loss") == 0.5


def test_unknown_objective_names_the_available_metrics():
    with pytest.raises(ObjectiveError) as err:
        select_objective({"final_loss": 0.5, "tail_loss": 0.4}, "fidelity")
    assert str(err.value) == "sweep.objective='fidelity' is not a metric of this run; available: final_loss, tail_loss"


def test_job_objective_of_a_completed_run(tmp_path):
    assert job_objective(_run_dir(tmp_path, [0.5, 0.25], {"final_loss": 0.25}), "tail_loss") == 0.25


def test_job_objective_of_a_preempted_run_says_to_rerun(tmp_path):
    run = _run_dir(tmp_path, [0.5], {"status": "preempted", "steps": 1})
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**record, "status": "preempted"}))
    with pytest.raises(ObjectiveError, match="ended 'preempted', not completed: rerun the sweep to resume it"):
        job_objective(run, "final_loss")
