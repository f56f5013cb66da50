"""The one launcher: `python launch.py [group=option ...] [key=value ...]` (Hydra; see README and conf/)."""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from lcm_exp.config.errors import ConfigError
from lcm_exp.config.resolvers import register_resolvers
from lcm_exp.config.store import register_configs

register_configs()
register_resolvers()


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig):
    from lcm_exp.task import run_task

    try:
        result = run_task(cfg, list(HydraConfig.get().overrides.task))
    except ConfigError as err:
        if HydraConfig.get().mode.name == "MULTIRUN":
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print_summary(result)
    return result


def print_summary(result: dict) -> None:
    print("\nrun finished:")
    for key, value in result.items():
        print(f"  {key}: {value}")


if __name__ == "__main__":
    main()
