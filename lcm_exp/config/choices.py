"""Every enumerated config value, defined once.

The schemas attach these tuples to their fields (``choice``), ``validate.py`` checks every such field by walking the
schema, and the builders (attention backends, solver dtypes, image transforms, ...) import the same tuples, so a value
cannot be accepted by one and unknown to another. Standard library only: any layer may import this module.
"""

from __future__ import annotations

from dataclasses import MISSING as NO_DEFAULT
from dataclasses import field
from typing import Any

# variant groups: the name (or family) a composed node carries picks its schema (lcm_exp.config.store)
FAMILIES = ("sd15", "sdxl", "sd3")
ADAPTERS = ("full", "lora")
LOSSES = ("l2", "huber", "pseudo_huber")
LAUNCHERS = ("inline", "accelerate")

# model and precision
DTYPES = ("fp32", "fp16", "bf16")
AUTO_DTYPES = ("auto", *DTYPES)  # model.vae_dtype, perf.frozen_dtype: auto picks per device (lcm_exp.models.precision)
UNCOND_MODES = ("empty_prompt", "zeros")  # empty_prompt: encode ""; zeros: zero embeddings (reference SDXL)
ATTENTION_BACKENDS = ("sdpa", "xformers", "classic")

# adapters
COND_PROJ_INITS = ("random", "zero")
FULL_EXPORT_WEIGHTS = ("ema", "online")
LORA_TARGETS = ("student", "ema")
LORA_EXPORT_WEIGHTS = ("online", "ema")

# data
DATA_SOURCES = ("webdataset", "imagefolder", "hf_dataset", "latent_cache")
INTERPOLATIONS = ("bilinear", "bicubic", "lanczos")
CROPS = ("random", "center")
SMALL_IMAGE_POLICIES = ("upscale", "skip")
CAPTION_CHOICES = ("first", "random")
DATA_CACHE_MODES = ("auto", "never", "always")
EMPTY_CAPTION_POLICIES = ("keep", "skip")
ON_MISSING = ("keep", "drop")

# objective, optimizer and loop
OBJECTIVES = ("lcd", "tcd", "pcm")  # lcm_exp.train.components.OBJECTIVES (a test keeps them equal)
OPTIMIZERS = ("adamw", "adamw8bit")
LR_SCHEDULERS = (
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "piecewise_constant",
)  # fmt: skip  # diffusers.optimization.SchedulerType (a test keeps them equal)
MIXED_PRECISION = ("no", "fp16", "bf16")
NONFINITE_POLICIES = ("skip", "stop")

# trackers, speed switches, sweeps
LOGGERS = ("none", "tensorboard", "wandb")
LOGGER_MODES = ("online", "offline", "disabled")
SOLVER_DTYPES = ("fp32", "fp64")
SWEEP_DIRECTIONS = ("minimize", "maximize")

METADATA_KEY = "choices"


def choice(default: Any, allowed: tuple[str, ...]) -> Any:
    """A schema field whose value must be one of ``allowed`` (validation and the docs read it from the field)."""
    if default is not NO_DEFAULT and default not in allowed and default != "???":
        raise ValueError(f"default {default!r} is not one of {allowed}")
    return field(default=default, metadata={METADATA_KEY: allowed})


def allowed_values(schema_field) -> tuple[str, ...] | None:
    """The allowed values of a dataclass field made by ``choice``, else None."""
    return schema_field.metadata.get(METADATA_KEY)
