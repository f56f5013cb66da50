"""The number a job hands back to the sweeper, picked by name from the metrics of its run dir."""

from __future__ import annotations

import math
from datetime import datetime
from numbers import Real
from pathlib import Path

from lcm_exp.runlog.metrics import read_metrics
from lcm_exp.sweep.job import read_record

TAIL_FRACTION = 0.2  # tail_loss: mean over the last 20% of logged steps (at least one), steadier than final_loss


class ObjectiveError(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def job_metrics(run_dir: Path, record: dict | None = None) -> dict[str, float | int]:
    """run.json's final metrics (numbers only), plus tail_loss from metrics.jsonl and time_s from the record."""
    record = read_record(run_dir) if record is None else record
    out = {k: v for k, v in (record.get("metrics") or {}).items() if isinstance(v, Real) and not isinstance(v, bool)}
    losses = [row["loss"] for row in read_metrics(run_dir) if isinstance(row.get("loss"), Real)]
    if losses:
        k = max(1, math.ceil(len(losses) * TAIL_FRACTION))
        out["tail_loss"] = sum(losses[-k:]) / k
    if record.get("start_time") and record.get("end_time"):
        start, end = datetime.fromisoformat(record["start_time"]), datetime.fromisoformat(record["end_time"])
        out["time_s"] = (end - start).total_seconds()
    return out


def job_objective(run_dir: Path, name: str) -> float:
    """The objective of a finished job; a job that stopped early (preempted) fails here, so a rerun resumes it."""
    record = read_record(run_dir)
    if record.get("status") != "completed":
        status = record.get("status")
        raise ObjectiveError(f"{run_dir.name} ended {status!r}, not completed: rerun the sweep to resume it")
    return select_objective(job_metrics(run_dir, record), name)


def select_objective(metrics: dict[str, float], name: str) -> float:
    if name not in metrics:
        available = ", ".join(sorted(metrics)) or "none (the run recorded no metrics)"
        raise ObjectiveError(f"sweep.objective={name!r} is not a metric of this run; available: {available}")
    return float(metrics[name])
