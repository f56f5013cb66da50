import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import LCMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline
from omegaconf import OmegaConf

from lcm_exp.config.resolvers import register_resolvers
from lcm_exp.models import tiny
from lcm_exp.models.tiny import MARKER, ensure_tiny_teacher


def _hashes(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("kind", ["sd15", "sdxl"])
def test_build_is_deterministic(kind, tiny_cache, tmp_path):
    first = ensure_tiny_teacher(kind, tiny_cache)
    second = ensure_tiny_teacher(kind, tmp_path)
    assert first != second
    assert _hashes(first) == _hashes(second)
    assert any(name.endswith(".safetensors") for name in _hashes(first))


def test_layout_and_scheduler_config(sd15_teacher, sd15_v_teacher, sdxl_teacher):
    for folder, extra in [(sd15_teacher, []), (sd15_v_teacher, []), (sdxl_teacher, ["text_encoder_2", "tokenizer_2"])]:
        for sub in ["unet", "vae", "text_encoder", "tokenizer", "scheduler", *extra]:
            assert (folder / sub).is_dir(), (folder, sub)
        assert (folder / MARKER).is_file() and (folder / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    index = json.loads((sdxl_teacher / "model_index.json").read_text())
    assert index["text_encoder_2"] == ["transformers", "CLIPTextModelWithProjection"]
    sched = json.loads((sd15_teacher / "scheduler" / "scheduler_config.json").read_text())
    assert {
        k: sched[k]
        for k in ["num_train_timesteps", "beta_schedule", "beta_start", "beta_end", "steps_offset", "prediction_type"]
    } == {
        "num_train_timesteps": 1000,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "steps_offset": 1,
        "prediction_type": "epsilon",
    }
    v_sched = json.loads((sd15_v_teacher / "scheduler" / "scheduler_config.json").read_text())
    assert v_sched["prediction_type"] == "v_prediction"
    unet = json.loads((sdxl_teacher / "unet" / "config.json").read_text())
    assert unet["cross_attention_dim"] == 32 + 64 and unet["addition_embed_type"] == "text_time"
    assert unet["projection_class_embeddings_input_dim"] == 6 * unet["addition_time_embed_dim"] + 48


def test_existing_folder_is_returned_without_building(sd15_teacher, monkeypatch):
    monkeypatch.setattr(tiny, "_build", lambda *a: pytest.fail("rebuilt an existing teacher"))
    assert ensure_tiny_teacher("sd15", sd15_teacher.parent) == sd15_teacher


def test_lost_race_uses_the_winners_folder(sd15_teacher, tmp_path, monkeypatch):
    target = tmp_path / sd15_teacher.name
    real_build = tiny._build

    def build_while_another_process_wins(kind, folder):
        real_build(kind, folder)
        shutil.copytree(sd15_teacher, target)  # the other process renames its folder into place first

    monkeypatch.setattr(tiny, "_build", build_while_another_process_wins)
    assert ensure_tiny_teacher("sd15", tmp_path) == target
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # our temp dir is gone


def test_foreign_folder_and_bad_kind_raise(tmp_path):
    (tmp_path / f"tiny-sd15-v{tiny.RECIPE_VERSION}" / "unet").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="not a complete tiny teacher"):
        ensure_tiny_teacher("sd15", tmp_path)
    with pytest.raises(ValueError, match="sd15, sd15_v, sdxl, sd3"):
        ensure_tiny_teacher("flux", tmp_path)


def _lcm_images(pipe_class, folder, **kwargs):
    pipe = pipe_class.from_pretrained(folder)
    pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(
        "a red circle",
        num_inference_steps=4,
        guidance_scale=1.0,
        height=64,
        width=64,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
        **kwargs,
    )
    return out.images


def test_diffusers_loads_and_runs_tiny_sd15(sd15_teacher):
    images = _lcm_images(StableDiffusionPipeline, sd15_teacher)
    assert images.shape == (1, 64, 64, 3) and np.isfinite(images).all()


def test_diffusers_loads_and_runs_tiny_sdxl(sdxl_teacher):
    images = _lcm_images(StableDiffusionXLPipeline, sdxl_teacher)
    assert images.shape == (1, 64, 64, 3) and np.isfinite(images).all()


def test_resolver_builds_into_cache(tiny_cache, sd15_teacher):
    register_resolvers()
    register_resolvers()  # idempotent
    cfg = OmegaConf.create(
        {"paths": {"cache_dir": str(tiny_cache)}, "model": {"teacher": "${tiny_teacher:sd15,${paths.cache_dir}}"}}
    )
    assert cfg.model.teacher == str(sd15_teacher)


def test_light_modules_do_not_import_torch_or_diffusers(sd15_v_teacher):
    code = (
        "import sys; from lcm_exp.config.resolvers import register_resolvers; register_resolvers(); "
        "from lcm_exp.models import FAMILY_NAMES, FAMILIES, read_scheduler_config; "
        f"info = read_scheduler_config({str(sd15_v_teacher)!r}); "
        "heavy = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]; "
        "print(sorted(FAMILIES), info.num_train_timesteps, info.prediction_type, heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2]
    ).stdout
    assert out.strip() == "['sd15', 'sd3', 'sdxl'] 1000 v_prediction []"
