"""Registers lcm_exp's sweeper as ``hydra/sweeper=lcm`` (Hydra loads sweepers only from hydra_plugins)."""

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore

from lcm_exp.sweep.sweeper import PlanSweeper


@dataclass
class LcmSweeperConf:
    _target_: str = "hydra_plugins.lcm_exp_sweeper.lcm_sweeper.LcmSweeper"
    max_batch_size: int | None = None  # jobs handed to the launcher at once (null: all; 1 with stop_on_failure)
    params: dict[str, str] | None = None  # axes, as on the command line: {loss.huber_c: "0.001,0.01"}
    guidance_pairs: list[Any] | None = None  # [[w_min, w_max], ...], one job per pair (x other axes)
    variants: dict[str, Any] | None = None  # linked axes: {name: [[override, ...], ...]}
    stop_on_failure: bool = False  # launch nothing after the batch in which a job failed
    dry_run: bool = False  # log the jobs that would run, launch none


ConfigStore.instance().store(group="hydra/sweeper", name="lcm", node=LcmSweeperConf, provider="lcm_exp")


class LcmSweeper(PlanSweeper):
    """hydra/sweeper=lcm: see lcm_exp.sweep.sweeper."""
