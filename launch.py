"""The one launcher: `python launch.py [group=option ...] [key=value ...]` (Hydra; see README and conf/)."""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from lcm_exp.config.errors import ConfigError
from lcm_exp.config.resolvers import register_resolvers
from lcm_exp.config.store import register_configs
from lcm_exp.launchers.distributed import prepare_distributed_launch

register_configs()
register_resolvers()


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig):
    from lcm_exp.task import run_task

    multirun = HydraConfig.get().mode.name == "MULTIRUN"
    try:
        result = run_task(cfg, list(HydraConfig.get().overrides.task), multirun=multirun)
    except ConfigError as err:
        if multirun:
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print_summary(result)
    return sweep_objective(cfg) if multirun else result


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
