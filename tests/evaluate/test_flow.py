"""The evaluation on a flow-matching teacher (the tiny SD3 one): Euler baselines with velocity CFG, the student's
FlowMatchLCMScheduler and its deterministic variant, decoding through the VAE shift, each against a hand-written
re-derivation (sigmas from the shift formula, no diffusers stepping in the expectations)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FlowMatchLCMScheduler

from lcm_exp.config.schema import SD3ModelConfig
from lcm_exp.evaluate import samplers
from lcm_exp.evaluate.baselines import baselines_for
from lcm_exp.evaluate.core import conditioning, decode01, evaluate_student
from lcm_exp.evaluate.report import format_table
from lcm_exp.evaluate.settings import EvalSettings
from lcm_exp.models.tiny import ensure_tiny_teacher
from lcm_exp.objective import guidance_embedding

W = 3.0
CAPTION = "a red circle on the left"


@pytest.fixture(scope="module")
def family(cache_dir):
    from lcm_exp.models.sd3 import SD3Family

    teacher = ensure_tiny_teacher("sd3", cache_dir)
    return SD3Family(SD3ModelConfig(family="sd3", teacher=str(teacher), resolution=32, max_sequence_length=16))


@pytest.fixture(scope="module")
def guided(family):
    """A full SD3 student with a random w embedding (so w reaches the output)."""
    torch.manual_seed(0)
    return family.guided_student(family.load_denoiser(), 32, "random").eval()


def _setup(family, n=3):
    x = torch.randn(n, 16, 4, 4, generator=torch.Generator().manual_seed(0))
    cond, uncond = conditioning(family, [CAPTION] * n)
    return x, cond, uncond


def _v(net, x, sigma, cond, w_emb=None):
    """The transformer's velocity at timestep 1000 sigma, called by hand."""
    extra = {} if w_emb is None else {"guidance_emb": w_emb}
    t = torch.full((x.shape[0],), float(sigma) * 1000, dtype=torch.float32)
    with torch.no_grad():
        return net(hidden_states=x, timestep=t, encoder_hidden_states=cond.prompt_embeds,
                   pooled_projections=cond.pooled_embeds, **extra).sample  # fmt: skip


def _sigmas(n: int, shift: float = 3.0) -> list[float]:
    """diffusers' flow spacing: n sigmas linear from the shifted table's max (1) to its min (shift(1/1000)), shifted
    again, then the terminal 0."""
    sh = lambda s: shift * s / (1 + (shift - 1) * s)  # noqa: E731
    return [*(sh(s) for s in np.linspace(1.0, sh(1 / 1000), n)), 0.0]


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_euler_baselines_are_hand_stepped_euler_with_velocity_cfg(family, steps):
    """euler_cfg: x += (s' - s) (v_c + w (v_c - v_u)); euler_nocfg: v_c alone; both on the teacher's own
    FlowMatchEulerDiscreteScheduler (shift 3), the transformer given 1000 sigma as a float."""
    net, (x, cond, uncond) = family.denoiser, _setup(family)
    sigmas = _sigmas(steps, family.scheduler_config["shift"])
    for method, w in (("euler_cfg", W), ("euler_nocfg", 0.0)):
        baseline = baselines_for("flow")[method]
        scheduler = baseline.make_scheduler(family.scheduler_config)
        assert isinstance(scheduler, FlowMatchEulerDiscreteScheduler) and baseline.guided == (w > 0)
        got = samplers.teacher_sample(samplers.Denoiser(family, net), scheduler, x, steps, cond, uncond, w)
        np.testing.assert_allclose(scheduler.sigmas.numpy(), sigmas, rtol=1e-5)
        z = x
        for s, nxt in zip(sigmas[:-1], sigmas[1:], strict=True):
            v_c = _v(net, z, s, cond)
            v = v_c + w * (v_c - _v(net, z, s, uncond)) if w else v_c
            z = z + (nxt - s) * v
        torch.testing.assert_close(got, z, rtol=1e-4, atol=1e-5)


def test_the_student_is_stepped_by_flow_match_lcm_with_fresh_per_sample_noise(family, guided):
    """x0 = x - sigma v (the student's w embedding given), then (1 - s') x0 + s' noise_i, noise_i from sample i's
    own generator (LCM's re-noising); the last step returns x0."""
    x, cond, _ = _setup(family)
    scheduler = FlowMatchLCMScheduler.from_config(family.scheduler_config)
    denoiser = samplers.Denoiser(family, guided)
    got = samplers.student_sample(denoiser, scheduler, x, 2, cond, W, [torch.Generator().manual_seed(i) for i in range(3)])
    w_emb = guidance_embedding(torch.full((3,), W), 32)
    gens = [torch.Generator().manual_seed(i) for i in range(3)]
    z, sigmas = x, _sigmas(2, family.scheduler_config["shift"])
    for s, nxt in zip(sigmas[:-1], sigmas[1:], strict=True):
        x0 = z - s * _v(guided, z, s, cond, w_emb)
        noise = torch.stack([torch.randn(x.shape[1:], generator=g) for g in gens])
        z = (1 - nxt) * x0 + nxt * noise
    torch.testing.assert_close(got, z, rtol=1e-4, atol=1e-5)
    assert denoiser.embedding_dim == 32 and samplers.Denoiser(family, family.denoiser).embedding_dim is None


