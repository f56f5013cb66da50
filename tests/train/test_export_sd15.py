"""Issue 3 item 10: exported students load in plain diffusers pipelines and make a 4-step image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import LCMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from safetensors.torch import load_file

from tests.train.runner import launch, record


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, cache_dir):
    run_dir = tmp_path_factory.mktemp("full")
    launch(run_dir, cache_dir, "model=tiny_sd15", "adapter=full", "trainer.max_train_steps=4")
    return run_dir


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, cache_dir):
    run_dir = tmp_path_factory.mktemp("lora")
    launch(run_dir, cache_dir, "model=tiny_sd15", "adapter=lora", "trainer.max_train_steps=4", "optim.lr=1e-2")
    return run_dir


def _teacher(run_dir) -> str:
    return record(run_dir)["teacher"]["teacher"]


def test_full_student_loads_as_unet_and_runs_in_sd_pipeline(full_run):
    unet = UNet2DConditionModel.from_pretrained(full_run / "model", subfolder="unet")
    assert unet.config.time_cond_proj_dim == 256
    pipe = StableDiffusionPipeline.from_pretrained(_teacher(full_run), unet=unet, safety_checker=None)
    pipe.scheduler = LCMScheduler.from_pretrained(full_run / "model", subfolder="scheduler")
    image = pipe("a red circle", num_inference_steps=4, guidance_scale=8.0, height=32, width=32, output_type="np",
                 generator=torch.Generator().manual_seed(0)).images  # fmt: skip
    assert image.shape == (1, 32, 32, 3) and np.isfinite(image).all()
    card = (full_run / "model" / "README.md").read_text()
    assert "guidance_scale" in card and "w + 1" in card and _teacher(full_run) in card


def test_lora_file_loads_completely_into_the_teacher_pipeline(lora_run):
    pipe = StableDiffusionPipeline.from_pretrained(_teacher(lora_run), safety_checker=None)
    pipe.load_lora_weights(lora_run / "model")
    saved = load_file(lora_run / "model" / "pytorch_lora_weights.safetensors")
    loaded = {n.replace(".default_0", ""): p for n, p in pipe.unet.named_parameters() if "lora_" in n}
    assert {k.removeprefix("unet.") for k in saved} == set(loaded), "every LoRA tensor in the file must load"
    for key, tensor in saved.items():
        torch.testing.assert_close(loaded[key.removeprefix("unet.")].data, tensor.to(torch.float32))
    assert any(t.abs().sum() > 0 for k, t in saved.items() if "lora_B" in k), "LoRA B weights were trained"
    pipe.scheduler = LCMScheduler.from_pretrained(lora_run / "model", subfolder="scheduler")
    image = pipe("a red circle", num_inference_steps=4, guidance_scale=1.0, height=32, width=32,
                 output_type="np").images  # fmt: skip
    assert image.shape == (1, 32, 32, 3) and np.isfinite(image).all()


@pytest.mark.parametrize("run", ["full_run", "lora_run"])
def test_run_writes_validation_grids_metrics_and_completed_record(run, request):
    run_dir = request.getfixturevalue(run)
    rec = record(run_dir)
    assert rec["status"] == "completed" and rec["metrics"]["steps"] == 4
    assert list((run_dir / "validation").glob("step-*/1-steps.png"))
    assert (run_dir / "checkpoints" / "checkpoint-4" / "COMPLETE").exists()


def test_guidance_conditioned_lora_learns_w_and_exports_its_cond_proj(tmp_path, cache_dir):
    from lcm_exp.adapters.lora import COND_PROJ_FILE, load_guidance_cond_proj

    launch(tmp_path, cache_dir, "adapter=lora", "adapter.rank=4", "adapter.guidance_conditioned=true",
           "adapter.time_cond_proj_dim=32", "trainer.max_train_steps=3", "optim.lr=1e-2")  # fmt: skip
    model_dir = tmp_path / "model"
    assert (model_dir / COND_PROJ_FILE).exists()
    pipe = StableDiffusionPipeline.from_pretrained(_teacher(tmp_path), safety_checker=None)
    pipe.load_lora_weights(model_dir)
    assert load_guidance_cond_proj(pipe.unet, model_dir)
    weight = pipe.unet.time_embedding.cond_proj.weight
    assert pipe.unet.config.time_cond_proj_dim == 32 and weight.abs().sum() > 0  # trained away from its zero init
    pipe.scheduler = LCMScheduler.from_pretrained(model_dir, subfolder="scheduler")
    images = [pipe("a red circle", num_inference_steps=2, guidance_scale=g, height=32, width=32, output_type="np",
                   generator=torch.Generator().manual_seed(0)).images for g in (3.0, 9.0)]  # fmt: skip
    assert np.isfinite(images[0]).all() and not np.allclose(images[0], images[1])  # w conditions the student
