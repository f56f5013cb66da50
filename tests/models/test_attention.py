"""Attention backend switch (sdpa default, xformers refused clearly when it cannot run) and VAE slicing/tiling."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor, AttnProcessor2_0

from lcm_exp.config.errors import ConfigError
from lcm_exp.config.validate import validate_config
from lcm_exp.models import attention
from lcm_exp.models.attention import check_backend, set_attention_backend, vae_decode_mode
from tests.config.compose import compose_config


def layers(*modules) -> list[Attention]:
    return [m for module in modules for m in module.modules() if isinstance(m, Attention)]


def test_sdpa_switches_every_layer_of_the_given_networks_and_keeps_the_math(make):
    cfg, family, adapter, _ = make("model=tiny_sd15", "adapter=full")
    nets = [family.denoiser, family.vae, *adapter.networks()]
    for net in nets:
        net.set_attn_processor(AttnProcessor())  # the classic, unfused kernel
    x, t = torch.randn(1, 4, 4, 4), torch.tensor([500])
    text = torch.randn(1, 77, family.denoiser.config.cross_attention_dim)
    before = family.denoiser(x, t, encoder_hidden_states=text).sample
    assert set_attention_backend("sdpa", nets) == len(layers(*nets)) > 0
    assert all(type(layer.processor) is AttnProcessor2_0 for layer in layers(*nets))
    after = family.denoiser(x, t, encoder_hidden_states=text).sample
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)


def test_lora_student_and_its_plain_teacher_view_each_switched_once_and_classic_is_unfused(make):
    _, family, adapter, _ = make("model=tiny_sd15", "adapter=lora")
    student, teacher = adapter.networks()  # the teacher is a second module tree over the same weights
    nets = [family.denoiser, family.vae, student, teacher]  # the family's denoiser is the student itself
    assert student is family.denoiser
    assert set_attention_backend("classic", nets) == len(layers(student, family.vae, teacher))
    assert all(type(layer.processor) is AttnProcessor for layer in layers(student, family.vae, teacher))


def test_xformers_is_refused_with_a_clear_message(monkeypatch):
    with pytest.raises(ValueError, match="choose one of"):
        check_backend("flash")
    monkeypatch.setattr(attention.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="xformers package is not installed.*model.attention=sdpa"):
        check_backend("xformers")
    monkeypatch.setattr(attention.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA GPUs only"):
        check_backend("xformers")


@pytest.mark.skipif(importlib.util.find_spec("xformers") is not None, reason="xformers is installed here")
def test_config_validation_refuses_xformers_when_missing():
    with pytest.raises(ConfigError, match="model.attention='xformers'"):
        validate_config(compose_config(["model.attention=xformers"]))
    validate_config(compose_config(["validation.vae_slicing=true", "validation.vae_tiling=true"]))


def test_vae_decode_mode_slices_tiles_and_restores(make, monkeypatch):
    _, family, _, _ = make("model=tiny_sd15")
    vae = family.vae
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = vae.decode(latents).sample
        with vae_decode_mode(vae, slicing=True, tiling=False):
            sliced = vae.decode(latents).sample
        torch.testing.assert_close(sliced, plain, rtol=1e-4, atol=1e-5)  # slicing is exact, only memory changes
        calls = []
        real = vae.tiled_decode
        monkeypatch.setattr(vae, "tiled_decode", lambda z, **kw: calls.append(z.shape) or real(z, **kw))
        monkeypatch.setattr(vae, "tile_latent_min_size", 4)
        monkeypatch.setattr(vae, "tile_sample_min_size", 32)
        with vae_decode_mode(vae, slicing=False, tiling=True):
            tiled = vae.decode(latents).sample
        assert calls and tiled.shape == plain.shape
        assert (vae.use_slicing, vae.use_tiling) == (False, False)
        with pytest.raises(KeyError), vae_decode_mode(vae, slicing=True, tiling=True):
            raise KeyError("boom")
        assert (vae.use_slicing, vae.use_tiling) == (False, False)
