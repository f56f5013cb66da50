"""The one launcher: `python launch.py [group=option ...] [key=value ...]` (Hydra; see README and conf/)."""

import os
import signal
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from lcm_exp.config.resolvers import register_resolvers
from lcm_exp.config.store import register_configs
from lcm_exp.launchers.distributed import prepare_distributed_launch

STARTED = time.time()  # a run dir made after this and left empty by a refused launch is removed again
register_configs()
register_resolvers()


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig):
    from lcm_exp.task import REFUSALS, run_task
    from lcm_exp.train.preemption import StopRequested

    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode.name == "MULTIRUN"
    overrides = list(hydra_cfg.overrides.task)
    try:
        result = run_task(cfg, overrides, multirun=multirun, job_name=hydra_cfg.job.name,
                          hydra_files=hydra_files(cfg, overrides), started=STARTED)  # fmt: skip
    except REFUSALS as err:
        if multirun or os.environ.get("HYDRA_FULL_ERROR") == "1":  # the traceback only when asked for
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except StopRequested as stop:  # before the run started: nothing was written
        print(f"stopped: {stop.signame} before the run started; nothing was written", file=sys.stderr)
        sys.exit(128 + signal.Signals[stop.signame].value)
    print_summary(result)
    return sweep_objective(cfg) if multirun else result


def hydra_files(cfg: DictConfig, overrides: list[str]) -> dict:
    """What Hydra would have saved in .hydra/ (the job's composed config, Hydra's config, the overrides), taken
    before the task changes anything; the task writes it, redacted, once it owns the run dir."""
    as_dict = {"resolve": False, "enum_to_str": True}
    return {
        "config.yaml": OmegaConf.to_container(cfg, **as_dict),
        "hydra.yaml": OmegaConf.to_container(HydraConfig.instance().cfg, **as_dict),
        "overrides.yaml": overrides,
    }


def sweep_objective(cfg: DictConfig) -> float:
    """The value a sweeper (Optuna) optimizes: the metric named by sweep.objective, read from the run dir."""
    from lcm_exp.sweep.objective import job_objective

    return job_objective(Path(cfg.paths.output_dir), cfg.sweep.objective)


def print_summary(result: dict) -> None:
    """The run's outcome; with an evaluation, its table instead of its many eval:* numbers (run.json has them)."""
    print("\nrun finished:")
    for key, value in result.items():
        if not key.startswith("eval:"):
            print(f"  {key}: {value}")
    if "eval_table" in result:
        print("\n" + Path(result["eval_table"]).read_text())


if __name__ == "__main__":
    sys.argv = prepare_distributed_launch(sys.argv)
    main()
