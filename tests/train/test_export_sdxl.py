"""Issue 4: the same loop distills the tiny SDXL teacher; exports load in StableDiffusionXLPipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import LCMScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

from tests.train.runner import launch, record

ARGS = ["model=tiny_sdxl", "trainer.max_train_steps=2"]


def _image(pipe, model_dir, guidance_scale):
    pipe.scheduler = LCMScheduler.from_pretrained(model_dir, subfolder="scheduler")
    return pipe("a red circle", num_inference_steps=4, guidance_scale=guidance_scale, height=32, width=32,
                output_type="np", generator=torch.Generator().manual_seed(0)).images  # fmt: skip


@pytest.mark.parametrize("precision", ["no", pytest.param("bf16", marks=pytest.mark.slow)])
def test_sdxl_full_student_exports_a_unet_for_the_xl_pipeline(tmp_path, cache_dir, precision):
    launch(tmp_path, cache_dir, *ARGS, "adapter=full", f"trainer.mixed_precision={precision}")
    rec = record(tmp_path)
    assert rec["status"] == "completed" and np.isfinite(rec["metrics"]["final_loss"])
    unet = UNet2DConditionModel.from_pretrained(tmp_path / "model", subfolder="unet")
    pipe = StableDiffusionXLPipeline.from_pretrained(rec["teacher"]["teacher"], unet=unet)
    image = _image(pipe, tmp_path / "model", guidance_scale=8.0)
    assert image.shape == (1, 32, 32, 3) and np.isfinite(image).all()


@pytest.mark.parametrize("precision", ["no", pytest.param("bf16", marks=pytest.mark.slow)])
def test_sdxl_lora_student_loads_with_load_lora_weights(tmp_path, cache_dir, precision):
    launch(tmp_path, cache_dir, *ARGS, "adapter=lora", "adapter.rank=4", f"trainer.mixed_precision={precision}")
    rec = record(tmp_path)
    pipe = StableDiffusionXLPipeline.from_pretrained(rec["teacher"]["teacher"])
    pipe.load_lora_weights(tmp_path / "model")
    assert any("lora_" in n for n, _ in pipe.unet.named_parameters())
    image = _image(pipe, tmp_path / "model", guidance_scale=1.0)
    assert image.shape == (1, 32, 32, 3) and np.isfinite(image).all()


def test_loop_objective_and_adapters_never_ask_for_the_family():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "lcm_exp"
    shared = [*root.glob("train/*.py"), *root.glob("objective/*.py"), *root.glob("adapters/*.py")]
    offenders = [str(p) for p in shared if "sdxl" in p.read_text().lower() or "sd15" in p.read_text().lower()]
    assert not offenders
