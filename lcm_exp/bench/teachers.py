"""Benchmark teachers: real SD1.5 / SDXL layouts at chosen sizes, built from configs with random weights.

A preset folder is the diffusers layout without weight files (model_index.json, scheduler, tokenizers, and the
config.json of each model). ``random_init_family`` loads it through the real family code; only the weight loading
of UNet, VAE and text encoders is replaced by a seeded random init on the family's device, so a 2.6 B-parameter
SDXL UNet costs seconds instead of a 10 GB download. Speed is independent of the weights' values.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

PRESETS = ("cpu_small", "sd15", "sdxl")
WEIGHTED = ("unet", "vae", "text_encoder", "text_encoder_2")
_WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "model.safetensors", "diffusion_pytorch_model.bin")
_VERSION = 1

_SCHEDULER = {
    "_class_name": "DDPMScheduler", "num_train_timesteps": 1000, "beta_schedule": "scaled_linear",
    "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1, "prediction_type": "epsilon",
    "clip_sample": False, "set_alpha_to_one": False,
}  # fmt: skip


def _sd_unet(widths: tuple[int, ...], cross_attention_dim: int, sample_size: int) -> dict[str, Any]:
    """SD1.5 layout: cross-attention in every level but the deepest, two resnets per level, 8 heads."""
    n = len(widths)
    return {
        "_class_name": "UNet2DConditionModel",
        "sample_size": sample_size, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
        "block_out_channels": list(widths),
        "down_block_types": ["CrossAttnDownBlock2D"] * (n - 1) + ["DownBlock2D"],
        "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * (n - 1),
        "attention_head_dim": 8, "cross_attention_dim": cross_attention_dim, "norm_num_groups": 32,
    }  # fmt: skip


def _sdxl_unet() -> dict[str, Any]:
    return {
        "_class_name": "UNet2DConditionModel",
        "sample_size": 128, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
        "block_out_channels": [320, 640, 1280],
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        "transformer_layers_per_block": [1, 2, 10], "attention_head_dim": [5, 10, 20],
        "cross_attention_dim": 2048, "use_linear_projection": True, "addition_embed_type": "text_time",
        "addition_time_embed_dim": 256, "projection_class_embeddings_input_dim": 2816, "norm_num_groups": 32,
    }  # fmt: skip


def _vae(widths: tuple[int, ...], scaling_factor: float, sample_size: int) -> dict[str, Any]:
    return {
        "_class_name": "AutoencoderKL",
        "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2,
        "block_out_channels": list(widths), "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4, "norm_num_groups": 32, "sample_size": sample_size,
        "scaling_factor": scaling_factor, "force_upcast": True,
    }  # fmt: skip


def _clip(hidden: int, layers: int, heads: int, projection: int, act: str = "quick_gelu") -> dict[str, Any]:
    return {
        "hidden_size": hidden,
        "intermediate_size": 4 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "projection_dim": projection,
        "hidden_act": act,
        "vocab_size": 49408,
    }


def preset_spec(name: str) -> dict[str, Any]:
    """The preset's pipeline class, model configs and text encoder configs (CLIP fields only)."""
    if name == "cpu_small":  # SD1.5 layout at 1/5 width: UNet 18 M parameters, as lcd-facts section 2 measured
        return {
            "pipeline": "StableDiffusionPipeline",
            "unet": _sd_unet((64, 128, 256), 256, 16),
            "vae": _vae((32, 64, 128, 128), 0.18215, 128),
            "text_encoders": {"text_encoder": ("CLIPTextModel", _clip(256, 4, 4, 256))},
        }
    if name == "sd15":  # the real SD1.5 sizes: UNet 860 M, VAE 84 M, CLIP ViT-L/14 text encoder
        return {
            "pipeline": "StableDiffusionPipeline",
            "unet": _sd_unet((320, 640, 1280, 1280), 768, 64),
            "vae": _vae((128, 256, 512, 512), 0.18215, 512),
            "text_encoders": {"text_encoder": ("CLIPTextModel", _clip(768, 12, 12, 768))},
        }
    if name == "sdxl":  # the real SDXL base sizes: UNet 2.6 B, both text encoders (CLIP-L, OpenCLIP bigG)
        return {
            "pipeline": "StableDiffusionXLPipeline",
            "unet": _sdxl_unet(),
            "vae": _vae((128, 256, 512, 512), 0.13025, 1024),
            "text_encoders": {
                "text_encoder": ("CLIPTextModel", _clip(768, 12, 12, 768)),
                "text_encoder_2": ("CLIPTextModelWithProjection", _clip(1280, 32, 20, 1280, "gelu")),
            },
        }
    raise ValueError(f"unknown bench teacher preset {name!r}; choose one of {list(PRESETS)}")


