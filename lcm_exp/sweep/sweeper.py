"""The sweeper behind ``hydra/sweeper=lcm``: launches the jobs of a ``plan``, keeps going past failures.

Unlike Hydra's basic sweeper it (1) sweeps guidance as pairs and drops grid points with w_min > w_max before
launching, (2) names each job's dir after its swept overrides, so a named sweep finds its jobs again when rerun,
even with a longer list, (3) runs every job even when some fail, or stops at the first failure on request, and
(4) still writes the summary when jobs failed (Hydra skips ``on_multirun_end`` when a sweeper raises) before
exiting non-zero.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from lcm_exp.sweep.files import write_if_changed
from lcm_exp.sweep.plan import Plan, SweepPlanError, plan_jobs

log = logging.getLogger(__name__)


class SweepFailedError(CompactHydraException):
    """Hydra prints just this message (no traceback): the tracebacks are in the failed jobs' dirs."""


class PlanSweeper(Sweeper):
    def __init__(
        self,
        max_batch_size: int | None = None,
        params: dict[str, str] | None = None,
        guidance_pairs: list | None = None,
        variants: dict[str, Any] | None = None,
        stop_on_failure: bool = False,
        dry_run: bool = False,
    ) -> None:
        super().__init__()
        self.max_batch_size = max_batch_size
        self.params = dict(params or {})
        self.guidance_pairs = _plain(guidance_pairs) or []
        self.variants = _plain(variants) or {}
        self.stop_on_failure = stop_on_failure
        self.dry_run = dry_run
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def _effective_guidance(self, overrides: list[str]) -> tuple[float, float]:
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        return float(cfg.guidance.w_min), float(cfg.guidance.w_max)

    def plan(self, arguments: list[str]) -> Plan:
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        params = [f"{k}={v}" for k, v in self.params.items()]
        return plan_jobs(params + list(arguments), self.guidance_pairs, self.variants, self._effective_guidance, parser)

    def sweep(self, arguments: list[str]) -> list[list[JobReturn]]:
        try:
            plan = self.plan(arguments)
        except SweepPlanError as err:  # a sweep that cannot be launched: one line, nothing launched or written
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        sweep_dir = Path(self.config.hydra.sweep.dir)
        log.info("sweep %s: %d jobs", sweep_dir, len(plan.jobs))
        for swept in plan.dropped:
            log.warning("not launched (w_min > w_max): %s", " ".join(swept))
        if self.dry_run:
            for i, job in enumerate(plan.jobs):
                log.info("  #%d %s: %s", i, job.dirname, " ".join(job.overrides))
            return []
        sweep_dir.mkdir(parents=True, exist_ok=True)
        write_if_changed(sweep_dir / "multirun.yaml", multirun_yaml(self.config))

        batches = [[*job.overrides, f"hydra.sweep.subdir='{job.dirname}'"] for job in plan.jobs]
        size = self.max_batch_size or (1 if self.stop_on_failure else len(batches))
        returns: list[list[JobReturn]] = []
        failed: list[JobReturn] = []
        done = 0
        while done < len(batches):
            results = list(self.launcher.launch(batches[done : done + size], initial_job_idx=done))
            done += len(results)
            returns.append(results)
            failed += [r for r in results if r.status == JobStatus.FAILED]
            if failed and self.stop_on_failure and done < len(batches):
                log.error("stopping at the first failure (hydra.sweeper.stop_on_failure=true): %d jobs not launched",
                          len(batches) - done)  # fmt: skip
                break
        if failed:
            callbacks = self.hydra_context.callbacks
            callbacks.on_multirun_end(config=self.config, config_name=self.config.hydra.job.config_name)
            names = ", ".join(Path(r.hydra_cfg.hydra.runtime.output_dir).name for r in failed)
            raise SweepFailedError(
                f"{len(failed)} of {done} jobs failed ({names}); each job dir has run.json with the traceback; "
                f"summary: {sweep_dir / 'summary.md'}"
            )
        return returns


def multirun_yaml(config: DictConfig) -> str:
    """Hydra's multirun.yaml (the sweep's config, unresolved), with secrets redacted."""
    import yaml

    from lcm_exp.runlog.secrets import redact

    container = OmegaConf.to_container(config, resolve=False, enum_to_str=True)
    return yaml.safe_dump(redact(container), sort_keys=False)


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
