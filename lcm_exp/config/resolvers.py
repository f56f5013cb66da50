"""OmegaConf resolvers the conf/ tree uses. Registering is cheap; the heavy work runs only when a value is read."""

from __future__ import annotations

import os
import secrets
import time

from omegaconf import OmegaConf

# One id per launch, shared by every rank of a distributed job through the environment.
RUN_ID_ENV = "LCM_EXP_RUN_ID"


def new_run_id() -> str:
    """Start time plus a short random suffix: two launches in the same second get different run dirs."""
    return time.strftime("%Y-%m-%d_%H-%M-%S") + "_" + secrets.token_hex(3)


def run_id() -> str:
    """This launch's id; every rank of a distributed launch reads the one rank 0 chose (lcm_exp.launchers)."""
    if RUN_ID_ENV not in os.environ:
        os.environ[RUN_ID_ENV] = new_run_id()
    return os.environ[RUN_ID_ENV]


def tiny_teacher(kind: str, cache_dir: str) -> str:
    from lcm_exp.models.tiny import ensure_tiny_teacher

    return str(ensure_tiny_teacher(kind, cache_dir))


def synthetic_shards(cache_dir: str, num_samples: int) -> str:
    from lcm_exp.data.default_shards import ensure_synthetic_shards

    return ensure_synthetic_shards(cache_dir, int(num_samples))


def register_resolvers() -> None:
    from lcm_exp.toy.resolvers import register_toy_resolvers

    for name, fn in {"run_id": run_id, "tiny_teacher": tiny_teacher, "synthetic_shards": synthetic_shards}.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=True)
    register_toy_resolvers()
