"""Compose the real conf/ tree with Hydra's compose API, as launch.py would."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from lcm_exp.config.resolvers import register_resolvers
from lcm_exp.config.store import register_configs

CONF = Path(__file__).resolve().parents[2] / "conf"
# Tests start from the tiny random teacher (seconds), not the default job's toy world (a trained teacher)
TINY = "experiment=tiny"


def with_tiny(overrides: list[str]) -> list[str]:
    """``overrides`` with experiment=tiny in front, unless they pick (or remove) the experiment themselves."""
    picks = any(o.lstrip("+~").split("=", 1)[0] == "experiment" for o in overrides)
    return list(overrides) if picks else [TINY, *overrides]


def compose_config(overrides: list[str] | None = None, return_hydra_config: bool = False):
    register_configs()
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=with_tiny(overrides or []), return_hydra_config=return_hydra_config)
