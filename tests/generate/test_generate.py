"""python -m lcm_exp.generate: the right teacher, the student in it, the LCMScheduler, and the guidance convention
(diffusers guidance_scale = w + 1), pinned against plain diffusers pipelines built by hand."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
import torch
from diffusers import LCMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from PIL import Image

from lcm_exp.generate import load_pipeline, locate_student, main, resolve_guidance
from tests.train.runner import record

PROMPT = "a red circle on a blue background"


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def teacher_of(run_dir) -> str:
    return record(run_dir)["teacher"]["teacher"]


def plain_image(pipe, guidance_scale: float, seed: int, steps: int = 2, size: int | None = 32) -> np.ndarray:
    generator = torch.Generator("cpu").manual_seed(seed)
    image = pipe(PROMPT, num_inference_steps=steps, guidance_scale=guidance_scale, height=size, width=size,
                 generator=generator).images[0]  # fmt: skip
    return np.asarray(image)


def test_run_dir_gives_pngs_grid_and_settings(full_run, tmp_path):
    out = tmp_path / "out"
    paths = main([str(full_run), PROMPT, "a green square", "--seeds", "0", "1", "--steps", "2", "--out", str(out)])
    assert [p.name for p in paths] == ["p00_s0.png", "p00_s1.png", "p01_s0.png", "p01_s1.png"]
    assert {Image.open(p).size for p in paths} == {(32, 32)}, "the training resolution by default"
    assert Image.open(out / "grid.png").size == (64, 64), "columns: seeds, rows: prompts"
    grid = pixels(out / "grid.png")
    np.testing.assert_array_equal(grid[32:, :32], pixels(out / "p01_s0.png"))
    assert not np.array_equal(pixels(paths[0]), pixels(paths[1])), "seeds differ"
    settings = json.loads((out / "generate.json").read_text())
    assert settings["guidance_scale"] == 8.0 and settings["w"] == 7.0, "full default: recommended 8.0 (w = 7)"
    assert settings["student"]["adapter"] == "full" and settings["student"]["teacher"] == teacher_of(full_run)


def test_full_student_and_w_convention_match_plain_diffusers(full_run, tmp_path):
    """--w 3 is guidance_scale 4, the student's UNet is the one exported, and the scheduler is the saved LCM one."""
    main([str(full_run), PROMPT, "--w", "3", "--seeds", "5", "--steps", "2", "--out", str(tmp_path)])
    ours = pixels(tmp_path / "p00_s5.png")
    unet = UNet2DConditionModel.from_pretrained(full_run / "model", subfolder="unet")
    pipe = StableDiffusionPipeline.from_pretrained(teacher_of(full_run), unet=unet)
    pipe.scheduler = LCMScheduler.from_pretrained(full_run / "model", subfolder="scheduler")
    pipe.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(ours, plain_image(pipe, guidance_scale=4.0, seed=5))
    assert not np.array_equal(ours, plain_image(pipe, guidance_scale=8.0, seed=5)), "w reaches the student"


def test_lora_student_is_loaded_and_runs_without_cfg(lora_run, tmp_path):
    main([str(lora_run), PROMPT, "--seeds", "2", "--steps", "2", "--out", str(tmp_path)])
    ours = pixels(tmp_path / "p00_s2.png")
    assert json.loads((tmp_path / "generate.json").read_text())["guidance_scale"] == 1.0
    pipe = StableDiffusionPipeline.from_pretrained(teacher_of(lora_run))
    pipe.scheduler = LCMScheduler.from_pretrained(lora_run / "model", subfolder="scheduler")
    pipe.set_progress_bar_config(disable=True)
    without_lora = plain_image(pipe, guidance_scale=1.0, seed=2)
    pipe.load_lora_weights(lora_run / "model")
    np.testing.assert_array_equal(ours, plain_image(pipe, guidance_scale=1.0, seed=2))
    assert not np.array_equal(ours, without_lora), "the LoRA weights are in"


def test_bare_model_folder_needs_a_teacher(full_run, tmp_path, monkeypatch, capsys):
    bare = tmp_path / "downloaded"
    shutil.copytree(full_run / "model", bare)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main([str(bare), PROMPT])
    assert "pass --teacher" in capsys.readouterr().err
    paths = main([str(bare), PROMPT, "--teacher", teacher_of(full_run), "--steps", "1"])
    assert paths == [tmp_path / "samples" / "p00_s0.png"]
    assert Image.open(paths[0]).size == (64, 64), "no run record: the pipeline's default size"
    card = (
        (bare / "README.md")
        .read_text()
        .replace("library_name: diffusers\n", f"library_name: diffusers\nbase_model: {teacher_of(full_run)}\n")
    )
    (bare / "README.md").write_text(card)
    assert locate_student(bare).teacher == teacher_of(full_run), "the card's base_model names the teacher"


def test_fp16_runs_use_the_fp16_variant(full_run, tmp_path):
    only_fp16 = tmp_path / "model"
    shutil.copytree(full_run / "model", only_fp16)
    (only_fp16 / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    student = locate_student(only_fp16, teacher=teacher_of(full_run))
    pipe = load_pipeline(student, dtype=torch.float16)
    assert pipe.unet.dtype == torch.float16
    with pytest.raises(OSError):
        load_pipeline(student, dtype=torch.float32)  # proves the fp16 run read the variant file, not the fp32 one


def test_guidance_resolution(full_run, lora_run, caplog):
    full, lora = locate_student(full_run), locate_student(lora_run)
    assert full.w_range == (5.0, 15.0) and full.adapter == "full" and lora.adapter == "lora"
    assert resolve_guidance(full) == 8.0 and resolve_guidance(lora) == 1.0
    assert resolve_guidance(full, w=6.0) == 7.0 and resolve_guidance(full, guidance_scale=7.0) == 7.0
    with pytest.raises(ValueError, match="not both"):
        resolve_guidance(full, guidance_scale=7.0, w=6.0)
    with caplog.at_level(logging.WARNING):
        resolve_guidance(full, w=20.0)
    assert "outside the trained range [5, 15]" in caplog.text