def test_the_deterministic_variant_renoises_with_the_model_noise(family, guided):
    """x_next = (1 - s') x0 + s' eps_model, eps_model = x + (1 - sigma) v; at 1 step it is the student's sample."""
    x, cond, _ = _setup(family)
    scheduler = FlowMatchLCMScheduler.from_config(family.scheduler_config)
    student = samplers.Denoiser(family, guided)
    label, sampler = samplers.StudentSampling(scheduler).sampler(deterministic=True)
    assert label == "deterministic (own noise estimate)"
    got = sampler(student, scheduler, x, 4, cond, W, None)
    w_emb = guidance_embedding(torch.full((3,), W), 32)
    z, sigmas = x, _sigmas(4, family.scheduler_config["shift"])
    for s, nxt in zip(sigmas[:-1], sigmas[1:], strict=True):
        v = _v(guided, z, s, cond, w_emb)
        z = (1 - nxt) * (z - s * v) + nxt * (z + (1 - s) * v)
    torch.testing.assert_close(got, z, rtol=1e-4, atol=1e-5)
    gens = [torch.Generator().manual_seed(i) for i in range(3)]
    one = samplers.student_sample(student, scheduler, x, 1, cond, W, gens)
    assert torch.equal(one, sampler(student, scheduler, x, 1, cond, W, None))


def test_decoding_adds_the_vae_shift_factor(family):
    """SD3 latents decode as z / scaling_factor + shift_factor (the shift is nonzero on the tiny teacher)."""
    vae = family.vae
    assert vae.config.shift_factor
    z = torch.randn(2, 16, 4, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = (vae.decode(z / vae.config.scaling_factor + vae.config.shift_factor).sample / 2 + 0.5).clamp(0, 1)
    torch.testing.assert_close(decode01(family, z), expected)


def test_a_flow_evaluation_has_euler_rows_and_names_them(family):
    """Only the flow kind's baselines run (no DDIM rows), labelled Euler; the reference is Euler + CFG; NFE counts
    the CFG pass; the table's first line names the reference sampler."""
    settings = EvalSettings(num_samples=2, steps=[1, 2], reference_steps=3, batch_size=2, cache_teacher=False)
    scheduler = FlowMatchLCMScheduler.from_config(family.scheduler_config)
    result = evaluate_student(family, family.denoiser, scheduler, settings, undistilled=family.denoiser)
    labels = {(r["method"], r["steps"]): (r["label"], r["nfe"]) for r in result.rows}
    assert labels[("reference", 3)] == ("teacher Euler-3 + CFG (reference)", 6)
    assert labels[("euler_cfg", 2)] == ("teacher Euler + CFG (fair baseline)", 4)
    assert labels[("euler_nocfg", 2)] == ("teacher Euler, no CFG", 2)
    assert labels[("student", 1)] == ("student, FlowMatchLCMScheduler", 1)
    assert labels[("student_det", 2)] == ("student, deterministic (own noise estimate)", 2)
    assert labels[("undistilled", 2)] == ("undistilled student, FlowMatchLCMScheduler", 2)
    assert not any(m.startswith("ddim") or m == "teacher_nocfg" for m, _ in labels)
    # the student is the teacher here: its 1-step sample is Euler-1 without CFG (x0 = x - 1 * v)
    torch.testing.assert_close(result.latents[("student", 1)], result.latents[("euler_nocfg", 1)])
    assert format_table(result).startswith("reference: teacher Euler-3 (FlowMatchEulerDiscreteScheduler), CFG w=3")


def test_an_older_method_list_without_flow_baselines_is_noted(family):
    settings = EvalSettings(num_samples=2, steps=[1], reference_steps=2, batch_size=2, cache_teacher=False,
                            methods=["student", "ddim_trailing"])  # fmt: skip
    scheduler = FlowMatchLCMScheduler.from_config(family.scheduler_config)
    result = evaluate_student(family, family.denoiser, scheduler, settings)
    assert [r["method"] for r in result.rows] == ["reference", "student"]
    assert any("no baseline of this flow teacher (euler_cfg, euler_nocfg)" in n for n in result.notes)
