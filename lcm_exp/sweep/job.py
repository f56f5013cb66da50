"""One job of a sweep, before it trains: its seed, and for a named sweep whether it is already done.

A named sweep's job dir is deterministic (sweep name + swept overrides), so its ``run.json`` tells what happened
last time: completed -> skip (return the recorded metrics), unless ``force=true``. Anything else (running,
failed, interrupted, preempted) is left to ``lcm_exp.task.claim_run_dir``, which resumes it from the newest
checkpoint in the same dir (or clears it with ``force=true``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig

from lcm_exp.runlog.record import RECORD
from lcm_exp.runlog.secrets import redact_override
from lcm_exp.sweep.config import validate_sweep
from lcm_exp.sweep.identity import derive_seed, identity_overrides

log = logging.getLogger(__name__)


class JobConflictError(RuntimeError):
    """The job dir holds a different job (same swept values, other settings)."""


def read_record(run_dir: Path) -> dict:
    path = Path(run_dir) / RECORD
    return json.loads(path.read_text()) if path.is_file() else {}


def prepare_job(cfg: DictConfig, overrides: list[str]) -> dict | None:
    """Set the job's seed and identity in ``cfg``; return the recorded metrics when the job is already done."""
    validate_sweep(cfg.sweep)
    identity = identity_overrides(map(redact_override, overrides))  # as recorded: no secret in logs, config, seed
    cfg.sweep.overrides = identity
    if cfg.sweep.derive_seeds:
        cfg.sweep.base_seed = cfg.seed
        cfg.seed = derive_seed(cfg.seed, identity)
        log.info("job seed %d, derived from the sweep seed %d and the job's overrides", cfg.seed, cfg.sweep.base_seed)
    if cfg.sweep.name is None or cfg.force:
        return None
    run_dir = Path(cfg.paths.output_dir)
    record = read_record(run_dir)
    if not record:
        return None
    recorded = identity_overrides(record.get("overrides", []))
    if recorded != identity:
        raise JobConflictError(
            f"{run_dir} holds a run with overrides {recorded}, this job has {identity}: "
            "use another sweep.name, or force=true to replace it"
        )
    if record.get("status") == "completed":
        log.info("skipping %s: completed earlier (force=true redoes it)", run_dir.name)
        return record.get("metrics") or {}
    log.info("%s ended %s last time: resuming it", run_dir.name, record.get("status"))
    return None
