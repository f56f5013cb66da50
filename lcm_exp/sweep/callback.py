"""Hydra callback: a failed job leaves its traceback in its own dir and log; a finished multirun gets a summary.

Hydra's basic machinery records neither: the traceback of a failed job goes nowhere near the job's log, and a
failure before training (a bad value) leaves no run.json. Configured in conf/config.yaml (hydra.callbacks.sweep),
so it runs for every sweeper and launcher (on SLURM, ``on_job_end`` runs inside the job).
"""

from __future__ import annotations

import logging
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


@contextmanager
def job_log(path: Path):
    """Log into a job's log file too, if the job got as far as opening it (a refused job has none)."""
    if not path.is_file():
        yield
        return
    from lcm_exp.runlog.logs import RedactingFormatter

    handler = logging.FileHandler(path)
    handler.setFormatter(RedactingFormatter())
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)
        handler.close()


class SweepCallback(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra 1.3 sets HydraConfig only per job, yet sweepers resolve hydra.sweep.dir (and Optuna its storage)
        # before any job: without this, ${hydra:runtime.cwd} in paths.log_dir cannot resolve there.
        HydraConfig.instance().set_config(config)
        if not config.hydra.sweeper.get("dry_run", False):  # the sweep dir holds sweeper state too (Optuna's study)
            Path(config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status != JobStatus.FAILED:
            return
        from lcm_exp.sweep.failure import record_failure

        err = job_return._return_value  # the exception; the public property re-raises it
        run_dir = Path(config.hydra.runtime.output_dir)
        record_failure(run_dir, list(job_return.overrides or []), err)
        text = "".join(traceback.format_exception(err))
        with job_log(run_dir / f"{config.hydra.job.name}.log"):
            log.error("job failed (%s): %s\n%s", run_dir.name, err, text)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from lcm_exp.sweep.summary import write_summary

        sweep_dir = Path(config.hydra.sweep.dir)
        sweep = config.get("sweep")
        paths = write_summary(
            sweep_dir,
            objective=sweep.objective if sweep is not None else "final_loss",
            direction=sweep.direction if sweep is not None else "minimize",
        )
        if paths:
            log.info("sweep summary: %s", paths["markdown"])
