"""OmegaConf resolvers the conf/ tree uses. Registering is cheap; the heavy work runs only when a value is read."""

from __future__ import annotations

import os
import secrets

from omegaconf import OmegaConf

# One id per launch, shared by every rank of a distributed job through the environment.
RUN_UID_ENV = "LCM_EXP_RUN_UID"


def run_uid() -> str:
    """A short random id that keeps two launches in the same second out of each other's run dir."""
    if RUN_UID_ENV not in os.environ:
        os.environ[RUN_UID_ENV] = secrets.token_hex(3)
    return os.environ[RUN_UID_ENV]


def tiny_teacher(kind: str, cache_dir: str) -> str:
    from lcm_exp.models.tiny import ensure_tiny_teacher

    return str(ensure_tiny_teacher(kind, cache_dir))


def synthetic_shards(cache_dir: str, num_samples: int) -> str:
    from lcm_exp.data.default_shards import ensure_synthetic_shards

    return ensure_synthetic_shards(cache_dir, int(num_samples))


def register_resolvers() -> None:
    for name, fn in {"run_uid": run_uid, "tiny_teacher": tiny_teacher, "synthetic_shards": synthetic_shards}.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=True)
