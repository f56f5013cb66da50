"""Cross-field rules the schemas cannot express, checked before any model loads.

``validate_config`` reads only plain values (no resolver that builds a teacher runs, nothing heavy is
imported), so a bad value dies in about a second. ``validate_against_teacher`` then reads the teacher's
scheduler and VAE *configs* (json only, no weights) for the rules that depend on the checkpoint.
All problems are collected and reported together, each naming its key.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lcm_exp.config.errors import ConfigError
from lcm_exp.evaluate.settings import EVAL_METRIC_PREFIX, EvalSettings
from lcm_exp.models.registry import FAMILY_NAMES

ADAPTERS = ("full", "lora")
LOSSES = ("l2", "huber", "pseudo_huber")
DTYPES = ("fp32", "fp16", "bf16")
MIXED_PRECISION = ("no", "fp16", "bf16")
OPTIMIZERS = ("adamw", "adamw8bit")
LR_SCHEDULERS = (
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "piecewise_constant",
)  # fmt: skip
LOGGERS = ("none", "tensorboard", "wandb")
LAUNCHERS = ("inline", "accelerate")
DATA_SOURCES = ("webdataset", "imagefolder", "hf_dataset", "latent_cache")
ATTENTION_BACKENDS = ("sdpa", "xformers", "classic")

# (key, allowed values) for every enumerated string knob; adapter/loss/model keys are checked per variant.
_CHOICES: dict[str, tuple[str, ...]] = {
    "data.source": DATA_SOURCES,
    "data.image_interpolation": ("bilinear", "bicubic", "lanczos"),
    "data.caption_choice": ("first", "random"),
    "data.crop": ("random", "center"),
    "data.small_image": ("upscale", "skip"),
    "data.empty_caption": ("keep", "skip"),
    "data.filters.on_missing": ("keep", "drop"),
    "optim.name": OPTIMIZERS,
    "optim.lr_scheduler": LR_SCHEDULERS,
    "trainer.mixed_precision": MIXED_PRECISION,
    "trainer.nonfinite": ("skip", "stop"),
    "logger.name": LOGGERS,
    "logger.mode": ("online", "offline", "disabled"),
    "launcher.name": LAUNCHERS,
    "model.family": FAMILY_NAMES,
    "model.vae_dtype": DTYPES,
    "model.uncond": ("empty_prompt", "zeros"),
    "model.attention": ATTENTION_BACKENDS,
}

# (key, predicate, what it must be)
_RULES: list[tuple[str, Callable[[Any], bool], str]] = [
    ("guidance.w_min", lambda v: v >= 0, ">= 0"),
    ("objective.num_ddim_timesteps", lambda v: v >= 1, ">= 1"),
    ("model.resolution", lambda v: v >= 8 and v % 8 == 0, "a positive multiple of 8"),
    ("trainer.max_train_steps", lambda v: v >= 1, ">= 1"),
    ("trainer.batch_size", lambda v: v >= 1, ">= 1"),
    ("trainer.gradient_accumulation_steps", lambda v: v >= 1, ">= 1"),
    ("trainer.checkpointing_steps", lambda v: v >= 1, ">= 1"),
    ("trainer.checkpoints_total_limit", lambda v: v is None or v >= 1, "null or >= 1"),
    ("trainer.log_every_n_steps", lambda v: v >= 1, ">= 1"),
    ("trainer.max_consecutive_nonfinite", lambda v: v >= 1, ">= 1"),
    ("optim.lr", lambda v: v > 0, "> 0"),
    ("optim.weight_decay", lambda v: v >= 0, ">= 0"),
    ("optim.eps", lambda v: v > 0, "> 0"),
    ("optim.max_grad_norm", lambda v: v > 0, "> 0"),
    ("optim.lr_warmup_steps", lambda v: v >= 0, ">= 0"),
    ("optim.betas", lambda v: len(v) == 2 and all(0 <= b < 1 for b in v), "two values in [0, 1)"),
    ("data.num_workers", lambda v: v >= 0, ">= 0"),
    ("data.shuffle_buffer", lambda v: v >= 0, ">= 0"),
    ("data.max_image_pixels", lambda v: v >= 1, ">= 1"),
    ("data.max_skip_fraction", lambda v: 0 < v <= 1, "in (0, 1]"),
    ("data.max_consecutive_skips", lambda v: v >= 1, ">= 1"),
    ("data.caption_keys", lambda v: len(v) >= 1, "a non-empty list"),
    ("validation.every_n_steps", lambda v: v >= 0, ">= 0 (0 disables)"),
    ("validation.num_inference_steps", lambda v: len(v) >= 1 and all(s >= 1 for s in v), "a non-empty list of ints >= 1"),
    ("validation.seeds", lambda v: len(v) >= 1, "a non-empty list"),
    ("validation.prompts", lambda v: len(v) >= 1, "a non-empty list"),
]

_ADAPTER_RULES: dict[str, list[tuple[str, Callable[[Any], bool], str]]] = {
    "full": [
        ("time_cond_proj_dim", lambda v: v >= 1, ">= 1"),
        ("cond_proj_init", lambda v: v in ("random", "zero"), "one of [random, zero]"),
        ("ema_decay", lambda v: 0 <= v < 1, "in [0, 1)"),
        ("export_weights", lambda v: v in ("ema", "online"), "one of [ema, online]"),
    ],
    "lora": [
        ("rank", lambda v: v >= 1, ">= 1"),
        ("alpha", lambda v: v > 0, "> 0"),
        ("dropout", lambda v: 0 <= v < 1, "in [0, 1)"),
        ("target_modules", lambda v: len(v) >= 1, "a non-empty list"),
        ("target", lambda v: v in ("student", "ema"), "one of [student, ema]"),
        ("ema_decay", lambda v: 0 <= v < 1, "in [0, 1)"),
        ("time_cond_proj_dim", lambda v: v >= 1, ">= 1"),
        ("export_weights", lambda v: v in ("online", "ema"), "one of [online, ema]"),
    ],
}

_ACCELERATE_RULES = [
    ("num_processes", lambda v: v >= 1, ">= 1"),
    ("num_machines", lambda v: v >= 1, ">= 1"),
    ("machine_rank", lambda v: v >= 0, ">= 0"),
    ("main_process_port", lambda v: v is None or 0 < v < 65536, "null (a free port) or a port number"),
]

_LOSS_RULES: dict[str, list[tuple[str, Callable[[Any], bool], str]]] = {
    "l2": [],
    "huber": [("huber_c", lambda v: v > 0, "> 0")],
    "pseudo_huber": [("scale", lambda v: v > 0, "> 0")],
}


OBJECTIVES = ("lcd", "tcd", "pcm")
_OBJECTIVE_RULES: dict[str, list[tuple[str, Callable[[Any], bool], str]]] = {
    "lcd": [("timestep_scaling_factor", lambda v: v > 0, "> 0"), ("sigma_data", lambda v: v > 0, "> 0")],
    "tcd": [("gamma", lambda v: 0 <= v <= 1, "in [0, 1] (TCDScheduler's eta)")],
    "pcm": [("phases", lambda v: v >= 1, ">= 1")],
}


def _get(cfg: DictConfig, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = node[part]
    return node


def _check_rules(cfg: DictConfig, prefix: str, rules, problems: list[str]) -> None:
    for key, ok, expected in rules:
        full = f"{prefix}{key}"
        value = _get(cfg, full)
        try:
            good = ok(value)
        except TypeError:
            good = False
        if not good:
            problems.append(f"{full}={value!r}: must be {expected}")


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError listing every violated rule; touches no teacher and no heavy module."""
    problems: list[str] = []
    for key, allowed in _CHOICES.items():
        value = _get(cfg, key)
        if value not in allowed:
            problems.append(f"{key}={value!r}: unknown, choose one of [{', '.join(allowed)}]")
    _check_rules(cfg, "", _RULES, problems)

    w_min, w_max = cfg.guidance.w_min, cfg.guidance.w_max
    if w_min > w_max:
        problems.append(f"guidance.w_min={w_min} > guidance.w_max={w_max}: w_min must be <= w_max")

    adapter = cfg.adapter.name
    if adapter not in _ADAPTER_RULES:
        problems.append(f"adapter.name={adapter!r}: unknown, choose one of [{', '.join(ADAPTERS)}]")
    else:
        _check_rules(cfg, "adapter.", _ADAPTER_RULES[adapter], problems)
        if adapter == "lora" and cfg.adapter.export_weights == "ema" and cfg.adapter.target != "ema":
            problems.append("adapter.export_weights='ema' needs adapter.target='ema' (no EMA is kept otherwise)")

    _check_objective(cfg, problems)

    if cfg.launcher.name == "accelerate":
        _check_rules(cfg, "launcher.", _ACCELERATE_RULES, problems)

    loss = cfg.loss.name
    if loss not in _LOSS_RULES:
        problems.append(f"loss.name={loss!r}: unknown, choose one of [{', '.join(LOSSES)}]")
    else:
        _check_rules(cfg, "loss.", _LOSS_RULES[loss], problems)

    if cfg.data.source in ("webdataset", "latent_cache"):
        shards = cfg.data._get_node("shards")._value()  # raw: an interpolation (generated shards) is not resolved here
        empty = shards is None or (not shards.strip() if isinstance(shards, str) else not len(shards))
        if not OmegaConf.is_interpolation(cfg.data, "shards") and empty:
            problems.append("data.shards is empty: give a path with brace ranges, a pipe: command, or a list of them")
    elif cfg.data.source in DATA_SOURCES:
        _check_data_path(cfg.data, problems)
    _check_attention(cfg.model.attention, problems)
    _check_export(cfg, problems)
    _check_evaluation(cfg, problems)

    if problems:
        raise ConfigError(problems)


