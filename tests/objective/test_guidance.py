import math

import pytest
import torch
from diffusers.pipelines.latent_consistency_models import LatentConsistencyModelPipeline

from lcm_exp.objective import apply_cfg, guidance_embedding, sample_guidance


@pytest.mark.parametrize("dim", [16, 256, 17])
def test_embedding_equals_diffusers_inference_embedding(dim):
    w = torch.tensor([0.0, 1.0, 3.5, 7.25, 14.0])
    # the LCM pipeline embeds (guidance_scale - 1) with this method; `self` is unused there
    expected = LatentConsistencyModelPipeline.get_guidance_scale_embedding(None, w, embedding_dim=dim)
    assert torch.equal(guidance_embedding(w, dim), expected)


def test_embedding_hand_values():
    # w * 1000 = 1, half = 2, freqs = [1, exp(-ln 10000)] = [1, 1e-4]
    emb = guidance_embedding(torch.tensor([0.001]), 4)
    expected = [math.sin(1), math.sin(1e-4), math.cos(1), math.cos(1e-4)]
    assert emb.squeeze(0).tolist() == pytest.approx(expected, rel=1e-6, abs=1e-7)
    odd = guidance_embedding(torch.tensor([0.001]), 5)
    assert odd.shape == (1, 5) and odd[0, 4].item() == 0.0
    assert odd[0, :4].tolist() == pytest.approx(expected, rel=1e-6, abs=1e-7)


def test_embedding_dtype_and_errors():
    assert guidance_embedding(torch.tensor([2.0]), 8, dtype=torch.bfloat16).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="dim"):
        guidance_embedding(torch.tensor([2.0]), 3)
    with pytest.raises(ValueError, match=r"\(B,\)"):
        guidance_embedding(torch.ones(2, 1), 8)


def test_sample_guidance_uniform_range_and_reproducible():
    w = sample_guidance(1000, 3.0, 15.0, torch.Generator().manual_seed(0), "cpu")
    assert w.shape == (1000,) and w.dtype == torch.float32
    assert 3.0 <= w.min().item() and w.max().item() <= 15.0
    assert w.mean().item() == pytest.approx(9.0, abs=0.4)
    u = torch.rand(1000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(w, 12.0 * u + 3.0)


def test_sample_guidance_constant_draws_nothing():
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    w = sample_guidance(4, 8.0, 8.0, g, "cpu")
    assert w.tolist() == [8.0] * 4
    assert torch.equal(g.get_state(), state)
    with pytest.raises(ValueError, match="w_min"):
        sample_guidance(4, 9.0, 8.0, g, "cpu")


def test_apply_cfg_hand_values_and_classic_convention():
    cond, uncond = torch.full((2, 1, 1, 1), 2.0), torch.full((2, 1, 1, 1), 1.0)
    out = apply_cfg(cond, uncond, torch.tensor([3.0, 0.5]))
    assert out.flatten().tolist() == [5.0, 2.5]  # (1 + w) * 2 - w * 1
    assert apply_cfg(cond, uncond, 3.0).flatten().tolist() == [5.0, 5.0]
    g = torch.Generator().manual_seed(0)
    c, u = torch.randn(3, 4, 2, 2, generator=g), torch.randn(3, 4, 2, 2, generator=g)
    w = torch.tensor([0.0, 2.0, 7.5])
    classic = u + (w + 1).view(-1, 1, 1, 1) * (c - u)  # diffusers guidance_scale = w + 1
    torch.testing.assert_close(apply_cfg(c, u, w), classic)
