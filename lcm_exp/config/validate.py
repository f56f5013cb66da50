"""Every rule a composed config must pass, checked before any weight loads; each problem names its key.

``validate_config`` reads only plain values (no resolver that builds a teacher or shards runs, nothing heavy is
imported unless a value needs the hardware: fp16 or xformers ask torch whether a GPU is there), so a bad value dies in
about a second. It checks: values never set (``???``), every enumerated field against its allowed values (declared
once, in ``choices.py``, on the schema field), ranges, and cross-field rules. ``validate_against_teacher`` then reads
the files the run will use, without loading weights: the teacher's json configs and weight-file headers, the LoRA
targets against the UNet built on the meta device, the checkpoint to resume from, and the local shard files.
All problems of a phase are reported together.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lcm_exp.config.choices import ADAPTERS, DATA_SOURCES, LOSSES, allowed_values
from lcm_exp.config.errors import ConfigError
from lcm_exp.evaluate.settings import EVAL_METRIC_PREFIX, EvalSettings
from lcm_exp.models.registry import FAMILY_FACTS

Rule = tuple[str, Callable[[Any], bool], str]  # (key, predicate, what the value must be)

_RULES: list[Rule] = [
    ("seed", lambda v: 0 <= v < 2**32, "in [0, 2**32) (numpy and torch seeds)"),
    ("objective.num_ddim_timesteps", lambda v: v >= 1, ">= 1"),
    ("model.resolution", lambda v: v >= 8 and v % 8 == 0, "a positive multiple of 8"),
    ("trainer.max_train_steps", lambda v: v >= 1, ">= 1"),
    ("trainer.batch_size", lambda v: v >= 1, ">= 1"),
    ("trainer.gradient_accumulation_steps", lambda v: v >= 1, ">= 1"),
    ("trainer.checkpointing_steps", lambda v: v >= 1, ">= 1"),
    ("trainer.checkpoints_total_limit", lambda v: v is None or v >= 1, "null or >= 1"),
    ("trainer.log_every_n_steps", lambda v: v >= 1, ">= 1"),
    ("trainer.max_consecutive_nonfinite", lambda v: v >= 1, ">= 1"),
    ("trainer.resume_from_checkpoint", lambda v: v is None or bool(str(v).strip()), "null, latest or a folder"),
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
    ("data.stall_timeout_s", lambda v: v > 0, "> 0 seconds"),
    ("data.caption_keys", lambda v: len(v) >= 1, "a non-empty list"),
    ("data.image_keys", lambda v: len(v) >= 1, "a non-empty list"),
    ("data.size_json_keys", lambda v: all(len(pair) == 2 for pair in v), "a list of [height_key, width_key] pairs"),
    ("validation.every_n_steps", lambda v: v >= 0, ">= 0 (0 disables)"),
    ("validation.num_inference_steps", lambda v: len(v) >= 1 and all(s >= 1 for s in v), "a list of ints >= 1"),
    ("validation.seeds", lambda v: len(v) >= 1, "a non-empty list"),
    ("validation.prompts", lambda v: len(v) >= 1, "a non-empty list"),
    ("validation.guidance_scale", lambda v: v is None or v >= 1,
     "null (the adapter's recommendation) or >= 1 (guidance_scale = w + 1, w >= 0)"),
    ("sweep.objective", lambda v: bool(str(v).strip()), "a metric name, e.g. final_loss"),
    ("sweep.name", lambda v: v is None or (bool(str(v).strip()) and "/" not in str(v)), "null or a name without '/'"),
]  # fmt: skip

_ADAPTER_RULES: dict[str, list[Rule]] = {
    "full": [
        ("time_cond_proj_dim", lambda v: v >= 1, ">= 1"),
        ("ema_decay", lambda v: 0 <= v < 1, "in [0, 1)"),
    ],
    "lora": [
        ("rank", lambda v: v >= 1, ">= 1"),
        ("alpha", lambda v: v > 0, "> 0"),
        ("dropout", lambda v: 0 <= v < 1, "in [0, 1)"),
        ("target_modules", lambda v: len(v) >= 1 and all(str(m).strip() for m in v), "a non-empty list of names"),
        ("ema_decay", lambda v: 0 <= v < 1, "in [0, 1)"),
        ("time_cond_proj_dim", lambda v: v >= 1, ">= 1"),
    ],
}

_ACCELERATE_RULES: list[Rule] = [
    ("num_processes", lambda v: v >= 1, ">= 1"),
    ("num_machines", lambda v: v >= 1, ">= 1"),
    ("machine_rank", lambda v: v >= 0, ">= 0"),
    ("main_process_port", lambda v: v is None or 0 < v < 65536, "null (a free port) or a port number"),
]

_LOSS_RULES: dict[str, list[Rule]] = {
    "l2": [],
    "huber": [("huber_c", lambda v: v > 0, "> 0")],
    "pseudo_huber": [("scale", lambda v: v > 0, "> 0")],
}

# what to set when a key is left at ??? (others get a generic line)
_MISSING_HINTS = {
    "data.shards": "data.source=webdataset reads shards: give a path with brace ranges ('/d/s-{000..009}.tar', "
    "quoted for Hydra), a pipe: command, or a list of them",
    "model.teacher": "give a hub id or a local diffusers folder",
}
_OBJECTIVE_RULES: dict[str, list[Rule]] = {
    "lcd": [("timestep_scaling_factor", lambda v: v > 0, "> 0"), ("sigma_data", lambda v: v > 0, "> 0")],
    "tcd": [("gamma", lambda v: 0 <= v <= 1, "in [0, 1] (TCDScheduler's eta)")],
    "pcm": [("phases", lambda v: v >= 1, ">= 1")],
}


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError listing every violated rule; touches no teacher and no heavy module."""
    problems: list[str] = []
    missing = _missing_keys(cfg)
    problems += [f"{key} is not set: {_MISSING_HINTS.get(key, 'give it a value')}" for key in missing]
    _check_choices(cfg, "", problems)
    _check_rules(cfg, "", _RULES, missing, problems)
    problems += guidance_problems(cfg.guidance.w_min, cfg.guidance.w_max)

    adapter = cfg.adapter.name
    if adapter in ADAPTERS:
        _check_rules(cfg, "adapter.", _ADAPTER_RULES[adapter], missing, problems)
        if adapter == "lora" and cfg.adapter.export_weights == "ema" and cfg.adapter.target != "ema":
            problems.append("adapter.export_weights='ema' needs adapter.target='ema' (no EMA is kept otherwise)")
        facts = FAMILY_FACTS.get(cfg.model.family)
        if adapter == "lora" and cfg.adapter.guidance_conditioned and facts and not facts.guidance_conditioned_lora:
            problems.append(f"adapter.guidance_conditioned=true: a LoRA on the {cfg.model.family} family's "
                            f"{facts.denoiser} has no w embedding; train a fixed-w LoRA (guidance.w_min = "
                            "guidance.w_max) or adapter=full, whose student embeds w")

    _check_objective(cfg, missing, problems)
    if cfg.launcher.name == "accelerate":
        _check_rules(cfg, "launcher.", _ACCELERATE_RULES, missing, problems)
        problems += accelerate_config_problems(cfg.launcher.config_file)
    if cfg.loss.name in LOSSES:
        _check_rules(cfg, "loss.", _LOSS_RULES[cfg.loss.name], missing, problems)

    _check_data_source(cfg.data, missing, problems)
    _check_hardware(cfg, problems)
    _check_export(cfg, problems)
    _check_evaluation(cfg, problems)
    if problems:
        raise ConfigError(problems)


