"""Issue 16 items 3-4: `launch.py model=tiny_sd3` trains, exports, and the export loads into StableDiffusion3Pipeline
with its FlowMatchLCMScheduler and generates, in plain diffusers and through `python -m lcm_exp.generate`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import FlowMatchLCMScheduler, StableDiffusion3Pipeline
from PIL import Image
from safetensors.torch import load_file

from lcm_exp.generate import main as generate
from lcm_exp.models.sd3_guided import GuidedSD3Transformer2DModel
from tests.export.conftest import python_blocks
from tests.train.runner import launch, record

SD3 = ["model=tiny_sd3", "model.max_sequence_length=16", "validation.num_inference_steps=[2]"]
PROMPT = "a red circle on the left"


def _teacher(run_dir) -> str:
    return record(run_dir)["teacher"]["teacher"]


def _image(pipe, seed=0, **kwargs) -> np.ndarray:
    kwargs = {"guidance_scale": 1.0, **kwargs}
    torch.manual_seed(seed)  # FlowMatchLCMScheduler re-noises from the global RNG in the SD3 pipeline
    return pipe(PROMPT, num_inference_steps=2, height=32, width=32, max_sequence_length=16, output_type="np",
                generator=torch.Generator("cpu").manual_seed(seed), **kwargs).images[0]  # fmt: skip


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, cache_dir):
    run_dir = tmp_path_factory.mktemp("sd3_lora")
    launch(run_dir, cache_dir, *SD3, "adapter=lora", "adapter.rank=4", "trainer.max_train_steps=3", "optim.lr=1e-2")
    return run_dir


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, cache_dir):
    run_dir = tmp_path_factory.mktemp("sd3_full")
    launch(run_dir, cache_dir, *SD3, "adapter=full", "adapter.time_cond_proj_dim=32", "trainer.max_train_steps=2",
           "optim.lr=1e-3")  # fmt: skip
    return run_dir


def test_lora_run_completes_with_the_flow_spec_and_a_flow_lcm_scheduler(lora_run):
    rec = record(lora_run)
    assert rec["status"] == "completed" and rec["metrics"]["steps"] == 3
    config = rec["config"]
    assert config["model"]["family"] == "sd3" and config["guidance"] == {"w_min": 3.0, "w_max": 3.0}
    assert "add_q_proj" in config["adapter"]["target_modules"] and "conv1" not in config["adapter"]["target_modules"]
    assert rec["teacher"]["patch_size"] == 2
    saved = json.loads((lora_run / "model/scheduler/scheduler_config.json").read_text())
    assert saved["_class_name"] == "FlowMatchLCMScheduler" and saved["shift"] == 3.0
    assert list((lora_run / "validation").glob("step-*/2-steps.png"))


def test_lora_file_loads_completely_into_stable_diffusion_3_and_generates(lora_run):
    pipe = StableDiffusion3Pipeline.from_pretrained(_teacher(lora_run))
    pipe.scheduler = FlowMatchLCMScheduler.from_pretrained(lora_run / "model", subfolder="scheduler")
    pipe.set_progress_bar_config(disable=True)
    without = _image(pipe)
    pipe.load_lora_weights(lora_run / "model")
    saved = load_file(lora_run / "model" / "pytorch_lora_weights.safetensors")
    loaded = {n.replace(".default_0", ""): p for n, p in pipe.transformer.named_parameters() if "lora_" in n}
    assert {k.removeprefix("transformer.") for k in saved} == set(loaded), "every LoRA tensor in the file must load"
    for key, tensor in saved.items():
        torch.testing.assert_close(loaded[key.removeprefix("transformer.")].data, tensor.float())
    assert any("attn2" in k for k in saved) and any("ff_context" in k for k in saved)  # SD3.5 layout targeted
    image = _image(pipe)
    assert image.shape == (32, 32, 3) and np.isfinite(image).all() and not np.array_equal(image, without)


def test_card_snippet_runs_in_plain_diffusers(lora_run):
    card = (lora_run / "model" / "README.md").read_text()
    (code,) = python_blocks(card)
    assert "StableDiffusion3Pipeline" in code and "FlowMatchLCMScheduler" in code and "guidance_scale=1.0" in code
    assert "max_sequence_length=16, num_inference_steps=" in code  # the T5 length the student was trained with
    namespace: dict = {}
    exec(code.replace('pipe("a photo of a cat",', 'pipe("a photo of a cat", height=32, width=32,'), namespace)
    assert namespace["image"].size == (32, 32)


def test_generate_cli_matches_plain_diffusers(lora_run, tmp_path):
    generate([str(lora_run), PROMPT, "--seeds", "3", "--steps", "2", "--out", str(tmp_path)])
    settings = json.loads((tmp_path / "generate.json").read_text())
    assert settings["guidance_scale"] == 1.0 and settings["student"]["call_kwargs"] == {"max_sequence_length": 16}
    pipe = StableDiffusion3Pipeline.from_pretrained(_teacher(lora_run))
    pipe.load_lora_weights(lora_run / "model")
    pipe.scheduler = FlowMatchLCMScheduler.from_pretrained(lora_run / "model", subfolder="scheduler")
    pipe.set_progress_bar_config(disable=True)
    torch.manual_seed(3)  # the SD3 pipeline steps FlowMatchLCMScheduler without the generator: its re-noising
    expected = pipe(
        PROMPT,
        num_inference_steps=2,
        guidance_scale=1.0,
        height=32,
        width=32,
        max_sequence_length=16,
        generator=torch.Generator("cpu").manual_seed(3),
    ).images[0]  # draws from the global RNG; fmt: skip
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "p00_s3.png")), np.asarray(expected))


def test_full_student_loads_with_its_w_embedding_and_w_reaches_it(full_run, tmp_path):
    transformer = GuidedSD3Transformer2DModel.from_pretrained(full_run / "model", subfolder="transformer")
    assert transformer.config.guidance_embedding_dim == 32
    pipe = StableDiffusion3Pipeline.from_pretrained(_teacher(full_run), transformer=transformer)
    pipe.scheduler = FlowMatchLCMScheduler.from_pretrained(full_run / "model", subfolder="scheduler")
    pipe.set_progress_bar_config(disable=True)
    w3, w7 = (_image(pipe, **GuidedSD3Transformer2DModel.pipeline_call_kwargs(g)) for g in (4.0, 8.0))
    assert np.isfinite(w3).all() and not np.array_equal(w3, w7), "w conditions the student (no CFG pass)"
    generate([str(full_run), PROMPT, "--w", "3", "--seeds", "0", "--steps", "2", "--out", str(tmp_path)])
    ours = np.asarray(Image.open(tmp_path / "p00_s0.png")).astype(np.float32) / 255
    np.testing.assert_allclose(ours, w3, atol=1 / 255 + 1e-6)  # the PNG's 8-bit rounding
    (code,) = python_blocks((full_run / "model" / "README.md").read_text())
    assert "from lcm_exp.models.sd3_guided import GuidedSD3Transformer2DModel" in code
    assert "joint_attention_kwargs={'guidance_scale': 8.0}" in code


def test_guidance_conditioned_lora_is_refused_before_anything_loads(tmp_path, cache_dir):
    out = launch(tmp_path, cache_dir, *SD3, "adapter=lora", "adapter.guidance_conditioned=true", check=False)
    assert out.returncode == 2
    assert "adapter.guidance_conditioned=true: a LoRA on the sd3 family's transformer has no w embedding" in out.stderr
    assert not (tmp_path / "run.json").exists() and not (tmp_path / "checkpoints").exists()
