"""What the config validator needs from a teacher, read from its json configs only (no weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lcm_exp.config.errors import ConfigError

_REQUIRED_SUBFOLDERS = ("scheduler", "unet", "vae")


def read_teacher_facts(model_cfg) -> dict[str, Any]:
    """num_train_timesteps, prediction_type and the VAE's downsampling factor of ``model.teacher``.

    A local folder is checked for the components a teacher must have, so a broken folder fails here, named,
    instead of deep inside from_pretrained.
    """
    from diffusers import AutoencoderKL, DDPMScheduler

    teacher = model_cfg.teacher
    if Path(teacher).exists():
        missing = [c for c in _REQUIRED_SUBFOLDERS if not (Path(teacher) / c).is_dir()]
        if not (Path(teacher) / "model_index.json").is_file():
            missing.insert(0, "model_index.json")
        if missing:
            raise ConfigError([f"model.teacher={teacher!r}: teacher folder lacks {', '.join(missing)}"])
    try:
        sched = DDPMScheduler.load_config(teacher, subfolder="scheduler", revision=model_cfg.revision)
        vae_src, vae_sub = (model_cfg.vae, None) if model_cfg.vae else (teacher, "vae")
        vae = AutoencoderKL.load_config(vae_src, subfolder=vae_sub, revision=None if model_cfg.vae else model_cfg.revision)
    except (OSError, ValueError) as e:
        raise ConfigError([f"model.teacher={teacher!r} (model.vae={model_cfg.vae!r}): cannot read its configs: {e}"]) from e
    return {
        "num_train_timesteps": int(sched.get("num_train_timesteps", 1000)),
        "prediction_type": sched.get("prediction_type", "epsilon"),
        "vae_scale_factor": 2 ** (len(vae.get("block_out_channels", [0, 0, 0, 0])) - 1),
    }
