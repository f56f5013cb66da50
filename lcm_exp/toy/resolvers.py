"""OmegaConf resolvers for the toy world; cheap to register, the build runs only when a value is read.

``${toy_teacher:${paths.cache_dir},0}`` -> the toy teacher folder of world seed 0 (built on first use);
``${toy_sd3_teacher:${paths.cache_dir},0}`` -> the toy flow-matching (SD3-layout) teacher over the same world;
``${toy_shards:${paths.cache_dir},2048}`` -> a brace spec of 2048 toy training samples.
"""

from __future__ import annotations

from omegaconf import OmegaConf


def toy_teacher(cache_dir: str, seed: int = 0) -> str:
    from lcm_exp.toy.build import ensure_toy_teacher

    return str(ensure_toy_teacher(cache_dir, int(seed)))


def toy_sd3_teacher(cache_dir: str, seed: int = 0) -> str:
    from lcm_exp.toy.flow_build import ensure_toy_sd3_teacher

    return str(ensure_toy_sd3_teacher(cache_dir, int(seed)))


def toy_shards(cache_dir: str, num_samples: int) -> str:
    from lcm_exp.toy.shards import ensure_toy_shards

    return ensure_toy_shards(cache_dir, int(num_samples))


def register_toy_resolvers() -> None:
    for name, fn in {"toy_teacher": toy_teacher, "toy_sd3_teacher": toy_sd3_teacher, "toy_shards": toy_shards}.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=True)