def _check_objective(cfg: DictConfig, missing: list[str], problems: list[str]) -> None:
    """Per-objective rules; PCM's phases must divide N: only then do the exported sampler's K, 2K, ... step
    timesteps land on the phase edges the student was trained to hit."""
    objective = cfg.objective
    if objective.name not in _OBJECTIVE_RULES:
        return  # reported by the choices
    _check_rules(cfg, "objective.", _OBJECTIVE_RULES[objective.name], missing, problems)
    n, k = objective.num_ddim_timesteps, objective.get("phases")
    if objective.name == "pcm" and isinstance(k, int) and k >= 1 and n % k:
        problems.append(f"objective.phases={k} must divide objective.num_ddim_timesteps={n}: the exported TCDScheduler "
                        f"lands on the phase edges only then (e.g. num_ddim_timesteps={k * max(1, n // k)})")


#: accelerate distributed types the loop runs: each rank holds whole networks (the LoRA teacher pass and the EMA read
#: the student's own weights, which FSDP and DeepSpeed ZeRO-3 replace by shards: docs/sd3_memory.md)
_RUNNABLE_DISTRIBUTED = {"NO", "MULTI_GPU", "MULTI_CPU", "MULTI_XPU", "MULTI_NPU", "MULTI_MLU", "MULTI_HPU"}


