import hashlib
import json

import pytest
import torch
from diffusers import StableDiffusionPipeline

from lcm_exp.config.schema import ModelConfig
from lcm_exp.toy.build import CLASSIFIER_DIR, MARKER, WORLD_FILE, ensure_toy_teacher, read_toy_world
from lcm_exp.toy.classifier import AttributeClassifier
from tests.toy.conftest import TINY_RECIPE


def _hashes(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != WORLD_FILE}  # fmt: skip


def test_build_is_deterministic(tiny_toy_teacher, tmp_path):
    again = ensure_toy_teacher(tmp_path, seed=0, recipe=TINY_RECIPE)
    assert again != tiny_toy_teacher
    assert _hashes(again) == _hashes(tiny_toy_teacher)
    first, second = (json.loads((d / WORLD_FILE).read_text()) for d in (tiny_toy_teacher, again))
    first.pop("build_seconds"), second.pop("build_seconds")
    assert first == second


def test_other_seed_other_teacher(tiny_toy_teacher, tmp_path):
    other = ensure_toy_teacher(tmp_path, seed=1, recipe=TINY_RECIPE)
    name = "unet/diffusion_pytorch_model.safetensors"
    assert _hashes(other)[name] != _hashes(tiny_toy_teacher)[name]


def test_cached_folder_is_reused(tiny_toy_teacher):
    stamp = (tiny_toy_teacher / MARKER).stat().st_mtime_ns
    assert ensure_toy_teacher(tiny_toy_teacher.parent, seed=0, recipe=TINY_RECIPE) == tiny_toy_teacher
    assert (tiny_toy_teacher / MARKER).stat().st_mtime_ns == stamp


def test_layout_loads_with_diffusers_and_the_family(tiny_toy_teacher):
    from lcm_exp.models.sd15 import SD15Family

    pipe = StableDiffusionPipeline.from_pretrained(tiny_toy_teacher)
    assert pipe.tokenizer.model_max_length == 16
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size
    world = read_toy_world(tiny_toy_teacher)
    assert pipe.vae.config.scaling_factor == pytest.approx(world["vae_scaling_factor"])
    family = SD15Family(ModelConfig(family="sd15", teacher=str(tiny_toy_teacher), resolution=32))
    assert family.schedule.prediction_type == "epsilon" and family.schedule.num_train_timesteps == 1000
    latents = family.encode_images(torch.zeros(2, 3, 32, 32))
    assert latents.shape == (2, 4, 8, 8)
    cond = family.encode_text({"captions": ["a red circle on the left on a white background", ""]})
    assert cond.prompt_embeds.shape == (2, 16, 64)
    AttributeClassifier.load(tiny_toy_teacher / CLASSIFIER_DIR)


def test_posterior_is_nearly_deterministic(tiny_toy_teacher):
    """The loop samples the posterior; the teacher was trained on its means: with std ~1e-3 they agree."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(tiny_toy_teacher, subfolder="vae")
    posterior = vae.encode(torch.rand(2, 3, 32, 32) * 2 - 1).latent_dist
    assert float(posterior.std.max()) < 2e-3


def test_not_a_toy_teacher(tmp_path):
    assert read_toy_world(tmp_path) is None
    assert read_toy_world("some/hub-id") is None
