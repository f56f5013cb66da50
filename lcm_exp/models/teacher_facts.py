"""What the config validator needs from a teacher, read from its json files only (no weights, no diffusers)."""

from __future__ import annotations

from typing import Any

from lcm_exp.config.errors import ConfigError
from lcm_exp.models.registry import FAMILY_FACTS
from lcm_exp.models.teacher_files import MissingComponentError, read_json, read_model_index, read_scheduler_config


def read_teacher_facts(model_cfg) -> dict[str, Any]:
    """num_train_timesteps, prediction_type, the VAE's downsampling factor and the denoiser's patch size of
    ``model.teacher``.

    A teacher missing a component fails here, named, instead of deep inside from_pretrained.
    """
    teacher, revision = model_cfg.teacher, model_cfg.revision
    denoiser = FAMILY_FACTS[model_cfg.family].denoiser  # unet | transformer
    try:
        index = read_model_index(teacher, revision)
        missing = [c for c in ("scheduler", denoiser, "vae") if not isinstance(index.get(c), list)]
        if missing:
            raise MissingComponentError(f"model_index.json has no {', '.join(missing)}")
        scheduler = read_scheduler_config(teacher, revision)
        if model_cfg.vae:
            vae = read_json(model_cfg.vae, "config.json")
        else:
            vae = read_json(teacher, "config.json", revision, subfolder="vae")
        denoiser_config = read_json(teacher, "config.json", revision, subfolder=denoiser)
    except (MissingComponentError, ValueError) as err:
        raise ConfigError([f"model.teacher={teacher!r} (model.vae={model_cfg.vae!r}): {err}"]) from err
    return {
        "num_train_timesteps": scheduler.num_train_timesteps,
        "prediction_type": scheduler.prediction_type,
        "vae_scale_factor": 2 ** (len(vae.get("block_out_channels", [0, 0, 0, 0])) - 1),
        "patch_size": int(denoiser_config.get("patch_size") or 1),  # a transformer's latent patches (SD3: 2)
    }