def accelerate_config_problems(path) -> list[str]:
    """launcher.config_file must exist, be YAML, and select a distributed type this loop runs (not FSDP or
    DeepSpeed yet): refused before anything starts, not a crash or silent misuse of sharded weights later."""
    if not path:
        return []
    import yaml

    file = Path(str(path)).expanduser()
    if not file.is_file():
        return [f"launcher.config_file={path}: no such file"]
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        return [f"launcher.config_file={path}: not a YAML accelerate config ({str(err).splitlines()[0]})"]
    kind = str(data.get("distributed_type", "NO")).upper() if isinstance(data, dict) else "?"
    if kind not in _RUNNABLE_DISTRIBUTED:
        return [f"launcher.config_file={path}: distributed_type {kind} is not supported by this loop yet (it runs "
                f"whole networks per rank: {', '.join(sorted(_RUNNABLE_DISTRIBUTED))}); see docs/sd3_memory.md"]
    return []


def guidance_problems(w_min: float, w_max: float, prefix: str = "guidance.") -> list[str]:
    """The rules of a (w_min, w_max) pair (LCM convention: w >= 0), also for sweeps' guidance pairs."""
    problems = []
    if w_min < 0:
        problems.append(f"{prefix}w_min={w_min}: must be >= 0 (guided = (1 + w) * cond - w * uncond)")
    if w_min > w_max:
        problems.append(f"{prefix}w_min={w_min} > {prefix}w_max={w_max}: w_min must be <= w_max")
    return problems


def _missing_keys(node: DictConfig, prefix: str = "") -> list[str]:
    """Keys left at ``???``, without resolving any interpolation."""
    found = []
    for key in node:
        full = f"{prefix}{key}"
        if OmegaConf.is_missing(node, key):
            found.append(full)
        elif not OmegaConf.is_interpolation(node, key) and isinstance(node._get_node(key), DictConfig):
            found += _missing_keys(node._get_node(key), f"{full}.")
    return found


def _check_choices(node: DictConfig, prefix: str, problems: list[str]) -> None:
    """Every field declared with ``choice()`` in the node's schema, in every (typed) node of the tree."""
    schema = OmegaConf.get_type(node)
    fields = dataclasses.fields(schema) if dataclasses.is_dataclass(schema) else ()
    for schema_field in fields:
        allowed = allowed_values(schema_field)
        name = schema_field.name
        if allowed is None or name not in node or OmegaConf.is_missing(node, name):
            continue
        try:
            value = node[name]
        except Exception as err:  # an interpolation that cannot be resolved
            problems.append(f"{prefix}{name}: {err}".splitlines()[0])
            continue
        if value not in allowed:
            problems.append(f"{prefix}{name}={value!r}: unknown, choose one of [{', '.join(allowed)}]")
    for key in node:
        if not OmegaConf.is_interpolation(node, key) and isinstance(node._get_node(key), DictConfig):
            _check_choices(node._get_node(key), f"{prefix}{key}.", problems)


def _check_rules(cfg: DictConfig, prefix: str, rules: list[Rule], missing: list[str], problems: list[str]) -> None:
    for key, ok, expected in rules:
        full = f"{prefix}{key}"
        if full in missing:
            continue
        value = OmegaConf.select(cfg, full)
        try:
            good = ok(value)
        except TypeError:
            good = False
        if not good:
            shown = list(value) if OmegaConf.is_list(value) else value
            problems.append(f"{full}={shown!r}: must be {expected}")


def _check_data_source(data: DictConfig, missing: list[str], problems: list[str]) -> None:
    """Each source's own keys: shards for webdataset / latent_cache, a path for imagefolder / hf_dataset."""
    if data.source in ("webdataset", "latent_cache"):
        if "data.shards" in missing or OmegaConf.is_interpolation(data, "shards"):
            return  # reported above / generated shards, checked once resolved
        shards = data.shards
        empty = shards is None or (not shards.strip() if isinstance(shards, str) else not len(shards))
        if empty:
            problems.append("data.shards is empty: give a path with brace ranges, a pipe: command, or a list of them")
        return
    if data.source not in DATA_SOURCES:
        return  # reported by the choices
    path = data.path
    if path is None or not str(path).strip():
        problems.append(f"data.path is not set: data.source={data.source} needs it (a folder, or a dataset name)")
    elif data.source == "imagefolder" and not Path(path).expanduser().is_dir():
        problems.append(f"data.path={path!r}: no such folder (data.source=imagefolder)")
    if data.source == "hf_dataset" and importlib.util.find_spec("datasets") is None:
        problems.append("data.source=hf_dataset needs the `datasets` package: pip install 'lcm_exp[datasets]' (or "
                        "convert once: python -m lcm_exp.data.make_shards --hf-dataset ... on a machine that has it)")


