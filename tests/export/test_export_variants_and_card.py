"""Export: the fp16 variant beside fp32 (what the seed's inference snippet loads), and a model card that names the
teacher, the w convention and the recommended steps and guidance per adapter, with a snippet that runs."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml
from diffusers import UNet2DConditionModel
from safetensors.torch import load_file

from lcm_exp.config.errors import ConfigError
from lcm_exp.config.validate import validate_config
from lcm_exp.train.export import export_model, model_card
from tests.config.compose import compose_config
from tests.export.conftest import python_blocks

FP16_FILE = "diffusion_pytorch_model.fp16.safetensors"
FP32_FILE = "diffusion_pytorch_model.safetensors"


def front_matter(card: str) -> dict:
    _, meta, _ = card.split("---", 2)
    return yaml.safe_load(meta)


def test_fp16_variant_is_the_exported_unet_in_half_precision(make):
    cfg, family, adapter, run_dir = make("model=tiny_sd15", "adapter=full", "export=fp16")
    with torch.no_grad():  # give the EMA target weights of its own, so we see which weights are exported
        for p in adapter.target.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    before = {k: v.clone() for k, v in adapter.target.state_dict().items()}
    model_dir = export_model(cfg, family, adapter, run_dir)

    assert sorted(os.listdir(model_dir / "unet")) == ["config.json", FP16_FILE, FP32_FILE]
    half = UNet2DConditionModel.from_pretrained(model_dir, subfolder="unet", variant="fp16", torch_dtype=torch.float16)
    full = UNet2DConditionModel.from_pretrained(model_dir, subfolder="unet")
    assert half.dtype == torch.float16 and full.dtype == torch.float32
    assert half.config.time_cond_proj_dim == full.config.time_cond_proj_dim == 256
    stored = load_file(model_dir / "unet" / FP16_FILE)
    assert {t.dtype for t in stored.values()} == {torch.float16}
    for name, value in before.items():
        assert torch.equal(full.state_dict()[name], value), name
        assert torch.equal(stored[name], value.to(torch.float16)), name  # an independent cast of the same weights
    for name, value in adapter.target.state_dict().items():  # the live weights were not touched by the cast
        assert value.dtype == torch.float32 and torch.equal(value, before[name])


def test_full_card_names_teacher_convention_steps_guidance_and_variant(make):
    cfg, family, adapter, run_dir = make("model=tiny_sd15", "adapter=full", "export=fp16")
    card = (export_model(cfg, family, adapter, run_dir) / "README.md").read_text()
    teacher = cfg.model.teacher
    assert f"student of `{teacher}`" in card
    assert "diffusers' `guidance_scale` is w + 1" in card
    assert "w in [5.0, 15.0], i.e. diffusers guidance_scale in [6.0, 16.0]" in card
    assert "2-8 steps (4 is a good default), `guidance_scale=8.0`" in card
    assert 'variant="fp16", torch_dtype=torch.float16' in card and "fp16 variant" in card
    meta = front_matter(card)
    assert meta["library_name"] == "diffusers" and "base_model" not in meta, "a local teacher is no hub base_model"
    hub_cfg = replace(cfg, model=replace(cfg.model, teacher="stable-diffusion-v1-5/stable-diffusion-v1-5"))
    hub_card = model_card(hub_cfg, family, adapter, "LCMScheduler", "me/lcm", ["unet/"])
    assert front_matter(hub_card)["base_model"] == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert 'model_id = "me/lcm"' in hub_card


@pytest.mark.parametrize(("model", "adapter", "pipeline", "guidance"), [
    ("tiny_sd15", "full", "StableDiffusionPipeline", 8.0),
    ("tiny_sd15", "lora", "StableDiffusionPipeline", 1.0),
    ("tiny_sdxl", "lora", "StableDiffusionXLPipeline", 1.0),
    ("tiny_sd15", "lora adapter.guidance_conditioned=true", "StableDiffusionPipeline", 8.0),
])  # fmt: skip
def test_card_snippet_runs_as_written(make, tmp_path, monkeypatch, model, adapter, pipeline, guidance):
    adapter, *extra = adapter.split()
    cfg, family, student, run_dir = make(f"model={model}", f"adapter={adapter}", *extra)
    card = (export_model(cfg, family, student, run_dir) / "README.md").read_text()
    assert f"`guidance_scale={guidance}`" in card and f"{adapter} student" in card
    (snippet,) = python_blocks(card)
    assert ("load_guidance_cond_proj(pipe.unet, model_id)" in snippet) == bool(extra)
    assert f"from diffusers import {pipeline}, LCMScheduler" in snippet
    assert f'model_id = "{run_dir.resolve() / "model"}"' in snippet
    namespace: dict = {}
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "model-card-snippet", "exec"), namespace)
    if extra:  # the w embedding is in the UNet the snippet ran
        assert namespace["pipe"].unet.config.time_cond_proj_dim == cfg.adapter.time_cond_proj_dim
    pixels = np.asarray(namespace["image"])
    assert pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.std() > 0


@pytest.mark.parametrize(("loss", "stated"), [
    ("loss=pseudo_huber", "pseudo_huber (scale=0.00054)"),
    ("loss.huber_c=0.01", "huber (huber_c=0.01)"),
    ("loss=l2", "| loss | l2 |"),
])  # fmt: skip
def test_card_states_every_loss_and_objective_parameter(make, loss, stated):
    cfg, family, adapter, run_dir = make("model=tiny_sd15", "adapter=lora", loss)
    card = model_card(cfg, family, adapter, "LCMScheduler", "x", ["pytorch_lora_weights.safetensors"])
    assert stated in card
    assert "lcd (num_ddim_timesteps=50, timestep_scaling_factor=10.0, sigma_data=0.5)" in card


def test_card_points_at_the_hub_repo_when_the_run_uploads(make):
    cfg, family, adapter, run_dir = make("model=tiny_sd15", "adapter=lora")
    cfg = replace(cfg, export=replace(cfg.export, push_to_hub=True, hub_model_id="me/lcm-lora"))
    card = (export_model(cfg, family, adapter, run_dir) / "README.md").read_text()
    assert 'model_id = "me/lcm-lora"' in card and str(run_dir) not in card.split("```python")[1]


def test_lora_has_no_fp16_variant(make, tmp_path):
    cfg, family, adapter, _ = make("model=tiny_sd15", "adapter=lora")
    with pytest.raises(ValueError, match="no fp16 variant"):
        adapter.export(tmp_path, family.pipeline_class, fp16_variant=True)
    with pytest.raises(ConfigError, match="export.fp16_variant=true: only the full UNet"):
        validate_config(compose_config(["adapter=lora", "export=fp16"]))
