"""Record a job's failure in its run.json when the task did not get to do it (e.g. a bad value caught before
the run record started), without touching a completed run, another job's record, or a dir a live run holds."""

from __future__ import annotations

from pathlib import Path

from lcm_exp.runlog.lock import RunDirBusy
from lcm_exp.runlog.record import RunRecord
from lcm_exp.runlog.secrets import redact_override
from lcm_exp.sweep.identity import identity_overrides

RECORDED_BY_TASK = ("failed", "interrupted", "preempted")


def record_failure(run_dir: Path, overrides: list[str], err: BaseException) -> bool:
    """Write status 'failed' + traceback into run_dir/run.json; return whether anything was written."""
    if isinstance(err, RunDirBusy):
        return False  # refused: the dir and its record belong to the live run that holds it
    record = RunRecord(run_dir)
    data = record.data
    if data:
        if identity_overrides(data.get("overrides", [])) != identity_overrides(map(redact_override, overrides)):
            return False  # the dir belongs to another job (see JobConflictError): leave its record alone
        if data.get("status") == "completed":
            return False  # training finished; what failed came after (e.g. the objective name): the log has it
        if data.get("status") in RECORDED_BY_TASK and (data.get("error") or {}).get("message") == str(err):
            return False  # the task recorded this very failure itself
    else:
        data["overrides"] = [redact_override(o) for o in overrides]
        data["attempts"] = 1
    record.finish("failed", error=err)
    return True