def _check_objective(cfg: DictConfig, problems: list[str]) -> None:
    """Per-objective rules; PCM's phases must divide N: only then do the exported sampler's K, 2K, ... step
    timesteps land on the phase edges the student was trained to hit."""
    objective = cfg.objective
    if objective.name not in _OBJECTIVE_RULES:
        problems.append(f"objective.name={objective.name!r}: unknown, choose one of [{', '.join(OBJECTIVES)}]")
        return
    _check_rules(cfg, "objective.", _OBJECTIVE_RULES[objective.name], problems)
    n, k = objective.num_ddim_timesteps, objective.get("phases")
    if objective.name == "pcm" and k >= 1 and n % k:
        problems.append(f"objective.phases={k} must divide objective.num_ddim_timesteps={n}: the exported TCDScheduler "
                        f"lands on the phase edges only then (e.g. num_ddim_timesteps={k * max(1, n // k)})")


def _check_data_path(data: DictConfig, problems: list[str]) -> None:
    """imagefolder / hf_dataset read ``data.path`` (a folder must exist; a dataset name is checked when loaded)."""
    path = data.path
    if path is None or not str(path).strip():
        problems.append(f"data.path is not set: data.source={data.source} needs it (a folder, or a dataset name)")
    elif data.source == "imagefolder" and not Path(path).expanduser().is_dir():
        problems.append(f"data.path={path!r}: no such folder (data.source=imagefolder)")


