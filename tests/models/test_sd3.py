"""SD3 family (models/sd3.py) on the tiny SD3.5-layout teacher, against StableDiffusion3Pipeline's own computations."""

import json
import shutil

import pytest
import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline

from lcm_exp.config.errors import ConfigError
from lcm_exp.config.schema import ModelConfig, SD3ModelConfig
from lcm_exp.models.sd3 import SD3Family
from lcm_exp.models.teacher_facts import read_teacher_facts
from lcm_exp.models.tiny_sd3 import VAE_SCALING, VAE_SHIFT

RES = 32  # 4 x 4 latents, 2 x 2 patches
CAPTIONS = ["a red circle", "a blue square on the left"]


def _cfg(teacher, **overrides) -> SD3ModelConfig:
    return SD3ModelConfig(family="sd3", teacher=str(teacher), resolution=RES, **overrides)


@pytest.fixture(scope="module")
def family(sd3_teacher):
    return SD3Family(_cfg(sd3_teacher))


@pytest.fixture(scope="module")
def pipe(sd3_teacher):
    return StableDiffusion3Pipeline.from_pretrained(sd3_teacher)


def test_schedule_components_and_call_kwargs(family, sd3_teacher):
    assert family.schedule.kind == "flow" and family.schedule.prediction_type == "flow"
    assert family.scheduler_config["shift"] == 3.0 and family.denoiser_component == "transformer"
    sched = FlowMatchEulerDiscreteScheduler.from_pretrained(sd3_teacher / "scheduler")
    assert torch.equal(family.schedule.sigmas, sched.sigmas.flip(0))
    assert type(family.denoiser).__name__ == "SD3Transformer2DModel" and len(family.text_encoders) == 3
    assert SD3Family.pipeline_call_kwargs(_cfg(sd3_teacher, max_sequence_length=12)) == {"max_sequence_length": 12}
    for module in [family.denoiser, family.vae, *family.text_encoders]:
        assert not module.training and not any(p.requires_grad for p in module.parameters())


