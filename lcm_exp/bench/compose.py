"""Compose the project's conf/ tree with Hydra's compose API (no @hydra.main, no run dir), as a typed RunConfig.

The benchmark and the cache command take the same overrides as ``launch.py``. Paths default to the repo's .cache
(or $LCM_EXP_CACHE) and outputs/ because the compose API has no Hydra runtime for the ``${hydra:...}`` defaults.
"""

from __future__ import annotations

import os
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from lcm_exp.config.resolvers import register_resolvers
from lcm_exp.config.store import register_configs

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"


def _defaults() -> dict[str, str]:
    log_dir = REPO / "outputs"
    return {
        "experiment": "tiny",  # synthetic shards at the tiny recipe's settings, not the default job's toy world
        "paths.cache_dir": os.environ.get("LCM_EXP_CACHE", str(REPO / ".cache")),
        "paths.log_dir": str(log_dir),
        "paths.output_dir": str(log_dir / "bench"),
    }


def compose_run_config(overrides: list[str]):
    """A resolved ``RunConfig`` object (resolvers run: a tiny teacher or synthetic shards may get built)."""
    register_configs()
    register_resolvers()
    given = {o.lstrip("+~").split("=", 1)[0] for o in overrides}
    extra = [f"{k}={v}" for k, v in _defaults().items() if k not in given]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[*extra, *overrides])
    return OmegaConf.to_object(cfg)