def _check_attention(backend: str, problems: list[str]) -> None:
    if backend == "xformers" and importlib.util.find_spec("xformers") is None:
        problems.append("model.attention='xformers': the xformers package is not installed (install the build matching "
                        "your torch and CUDA), or use model.attention=sdpa, PyTorch's fused attention")


def _check_export(cfg: DictConfig, problems: list[str]) -> None:
    export = cfg.export
    if export.fp16_variant and cfg.adapter.name != "full":
        problems.append("export.fp16_variant=true: only the full UNet has an fp16 variant (a LoRA file loads into a "
                        "pipeline of any dtype); set it to false")
    if not export.push_to_hub:
        return
    if not export.enabled:
        problems.append("export.push_to_hub=true needs export.enabled=true (the upload is the exported model folder)")
    from lcm_exp.hub import hub_problems  # light: huggingface_hub only

    problems.extend(hub_problems(export.hub_model_id))


def _check_evaluation(cfg: DictConfig, problems: list[str]) -> None:
    """The evaluation settings' own checks, named by key; an eval:* sweep objective needs the evaluation to run."""
    try:
        settings = EvalSettings(**OmegaConf.to_container(cfg.evaluation))
    except (ValueError, TypeError) as err:
        problems.append(f"evaluation: {err}")
        return
    if settings.at_end and not cfg.export.enabled:
        problems.append("evaluation.at_end=true evaluates the exported student: it needs export.enabled=true")
    if settings.at_end:  # its objective is a run metric: it must be computable (the teacher is checked later)
        problems.extend(settings.objective_problems())
    objective = cfg.sweep.objective
    if objective.startswith(f"{EVAL_METRIC_PREFIX}_objective_best"):  # the learning curve's best point
        if not settings.every_n_steps:
            problems.append(f"sweep.objective={objective!r} is the learning curve's: set evaluation.every_n_steps")
    elif objective.startswith(EVAL_METRIC_PREFIX) and not settings.at_end:
        problems.append(f"sweep.objective={objective!r} is an evaluation metric: set evaluation.at_end=true")
    if settings.every_n_steps:  # its objective is a run metric as well
        problems.extend(p for p in settings.objective_problems() if p not in problems)


def validate_against_teacher(cfg) -> dict[str, Any]:
    """Check the rules that need the teacher's scheduler and VAE configs (json only, before weights load).

    Returns what was read (num_train_timesteps, prediction_type, vae_scale_factor) for the run record.
    """
    from lcm_exp.models.teacher_facts import read_teacher_facts

    facts = read_teacher_facts(cfg.model)
    problems = []
    n, t = cfg.objective.num_ddim_timesteps, facts["num_train_timesteps"]
    if not 1 <= n <= t:
        problems.append(f"objective.num_ddim_timesteps={n}: must be in [1, {t}] (the teacher's training timesteps)")
    problems.extend(objective_schedule_problems(cfg.objective.name, cfg.model.family))
    factor = facts["vae_scale_factor"]
    if cfg.model.resolution % factor:
        problems.append(f"model.resolution={cfg.model.resolution}: must be divisible by the VAE factor {factor}")
    if cfg.evaluation.at_end or cfg.evaluation.every_n_steps:
        from lcm_exp.toy.build import read_toy_world

        problems.extend(cfg.evaluation.objective_problems(read_toy_world(cfg.model.teacher) is not None))
    if problems:
        raise ConfigError(problems)
    return facts


def objective_schedule_problems(objective: str, family: str) -> list[str]:
    """An objective must have a sampler for the family's kind of schedule (e.g. a flow-matching teacher), else its
    student could not be exported; checked with the teacher, before weights load."""
    from lcm_exp.models.registry import FAMILY_FACTS
    from lcm_exp.train.components import OBJECTIVES  # the registry (imports torch, fine at this stage)

    kind = FAMILY_FACTS[family].schedule_kind
    supported = OBJECTIVES[objective].samplers
    if kind in supported:
        return []
    return [f"objective={objective} with model.family={family}: the objective has no sampler for a {kind!r} "
            f"teacher (it samples: {', '.join(supported)})"]