def ensure_preset_teacher(name: str, cache_dir: str | Path) -> Path:
    """``<cache_dir>/bench-teacher-<name>-v<N>``: the preset's folder without weights, written atomically."""
    spec = preset_spec(name)
    target = Path(cache_dir).expanduser().resolve() / f"bench-teacher-{name}-v{_VERSION}"
    if (target / "model_index.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _write(spec, tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "model_index.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _write(spec: dict[str, Any], folder: Path) -> None:
    from lcm_exp.models.tiny import WORDS
    from lcm_exp.models.tokenizer import build_clip_tokenizer

    tokenizer = build_clip_tokenizer(WORDS)
    index: dict[str, Any] = {
        "_class_name": spec["pipeline"],
        "_diffusers_version": "0.42.1",
        "scheduler": ["diffusers", "DDPMScheduler"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    if spec["pipeline"] == "StableDiffusionXLPipeline":
        index["force_zeros_for_empty_prompt"] = True
    for component, config in (("unet", spec["unet"]), ("vae", spec["vae"]), ("scheduler", _SCHEDULER)):
        (folder / component).mkdir()
        name = "scheduler_config.json" if component == "scheduler" else "config.json"
        (folder / component / name).write_text(json.dumps(config, indent=1))
    for i, (encoder, (cls, clip)) in enumerate(spec["text_encoders"].items()):
        tok_name = "tokenizer" if i == 0 else f"tokenizer_{i + 1}"
        tokenizer.save_pretrained(folder / tok_name)
        index[tok_name] = ["transformers", "CLIPTokenizer"]
        index[encoder] = ["transformers", cls]
        config = {
            **clip,
            "architectures": [cls],
            "max_position_embeddings": tokenizer.model_max_length,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            "model_type": "clip_text_model",
        }
        (folder / encoder).mkdir()
        (folder / encoder / "config.json").write_text(json.dumps(config, indent=1))
    (folder / "model_index.json").write_text(json.dumps(index, indent=1))


def has_weights(folder: Path) -> bool:
    return any((folder / f).is_file() for f in _WEIGHT_FILES)


def random_init_family(family_cls: type) -> type:
    """A subclass of ``family_cls`` that builds weightless components from their config.json with seeded random
    weights (same weights on every call for a component, so the full adapter's fresh fp32 UNet equals the teacher)."""

    class RandomInit(family_cls):
        def _load(self, component: str, cls: type | None = None, **kwargs: Any) -> Any:
            folder = Path(self.teacher).expanduser() / component
            if component not in WEIGHTED or not folder.is_dir() or has_weights(folder):
                return super()._load(component, cls, **kwargs)
            if cls is None:
                import importlib

                library, name = self.model_index[component]
                cls = getattr(importlib.import_module(library), name)
            return _random_model(cls, folder, component, self.device, kwargs.get("torch_dtype"))

    RandomInit.__name__ = f"RandomInit{family_cls.__name__}"
    return RandomInit


def _random_model(cls: type, folder: Path, component: str, device: torch.device, dtype: torch.dtype | None):
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.device(device):
        torch.manual_seed(WEIGHTED.index(component))
        if hasattr(cls, "load_config"):  # diffusers
            model = cls.from_config(cls.load_config(folder))
        else:  # transformers
            model = cls(cls.config_class.from_pretrained(folder))
    return model.to(dtype) if dtype not in (None, torch.float32) else model