def _check_hardware(cfg: DictConfig, problems: list[str]) -> None:
    """fp16 autocast (with its grad scaler) and xformers need a GPU: refuse them here, not at step 1."""
    fp16, xformers = cfg.trainer.mixed_precision == "fp16", cfg.model.attention == "xformers"
    if xformers and importlib.util.find_spec("xformers") is None:
        problems.append("model.attention='xformers': the xformers package is not installed (install the build matching "
                        "your torch and CUDA), or use model.attention=sdpa, PyTorch's fused attention")
        xformers = False
    if not (fp16 or xformers):
        return
    cuda = _has_cuda(cfg)
    if fp16 and not cuda and not _has_other_accelerator(cfg):
        problems.append("trainer.mixed_precision='fp16' needs a GPU and none is visible here: on a CPU use "
                        "trainer.mixed_precision=bf16 or no")
    if xformers and not cuda:
        problems.append("model.attention='xformers': its kernels run on CUDA GPUs only and none is visible here; use "
                        "model.attention=sdpa")


def _cpu_forced(cfg: DictConfig) -> bool:
    launcher_cpu = cfg.launcher.name == "accelerate" and cfg.launcher.cpu
    return bool(launcher_cpu) or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")


def _has_cuda(cfg: DictConfig) -> bool:
    if _cpu_forced(cfg):
        return False
    import torch  # only for configs that need a GPU: about a second

    return torch.cuda.is_available()


def _has_other_accelerator(cfg: DictConfig) -> bool:
    """An accelerator other than CUDA (XPU, NPU, MPS...) where accelerate runs fp16 too."""
    if _cpu_forced(cfg):
        return False
    import torch

    accelerator = getattr(torch, "accelerator", None)
    return bool(accelerator and accelerator.is_available())


def _check_export(cfg: DictConfig, problems: list[str]) -> None:
    export = cfg.export
    if export.fp16_variant and cfg.adapter.name != "full":
        problems.append("export.fp16_variant=true: only the full UNet has an fp16 variant (a LoRA file loads into a "
                        "pipeline of any dtype); set it to false")
    if not export.push_to_hub:
        return
    if not export.enabled:
        problems.append("export.push_to_hub=true needs export.enabled=true (the upload is the exported model folder)")
    from lcm_exp.train.upload import hub_problems  # light: huggingface_hub only

    problems.extend(hub_problems(export.hub_model_id))


def _check_evaluation(cfg: DictConfig, problems: list[str]) -> None:
    """The evaluation settings' own checks, named by key; an eval:* sweep objective needs the evaluation to run."""
    try:
        settings = EvalSettings(**OmegaConf.to_container(cfg.evaluation))
    except (ValueError, TypeError) as err:  # "evaluation settings: w=-1: ...; steps=[]: ..." -> one per key
        text = str(err).removeprefix("evaluation settings: ")
        problems.extend(f"evaluation.{part}" for part in text.split("; "))
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
    """Check the files the run will read, before any weight loads: the teacher (json, weight headers), the local shard
    files, the checkpoint to resume from, the LoRA targets (against the UNet built on the meta device).

    ``cfg`` is the resolved RunConfig. Returns what was read of the teacher (num_train_timesteps, prediction_type,
    vae_scale_factor) for the run record.
    """
    from lcm_exp.models.teacher_facts import read_teacher_facts

    facts = read_teacher_facts(cfg.model)  # raises: nothing else can be judged without the teacher
    problems = []
    n, t = cfg.objective.num_ddim_timesteps, facts["num_train_timesteps"]
    if not 1 <= n <= t:
        problems.append(f"objective.num_ddim_timesteps={n}: must be in [1, {t}] (the teacher's training timesteps)")
    problems.extend(objective_schedule_problems(cfg.objective.name, cfg.model.family))
    vae_factor, patch = facts["vae_scale_factor"], facts["patch_size"]
    if cfg.model.resolution % (vae_factor * patch):
        times_patch = f" x the denoiser's patch size {patch} = {vae_factor * patch}" if patch > 1 else ""
        problems.append(f"model.resolution={cfg.model.resolution}: must be divisible by the VAE factor {vae_factor}"
                        f"{times_patch}")
    if cfg.evaluation.at_end or cfg.evaluation.every_n_steps:
        from lcm_exp.toy.build import read_toy_world

        problems.extend(cfg.evaluation.objective_problems(read_toy_world(cfg.model.teacher) is not None))
    problems += _shard_problems(cfg.data)
    problems += resume_problems(cfg)
    if not problems and cfg.adapter.name == "lora":  # last: for a hub teacher it imports diffusers
        from lcm_exp.models.teacher_facts import lora_target_problems, unet_layers

        layers = unet_layers(cfg.model.teacher, cfg.model.revision, cfg.model.variant,
                             FAMILY_FACTS[cfg.model.family].denoiser)
        problems += lora_target_problems(list(cfg.adapter.target_modules), layers)
    if problems:
        raise ConfigError(problems)
    return facts