def test_prompt_and_negative_embeddings_are_the_pipelines(family, pipe):
    cond = family.encode_text({"captions": CAPTIONS})
    uncond = family.unconditional(cond)
    assert cond.prompt_embeds.shape == (2, 77 + 256, 96) and cond.pooled_embeds.shape == (2, 16 + 24)
    assert cond.time_ids is None and family.time_ids({}, 2) is None
    with torch.no_grad():
        pe, neg, pooled, neg_pooled = pipe.encode_prompt(CAPTIONS, None, None, do_classifier_free_guidance=True)
    assert torch.equal(cond.prompt_embeds, pe) and torch.equal(cond.pooled_embeds, pooled)
    # "" through all three encoders, encoded once (batch 1, so not bitwise the pipeline's batch of 2)
    torch.testing.assert_close(uncond.prompt_embeds, neg, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(uncond.pooled_embeds, neg_pooled, rtol=1e-5, atol=1e-6)
    assert torch.count_nonzero(cond.prompt_embeds[:, :77, 80:]) == 0  # CLIP 32 + 48 wide, zero-padded to T5's 96


def test_t5_length_follows_the_config(sd3_teacher, pipe):
    fam = SD3Family(_cfg(sd3_teacher, max_sequence_length=12))
    cond = fam.encode_text({"captions": CAPTIONS})
    assert cond.prompt_embeds.shape == (2, 77 + 12, 96)
    with torch.no_grad():
        pe, *_ = pipe.encode_prompt(CAPTIONS, None, None, do_classifier_free_guidance=False, max_sequence_length=12)
    assert torch.equal(cond.prompt_embeds, pe)


def test_teacher_without_t5_gets_the_pipelines_zeros(sd3_teacher, tmp_path, pipe):
    folder = tmp_path / "no_t5"
    shutil.copytree(sd3_teacher, folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["text_encoder_3"] = index["tokenizer_3"] = [None, None]
    (folder / "model_index.json").write_text(json.dumps(index))
    for name in ("text_encoder_3", "tokenizer_3"):
        shutil.rmtree(folder / name)
    fam = SD3Family(_cfg(folder, max_sequence_length=8))
    assert fam.text_encoders[2] is None and fam.tokenizers[2] is None and len(fam.networks()) == 4
    cond = fam.encode_text({"captions": CAPTIONS})
    assert cond.prompt_embeds.shape == (2, 77 + 8, 96) and torch.count_nonzero(cond.prompt_embeds[:, 77:]) == 0
    no_t5 = StableDiffusion3Pipeline.from_pretrained(folder, text_encoder_3=None, tokenizer_3=None)
    with torch.no_grad():
        pe, *_ = no_t5.encode_prompt(CAPTIONS, None, None, do_classifier_free_guidance=False, max_sequence_length=8)
    assert torch.equal(cond.prompt_embeds, pe)


def test_latents_use_the_vaes_scaling_and_shift_factors(family, sd3_teacher):
    assert (family.latent_scale, family.latent_shift) == (VAE_SCALING, VAE_SHIFT)
    pixels = torch.rand(2, 3, RES, RES, generator=torch.Generator().manual_seed(1)) * 2 - 1
    latents = family.encode_images(pixels, torch.Generator().manual_seed(7))
    assert latents.shape == (2, 16, 4, 4)
    vae = AutoencoderKL.from_pretrained(sd3_teacher / "vae")
    with torch.no_grad():
        dist = vae.encode(pixels).latent_dist
    noise = torch.randn(dist.mean.shape, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(latents, (dist.mean + dist.std * noise - VAE_SHIFT) * VAE_SCALING)
    with torch.no_grad():
        decoded = vae.decode(latents / VAE_SCALING + VAE_SHIFT).sample
    torch.testing.assert_close(family.decode(latents), decoded)


def test_decode_is_the_pipelines_image(family, pipe):
    kwargs = dict(num_inference_steps=2, guidance_scale=4.0, height=RES, width=RES)
    latents = pipe("a red circle", output_type="latent", generator=torch.Generator().manual_seed(0), **kwargs).images
    image = pipe("a red circle", output_type="pt", generator=torch.Generator().manual_seed(0), **kwargs).images
    torch.testing.assert_close((family.decode(latents) / 2 + 0.5).clamp(0, 1), image)


def test_denoiser_fn_is_the_pipelines_transformer_call(family):
    cond = family.encode_text({"captions": CAPTIONS})
    x = torch.randn(2, 16, 4, 4, generator=torch.Generator().manual_seed(0))
    t = family.schedule.model_time(torch.tensor([999, 400]))
    with torch.no_grad():
        ours = family.denoiser_fn(family.denoiser)(x, t, cond)
        theirs = family.denoiser(hidden_states=x, timestep=t, encoder_hidden_states=cond.prompt_embeds,
                                 pooled_projections=cond.pooled_embeds).sample  # fmt: skip
    assert torch.equal(ours, theirs) and t.tolist() == [1000.0, pytest.approx(1000 * 3 * 0.401 / (1 + 2 * 0.401))]


def test_pipeline_from_memory_generates(family):
    from diffusers import FlowMatchLCMScheduler

    pipe = family.build_pipeline(family.denoiser, FlowMatchLCMScheduler.from_config(family.scheduler_config))
    out = pipe("a red circle", num_inference_steps=2, guidance_scale=1.0, height=RES, width=RES, output_type="pt",
               **family.pipeline_call_kwargs(family.cfg)).images  # fmt: skip
    assert out.shape == (1, 3, RES, RES) and torch.isfinite(out).all()


def test_teacher_facts_read_the_transformer_folder_and_patch_size(sd3_teacher, tmp_path):
    facts = read_teacher_facts(_cfg(sd3_teacher))
    assert (facts["vae_scale_factor"], facts["patch_size"], facts["num_train_timesteps"]) == (8, 2, 1000)
    folder = tmp_path / "no_transformer"
    shutil.copytree(sd3_teacher, folder)
    shutil.rmtree(folder / "transformer")
    with pytest.raises(ConfigError, match="transformer/config.json"):
        read_teacher_facts(_cfg(folder))
    with pytest.raises(ConfigError, match="has no unet"):  # read as an SD1.5 teacher it lacks a UNet
        read_teacher_facts(ModelConfig(family="sd15", teacher=str(sd3_teacher), resolution=RES))


def test_resolution_must_be_a_multiple_of_vae_factor_times_patch(cache_dir, tmp_path):
    from lcm_exp.config.validate import validate_against_teacher
    from tests.export.conftest import run_config

    validate_against_teacher(run_config(cache_dir, tmp_path, "model=tiny_sd3", "model.resolution=48"))
    cfg = run_config(cache_dir, tmp_path, "model=tiny_sd3", "model.resolution=40")  # a multiple of 8, not of 16
    with pytest.raises(ConfigError, match="model.resolution=40: must be divisible by the VAE factor 8 x the "
                                          "denoiser's patch size 2 = 16"):  # fmt: skip
        validate_against_teacher(cfg)


@pytest.mark.parametrize("backend", ["sdpa", "classic"])
def test_attention_switch_keeps_the_joint_attention(sd3_teacher, backend):
    """diffusers' switch back to SDPA would give joint layers a plain processor that drops the text stream."""
    from diffusers.models.attention_processor import JointAttnProcessor2_0

    from lcm_exp.models.attention import set_attention_backend

    fam = SD3Family(_cfg(sd3_teacher, max_sequence_length=8))
    call, cond = fam.denoiser_fn(fam.denoiser), fam.encode_text({"captions": CAPTIONS})
    x, t = torch.randn(2, 16, 4, 4, generator=torch.Generator().manual_seed(0)), torch.tensor([900.0, 300.0])
    with torch.no_grad():
        before = call(x, t, cond)
        assert set_attention_backend(backend, [fam.denoiser]) == 3  # two joint blocks + SD3.5's dual attention
        after = call(x, t, cond)
    assert all(isinstance(p, JointAttnProcessor2_0) for p in fam.denoiser.attn_processors.values())
    torch.testing.assert_close(after, before)
