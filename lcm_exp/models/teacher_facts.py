"""What the config validator needs from a teacher, read without loading a weight.

The json files give the schedule and the VAE factor; a local teacher's weight files are checked from their headers; the
LoRA targets are matched against the UNet's layers (from those headers, or the UNet built on the meta device).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from lcm_exp.config.errors import ConfigError
from lcm_exp.models.registry import FAMILY_FACTS
from lcm_exp.models.teacher_files import (
    CorruptWeightsError,
    MissingComponentError,
    check_weight_file,
    is_local,
    read_json,
    read_model_index,
    read_safetensors_header,
    read_scheduler_config,
    weight_files,
)

# the components a family loads weights of (text_encoder_2 and _3 too), its denoiser included
_WEIGHTED = ("unet", "transformer", "vae", "text_encoder")


def read_teacher_facts(model_cfg) -> dict[str, Any]:
    """num_train_timesteps, prediction_type, the VAE's downsampling factor and the denoiser's patch size of
    ``model.teacher``.

    A teacher that is missing, lacks a component, or holds a damaged weight file fails here, named, instead of deep
    inside from_pretrained after the other weights loaded.
    """
    teacher, revision = model_cfg.teacher, model_cfg.revision
    denoiser = FAMILY_FACTS[model_cfg.family].denoiser  # unet | transformer
    try:
        index = read_model_index(teacher, revision)
        missing = [c for c in ("scheduler", denoiser, "vae") if not isinstance(index.get(c), list)]
        if missing:
            raise MissingComponentError(f"model_index.json has no {', '.join(missing)}")
        scheduler = read_scheduler_config(teacher, revision)
        vae = None if model_cfg.vae else read_json(teacher, "config.json", revision, subfolder="vae")
        denoiser_config = read_json(teacher, "config.json", revision, subfolder=denoiser)
        check_teacher_weights(teacher, index, model_cfg.variant, skip_vae=bool(model_cfg.vae))
    except (MissingComponentError, ValueError) as err:
        raise ConfigError([f"model.teacher={str(teacher)!r}: {err}"]) from err
    if model_cfg.vae:
        try:
            vae = read_json(model_cfg.vae, "config.json")
            if is_local(model_cfg.vae):
                _check_component(Path(model_cfg.vae).expanduser(), None)
        except (MissingComponentError, ValueError) as err:
            raise ConfigError([f"model.vae={str(model_cfg.vae)!r}: {err}"]) from err
    return {
        "num_train_timesteps": scheduler.num_train_timesteps,
        "prediction_type": scheduler.prediction_type,
        "vae_scale_factor": 2 ** (len(vae.get("block_out_channels", [0, 0, 0, 0])) - 1),
        "patch_size": int(denoiser_config.get("patch_size") or 1),  # a transformer's latent patches (SD3: 2)
    }


def check_teacher_weights(teacher, index: dict, variant: str | None, skip_vae: bool = False) -> None:
    """Header check of every weight file a family will load from a local teacher (hub files are checked on
    download); raises MissingComponentError / CorruptWeightsError naming the file."""
    if not is_local(teacher):
        return
    root = Path(teacher).expanduser()
    for component, entry in index.items():
        loaded = component.startswith(_WEIGHTED) and not (skip_vae and component == "vae")
        if loaded and isinstance(entry, list) and entry[0] is not None:
            _check_component(root / component, variant)


def _check_component(folder: Path, variant: str | None) -> None:
    files = weight_files(folder, variant)
    if not files:
        what = f"no {variant!r} variant weight file" if variant else "no weight file (.safetensors or .bin)"
        raise MissingComponentError(f"{folder.name}/ has {what}")
    for path in files:
        try:
            check_weight_file(path)
        except CorruptWeightsError as err:
            raise CorruptWeightsError(f"{folder.name}/{path.name} is damaged: {str(err).split(': ', 1)[-1]}") from None


# the layer types PEFT's LoRA can wrap (others make it raise "Target module ... is not supported"); a layer read from a
# weights header is known by its weight's rank only (2: Linear or Embedding, 1: a norm)
_LORA_LAYERS = {"Linear", "Conv1d", "Conv2d", "Conv3d", "Embedding", "MultiheadAttention", "Linear/Embedding"}
_KIND_BY_RANK = {1: "GroupNorm/LayerNorm", 2: "Linear/Embedding", 3: "Conv1d", 4: "Conv2d", 5: "Conv3d"}


def unet_layers(teacher, revision: str | None, variant: str | None, folder: str = "unet") -> dict[str, str]:
    """Module name -> layer kind of the teacher's UNet (or the denoiser in ``folder``, SD3's transformer), without
    loading a weight.

    A local teacher: the names and weight shapes in its UNet weights' safetensors headers (milliseconds; the state dict
    names of a UNet2DConditionModel are its module names). A hub teacher, whose weights are not downloaded yet: the
    UNet built from unet/config.json on the meta device (imports diffusers, seconds).
    """
    files = weight_files(Path(teacher).expanduser() / folder, variant) if is_local(teacher) else []
    if files and all(f.suffix == ".safetensors" for f in files):
        layers = {}
        for path in files:
            for key, info in read_safetensors_header(path).items():
                module, _, param = key.rpartition(".")
                if param == "weight":
                    layers[module] = _KIND_BY_RANK.get(len(info["shape"]), "other")
                else:
                    layers.setdefault(module, "other")
        return layers
    import diffusers
    from accelerate import init_empty_weights

    config = read_json(teacher, "config.json", revision, subfolder=folder)
    with init_empty_weights():
        unet = getattr(diffusers, config.get("_class_name", "UNet2DConditionModel")).from_config(config)
    return {name: type(module).__name__ for name, module in unet.named_modules() if name}


def lora_target_problems(target_modules: list[str], layers: dict[str, str]) -> list[str]:
    """PEFT's matching rule for a list: a module is targeted when its name is the entry or ends with '.' + entry.
    Each entry must reach at least one layer PEFT can wrap."""
    problems = []
    leaves = sorted({name.rsplit(".", 1)[-1] for name in layers})
    for target in target_modules:
        matched = [n for n in layers if n == target or n.endswith(f".{target}")]
        if not matched:
            close = difflib.get_close_matches(target.rsplit(".", 1)[-1], leaves, n=3)
            hint = f" (close: {', '.join(close)})" if close else ""
            problems.append(f"adapter.target_modules: {target!r} matches no layer of the teacher UNet{hint}")
        elif not any(layers[n] in _LORA_LAYERS for n in matched):
            kinds = sorted({layers[n] for n in matched})
            problems.append(f"adapter.target_modules: {target!r} matches only {', '.join(kinds)} layers, which LoRA "
                            "cannot wrap (Linear, Conv and Embedding layers)")  # fmt: skip
    return problems