def _shard_problems(data) -> list[str]:
    """Every local shard of the spec exists (pipe: commands and urls are judged when read); an image folder has images
    and readable metadata."""
    if data.source == "imagefolder":
        from lcm_exp.data.image_folder_source import ImageFolderReader

        try:
            ImageFolderReader(data.path, data.caption_column, data.caption_keys)
        except (OSError, ValueError) as err:
            return [f"data.path: {err}"]
    if data.source not in ("webdataset", "latent_cache"):
        return []
    from lcm_exp.data.shards import expand_shards  # light: braceexpand only

    try:
        expand_shards(data.shards)
    except (ValueError, FileNotFoundError) as err:
        return [str(err)]
    return []


def resume_problems(cfg) -> list[str]:
    """The checkpoint a run would resume from (an explicit folder, or the run dir's newest one when it holds an
    interrupted run) exists, is complete, and was written by this adapter with these shapes; read from the
    safetensors header of its model.safetensors only."""
    key, spec = "trainer.resume_from_checkpoint", cfg.trainer.resume_from_checkpoint
    run_dir = Path(cfg.paths.output_dir)
    if spec is None or spec == "latest":
        if cfg.force or not (run_dir / "checkpoints").is_dir() or (spec is None and _status(run_dir) == "completed"):
            return []  # nothing is resumed (or the launch is refused for the completed run it would replace)
    elif not Path(spec).expanduser().is_dir():
        return [f"{key}={spec!r}: no such folder; give latest or a <run dir>/checkpoints/checkpoint-<step> folder"]
    from lcm_exp.models.teacher_files import CorruptWeightsError, read_safetensors_header
    from lcm_exp.train.checkpoint import MARKER, complete_checkpoints  # imports torch: only when there is a folder

    if spec is None or spec == "latest":
        done = complete_checkpoints(run_dir / "checkpoints")
        if not done:
            return []
        path, named = done[-1], f"{key}={spec or 'latest'!r} (the run dir's {done[-1].name})"
    else:
        path, named = Path(spec).expanduser(), f"{key}={spec!r}"
        if not (path / MARKER).is_file():
            inside = complete_checkpoints(path / "checkpoints")
            hint = f" (a run dir: did you mean {inside[-1]}?)" if inside else " (a save cut short, or not a checkpoint)"
            return [f"{named}: not a complete checkpoint folder{hint}"]
    try:
        header = read_safetensors_header(path / "model.safetensors")
    except (OSError, CorruptWeightsError) as err:
        return [f"{named}: cannot read its model.safetensors: {err}"]
    return [f"{named}: {p}" for p in _checkpoint_mismatches(header, cfg.adapter)]


def _status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "run.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


def _checkpoint_mismatches(header: dict[str, Any], adapter) -> list[str]:
    """What the student in a checkpoint's model.safetensors header says about the adapter that wrote it."""
    lora_a = {k: v for k, v in header.items() if ".lora_A." in k}
    kind = "lora" if lora_a else "full"
    if kind != adapter.name:
        return [f"written by adapter={kind}, but this run has adapter={adapter.name}; use adapter={kind} "
                "to resume it, or start a new run (another hydra.run.dir, or force=true)"]  # fmt: skip
    cond_proj = header.get("time_embedding.cond_proj.weight",  # a UNet student's w input; SD3's guidance_embedder
                           header.get("time_text_embed.guidance_embedder.linear_1.weight"))
    expected_dim = adapter.time_cond_proj_dim if kind == "full" or adapter.guidance_conditioned else None
    found_dim = cond_proj["shape"][1] if cond_proj else None
    problems = []
    if found_dim != expected_dim:
        problems.append(f"its guidance embedding has time_cond_proj_dim={found_dim}, this run expects {expected_dim} "
                        "(adapter.time_cond_proj_dim / adapter.guidance_conditioned)")
    if kind == "lora":
        ranks = sorted({v["shape"][0] for v in lora_a.values()})
        if ranks != [adapter.rank]:
            problems.append(f"its LoRA rank is {ranks}, this run has adapter.rank={adapter.rank}")
        has_ema = any(".lora_A.ema." in k for k in lora_a)
        if has_ema != (adapter.target == "ema"):
            problems.append(f"it {'has' if has_ema else 'has no'} EMA adapter, this run has adapter.target="
                            f"{adapter.target}")  # fmt: skip
    return problems


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
