"""Shared loading (family.py) and the SD1.5 family, against independent computations on the tiny teachers."""

import json
import shutil

import pytest
import torch
from diffusers import AutoencoderKL, LCMScheduler, StableDiffusionPipeline
from transformers import CLIPTextModel, CLIPTokenizer

from lcm_exp.models import FAMILIES, MissingComponentError, get_family, read_scheduler_config
from lcm_exp.models.sd15 import SD15Family
from lcm_exp.models.sdxl import SDXLFamily


def _reference_text(folder, captions):
    tok = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    enc = CLIPTextModel.from_pretrained(folder / "text_encoder")
    ids = tok(captions, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        return enc(ids).last_hidden_state


def test_registry():
    from lcm_exp.models.sd3 import SD3Family

    assert dict(FAMILIES) == {"sd15": SD15Family, "sdxl": SDXLFamily, "sd3": SD3Family}
    assert get_family("sdxl") is SDXLFamily
    with pytest.raises(ValueError, match="'flux'.*valid: sd15, sdxl, sd3"):
        get_family("flux")


def test_read_scheduler_config_needs_no_weights(sd15_teacher, sd15_v_teacher, tmp_path):
    assert read_scheduler_config(sd15_teacher).prediction_type == "epsilon"
    (tmp_path / "scheduler").mkdir()
    shutil.copy(sd15_v_teacher / "scheduler" / "scheduler_config.json", tmp_path / "scheduler")
    info = read_scheduler_config(tmp_path)  # a folder with nothing but the scheduler config
    assert (info.num_train_timesteps, info.prediction_type) == (1000, "v_prediction")
    with pytest.raises(MissingComponentError, match="no such folder"):
        read_scheduler_config(tmp_path / "elsewhere")
    with pytest.raises(MissingComponentError, match="no-such-org/no-such-model"):
        read_scheduler_config("no-such-org/no-such-model")  # a hub id, offline


def test_schedule(sd15_family, sd15_v_teacher, sd15_cfg):
    fam = sd15_family
    assert (fam.schedule.prediction_type, fam.schedule.num_train_timesteps) == ("epsilon", 1000)
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2  # scaled_linear
    assert fam.schedule.alphas_cumprod.dtype == torch.float64
    torch.testing.assert_close(fam.schedule.alphas_cumprod, torch.cumprod(1 - betas, 0), rtol=1e-5, atol=1e-7)
    assert abs(fam.schedule.alphas_cumprod[999].item() - 0.004660) < 1e-5  # SD1.5's last alpha_bar
    assert SD15Family(sd15_cfg(sd15_v_teacher)).schedule.prediction_type == "v_prediction"


def test_sd15_cond_and_uncond(sd15_family, sd15_teacher):
    captions = ["a red circle", "zebra on the beach", ""]
    cond = sd15_family.encode_text({"captions": captions})
    assert cond.prompt_embeds.shape == (3, 77, 32) and cond.pooled_embeds is None and cond.time_ids is None
    torch.testing.assert_close(cond.prompt_embeds, _reference_text(sd15_teacher, captions))
    uncond = sd15_family.unconditional(cond[:2])
    assert uncond.prompt_embeds.shape == (2, 77, 32) and uncond.time_ids is None
    for row in uncond.prompt_embeds:
        torch.testing.assert_close(row, cond.prompt_embeds[2])  # == encoding ""
    half = sd15_family.unconditional(cond.to(torch.bfloat16))
    assert half.prompt_embeds.dtype == torch.bfloat16


def test_sd15_zeros_uncond(sd15_teacher, sd15_cfg):
    fam = SD15Family(sd15_cfg(sd15_teacher, uncond="zeros"))
    cond = fam.encode_text({"captions": ["a red circle"]})
    assert torch.count_nonzero(fam.unconditional(cond).prompt_embeds) == 0


def test_encode_images_samples_the_posterior(sd15_family, sd15_teacher):
    pixels = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    latents = sd15_family.encode_images(pixels, torch.Generator().manual_seed(7))
    assert latents.shape == (2, 4, 8, 8) and latents.dtype == torch.float32
    vae = AutoencoderKL.from_pretrained(sd15_teacher / "vae")
    with torch.no_grad():
        dist = vae.encode(pixels).latent_dist
    noise = torch.randn(dist.mean.shape, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(latents, (dist.mean + dist.std * noise) * 0.18215)
    assert not torch.allclose(latents, dist.mean * 0.18215)  # a sample, not the mean


def test_frozen_teacher_and_fresh_unet(sd15_family):
    fam = sd15_family
    for module in [fam.denoiser, fam.vae, *fam.text_encoders]:
        assert not module.training and not any(p.requires_grad for p in module.parameters())
    fresh = fam.load_denoiser()
    assert fresh is not fam.denoiser and all(p.requires_grad for p in fresh.parameters())
    for (name, a), b in zip(fresh.state_dict().items(), fam.denoiser.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_dtypes_follow_config(sd15_teacher, sd15_cfg):
    fam = SD15Family(sd15_cfg(sd15_teacher, vae_dtype="bf16"), device="cpu", weight_dtype="bf16")
    assert fam.denoiser.dtype == fam.text_encoders[0].dtype == fam.vae.dtype == torch.bfloat16
    assert fam.encode_text({"captions": ["a red circle"]}).prompt_embeds.dtype == torch.bfloat16
    assert fam.encode_images(torch.zeros(1, 3, 64, 64)).dtype == torch.float32


def test_vae_override(sd15_teacher, sd15_cfg):
    fam = SD15Family(sd15_cfg(sd15_teacher, vae=str(sd15_teacher / "vae"), uncond="zeros"))
    assert isinstance(fam.vae, AutoencoderKL)
    with pytest.raises(MissingComponentError, match="model.vae"):
        SD15Family(sd15_cfg(sd15_teacher, vae=str(sd15_teacher / "nothing")))


def test_bad_config_values(sd15_teacher, sd15_cfg):
    with pytest.raises(ValueError, match="model.uncond"):
        SD15Family(sd15_cfg(sd15_teacher, uncond="nothing"))
    with pytest.raises(ValueError, match="model.vae_dtype"):
        SD15Family(sd15_cfg(sd15_teacher, vae_dtype="fp8"))


@pytest.mark.parametrize("component", ["text_encoder", "unet", "scheduler"])
def test_missing_component_is_named(sd15_teacher, tmp_path, component, sd15_cfg):
    broken = tmp_path / "teacher"
    shutil.copytree(sd15_teacher, broken)
    shutil.rmtree(broken / component)
    with pytest.raises(MissingComponentError, match=f"{broken}.*{component}"):
        SD15Family(sd15_cfg(broken))


def test_hub_id_goes_through_from_pretrained(sd15_cfg):
    with pytest.raises(MissingComponentError, match="no-such-org/no-such-model"):
        SD15Family(sd15_cfg("no-such-org/no-such-model"))


def test_sd15_pipeline_from_memory(sd15_family):
    pipe = sd15_family.build_pipeline(sd15_family.denoiser, LCMScheduler.from_config(sd15_family.scheduler_config))
    assert isinstance(pipe, StableDiffusionPipeline) and pipe.safety_checker is None
    assert pipe.vae is sd15_family.vae and pipe.text_encoder is sd15_family.text_encoders[0]
    pipe.set_progress_bar_config(disable=True)
    images = pipe(
        "a red circle", num_inference_steps=2, guidance_scale=1.0, height=64, width=64, output_type="np"
    ).images
    assert images.shape == (1, 64, 64, 3) and torch.isfinite(torch.from_numpy(images)).all()


def test_null_model_index_entry_is_named(sd15_teacher, tmp_path, sd15_cfg):
    broken = tmp_path / "teacher"
    shutil.copytree(sd15_teacher, broken)
    index = json.loads((broken / "model_index.json").read_text())
    index["tokenizer"] = [None, None]
    (broken / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(MissingComponentError, match="no component 'tokenizer' in model_index.json"):
        SD15Family(sd15_cfg(broken))
