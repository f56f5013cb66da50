"""distill_step against an independent float64 numpy re-derivation of lcd-facts items 4-13, with tiny models."""

import numpy as np
import pytest
import torch
from diffusers.pipelines.latent_consistency_models import LatentConsistencyModelPipeline
from torch import nn

from lcm_exp.conditioning import Conditioning
from lcm_exp.objective import DDIMSolver, DDPMSchedule, DistillModels, ObjectiveSpec, build_loss, distill_step

B, C, H, W, L, D = 8, 4, 3, 3, 5, 6
N_DDIM = 5  # k = 200, grid 199, 399, ..., 999


class Tiny(nn.Module):
    """out = tanh(W x (1 + t/1000) + b + mean_l(prompt @ u) + w_emb @ e): depends on every input the step passes."""

    def __init__(self, seed: int, emb_dim: int | None):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(C, C, generator=g) * 0.3 + torch.eye(C) * 0.5)
        self.bias = nn.Parameter(torch.randn(C, generator=g) * 0.1)
        self.txt = nn.Parameter(torch.randn(D, generator=g) * 0.2)
        self.emb = nn.Parameter(torch.randn(emb_dim, generator=g) * 0.2) if emb_dim else None

    def forward(self, x, t, cond, w_emb=None):
        y = torch.einsum("oc,bchw->bohw", self.weight, x) * (1 + t.to(x.dtype) / 1000).view(-1, 1, 1, 1)
        y = y + self.bias.view(1, -1, 1, 1) + (cond.prompt_embeds @ self.txt).mean(1).view(-1, 1, 1, 1)
        if w_emb is not None:
            y = y + (w_emb @ self.emb).view(-1, 1, 1, 1)
        return torch.tanh(y)

    def numpy(self, x, t, prompt, w_emb):
        p = {k: v.detach().double().numpy() for k, v in self.named_parameters()}
        y = np.einsum("oc,bchw->bohw", p["weight"], x) * (1 + t / 1000).reshape(-1, 1, 1, 1)
        y = y + p["bias"].reshape(1, -1, 1, 1) + (prompt @ p["txt"]).mean(1).reshape(-1, 1, 1, 1)
        if w_emb is not None:
            y = y + (w_emb @ p["emb"]).reshape(-1, 1, 1, 1)
        return np.tanh(y)


def sd_alphas_cumprod() -> np.ndarray:
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2  # "scaled_linear"
    return np.cumprod(1 - betas).astype(np.float32).astype(np.float64)  # float32 values, like the scheduler's


def reference_per_sample_loss(z0, cond, uncond, student, teacher, target, seed, w_min, w_max, prediction_type,
                              emb_dim, loss, w_drawn):
    """Items 4-13 written out in float64 numpy, replaying the documented draw order (idx, eps, w)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, N_DDIM, (B,), generator=g).numpy()
    eps = torch.randn(z0.shape, generator=g).double().numpy()
    w = np.full(B, w_min) if w_min == w_max else (w_max - w_min) * torch.rand(B, generator=g).double().numpy() + w_min
    ac = sd_alphas_cumprod()
    k = 1000 // N_DDIM
    t_s = (idx + 1) * k - 1
    t_e = np.maximum(t_s - k, 0)
    col = lambda v: np.asarray(v, dtype=np.float64).reshape(-1, 1, 1, 1)  # noqa: E731
    a, s = np.sqrt(ac), np.sqrt(1 - ac)
    z0 = z0.double().numpy()
    z_t = col(a[t_s]) * z0 + col(s[t_s]) * eps

    def x0_eps(out, x, t):
        at, st = col(a[t]), col(s[t])
        if prediction_type == "epsilon":
            return (x - st * out) / at, out
        if prediction_type == "v_prediction":
            return at * x - st * out, at * out + st * x
        return out, (x - at * out) / st

    def scalings(t):
        x = 10.0 * t
        return col(0.25 / (x**2 + 0.25)), col(x / np.sqrt(x**2 + 0.25))

    # The embedding is pinned against diffusers in test_guidance; sin(w * 1000 * f) in float32 is sensitive to the
    # last bit of w, so it is taken from diffusers' inference code on the float32 w the step drew.
    w_emb = None if emb_dim is None else LatentConsistencyModelPipeline.get_guidance_scale_embedding(
        None, w_drawn, embedding_dim=emb_dim).double().numpy()
    np.testing.assert_allclose(w_drawn.double().numpy(), w, rtol=1e-6)

    pc, pu = cond.prompt_embeds.double().numpy(), uncond.prompt_embeds.double().numpy()
    cs, co = scalings(t_s)
    pred = cs * z_t + co * x0_eps(student.numpy(z_t, t_s, pc, w_emb), z_t, t_s)[0]
    x0_c, eps_c = x0_eps(teacher.numpy(z_t, t_s, pc, None), z_t, t_s)
    x0_u, eps_u = x0_eps(teacher.numpy(z_t, t_s, pu, None), z_t, t_s)
    x0_g, eps_g = x0_c + col(w) * (x0_c - x0_u), eps_c + col(w) * (eps_c - eps_u)
    ab_prev = np.where(idx > 0, ac[np.maximum(t_s - k, 0)], ac[0])
    z_prev = col(np.sqrt(ab_prev)) * x0_g + col(np.sqrt(1 - ab_prev)) * eps_g
    cs, co = scalings(t_e)
    tgt = cs * z_prev + co * x0_eps(target.numpy(z_prev, t_e, pc, w_emb), z_prev, t_e)[0]
    d = (pred - tgt).reshape(B, -1)
    if loss == "l2":
        return (d**2).mean(1), idx
    return (np.sqrt(d**2 + 0.05**2) - 0.05).mean(1), idx


def make_setup(emb_dim=8, prediction_type="epsilon", w_min=3.0, w_max=15.0, loss="l2", **spec_kw):
    g = torch.Generator().manual_seed(123)
    z0 = torch.randn(B, C, H, W, generator=g)
    cond = Conditioning(torch.randn(B, L, D, generator=g))
    uncond = Conditioning(torch.randn(B, L, D, generator=g) * 0.1)
    student, teacher, target = Tiny(1, emb_dim), Tiny(2, None), Tiny(3, emb_dim)
    models = DistillModels(student=student, teacher=teacher, target=target, guidance_embedding_dim=emb_dim)
    loss_fn = build_loss("l2") if loss == "l2" else build_loss("huber", huber_c=0.05)
    spec = ObjectiveSpec(loss=loss_fn, w_min=w_min, w_max=w_max, **spec_kw)
    solver = DDIMSolver(DDPMSchedule(torch.from_numpy(sd_alphas_cumprod()), prediction_type), N_DDIM)
    return z0, cond, uncond, models, solver, spec


SEED = 7


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("emb_dim", [None, 8])
def test_loss_matches_independent_rederivation(prediction_type, emb_dim):
    z0, cond, uncond, models, solver, spec = make_setup(emb_dim, prediction_type)
    out = distill_step(z0, cond, uncond, models, solver, spec, torch.Generator().manual_seed(SEED))
    expected, idx = reference_per_sample_loss(z0, cond, uncond, models.student, models.teacher, models.target, SEED,
                                              3.0, 15.0, prediction_type, emb_dim, "l2", out.w)
    assert 0 in idx and N_DDIM - 1 in idx  # both the i = 0 branch and t = 999 are exercised
    np.testing.assert_allclose(out.per_sample_loss.double().numpy(), expected, rtol=2e-5, atol=1e-9)
    assert out.loss.item() == pytest.approx(expected.mean(), rel=2e-5)
    assert out.start_timesteps.tolist() == ((idx + 1) * 200 - 1).tolist()
    assert out.end_timesteps.tolist() == np.maximum((idx + 1) * 200 - 1 - 200, 0).tolist()


def test_huber_loss_and_constant_w_match_rederivation():
    z0, cond, uncond, models, solver, spec = make_setup(8, "v_prediction", w_min=4.0, w_max=4.0, loss="huber")
    out = distill_step(z0, cond, uncond, models, solver, spec, torch.Generator().manual_seed(SEED))
    expected, _ = reference_per_sample_loss(z0, cond, uncond, models.student, models.teacher, models.target, SEED,
                                            4.0, 4.0, "v_prediction", 8, "huber", out.w)
    np.testing.assert_allclose(out.per_sample_loss.double().numpy(), expected, rtol=2e-5, atol=1e-9)
    assert out.w.tolist() == [4.0] * B


def _loss_and_grads(single_pass, no_grad_first, emb_dim=8):
    z0, cond, uncond, models, solver, spec = make_setup(emb_dim, "epsilon", teacher_single_pass=single_pass,
                                                        no_grad_first=no_grad_first)
    out = distill_step(z0, cond, uncond, models, solver, spec, torch.Generator().manual_seed(SEED))
    out.loss.backward()
    return out, models


def test_orderings_and_teacher_passes_agree():
    base, base_models = _loss_and_grads(True, True)
    for single_pass, no_grad_first in [(True, False), (False, True), (False, False)]:
        out, models = _loss_and_grads(single_pass, no_grad_first)
        torch.testing.assert_close(out.loss, base.loss, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(out.per_sample_loss, base.per_sample_loss, rtol=1e-6, atol=1e-6)
        for (name, p), p0 in zip(models.student.named_parameters(), base_models.student.parameters(), strict=True):
            torch.testing.assert_close(p.grad, p0.grad, rtol=1e-6, atol=1e-6, msg=name)


def test_only_student_gets_gradients():
    out, models = _loss_and_grads(True, True)
    assert out.loss.requires_grad and out.loss.ndim == 0
    for name, p in models.student.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    for net in (models.teacher, models.target):
        assert all(p.requires_grad for p in net.parameters())  # grads are blocked by the step, not by the caller
        assert all(p.grad is None for p in net.parameters())


def test_lora_style_target_is_student_without_embedding():
    z0, cond, uncond, models, solver, spec = make_setup(None, "epsilon")
    models.target = models.student
    out = distill_step(z0, cond, uncond, models, solver, spec, torch.Generator().manual_seed(SEED))
    out.loss.backward()
    expected, _ = reference_per_sample_loss(z0, cond, uncond, models.student, models.teacher, models.student, SEED,
                                            3.0, 15.0, "epsilon", None, "l2", out.w)
    np.testing.assert_allclose(out.per_sample_loss.double().numpy(), expected, rtol=2e-5, atol=1e-9)
    assert models.student.weight.grad is not None


def test_output_shapes_and_detachment():
    z0, cond, uncond, models, solver, spec = make_setup()
    out = distill_step(z0, cond, uncond, models, solver, spec, torch.Generator().manual_seed(0))
    for name in ("per_sample_loss", "start_timesteps", "end_timesteps", "w", "pred_rms", "target_rms"):
        value = getattr(out, name)
        assert value.shape == (B,), name
        assert not value.requires_grad, name
    assert ((3.0 <= out.w) & (out.w <= 15.0)).all()
    assert torch.isfinite(out.pred_rms).all() and (out.target_rms > 0).all()


def test_call_convention_and_order():
    z0, cond, uncond, models, solver, spec = make_setup(8, "epsilon", no_grad_first=False, teacher_single_pass=False)
    calls = []

    def record(name, fn):
        def call(x, t, c, *rest):
            calls.append((name, t.clone(), c, rest[0] if rest else "absent", torch.is_grad_enabled(), x.dtype))
            return fn(x, t, c, *rest)
        return call

    models = DistillModels(record("student", models.student), record("teacher", models.teacher),
                           record("target", models.target), 8)
    out = distill_step(z0, cond, uncond, models, solver, spec, torch.Generator().manual_seed(0))
    assert [c[0] for c in calls] == ["student", "teacher", "teacher", "target"]
    student, teacher_c, teacher_u, target = calls
    assert torch.equal(student[1], out.start_timesteps) and torch.equal(teacher_c[1], out.start_timesteps)
    assert torch.equal(target[1], out.end_timesteps)
    assert teacher_c[2] is cond and teacher_u[2] is uncond and target[2] is cond
    assert teacher_c[3] == "absent" and student[3] is target[3] and student[3].shape == (B, 8)
    assert [c[4] for c in calls] == [True, False, False, False]

    calls.clear()
    spec.no_grad_first, spec.teacher_single_pass = True, True
    distill_step(z0, cond, uncond, models, solver, spec, torch.Generator().manual_seed(0))
    assert [c[0] for c in calls] == ["teacher", "target", "student"]
    assert calls[0][1].shape == (2 * B,) and len(calls[0][2]) == 2 * B


def test_low_precision_latents_keep_dtype():
    z0, cond, uncond, models, solver, spec = make_setup()
    seen = []
    target = models.target
    models.target = lambda x, t, c, e: (seen.append(x.dtype), target(x.float(), t, c, e.float()).bfloat16())[1]
    student = models.student
    models.student = lambda x, t, c, e: student(x.float(), t, c, e.float()).bfloat16()
    teacher = models.teacher
    models.teacher = lambda x, t, c: teacher(x.float(), t, c).bfloat16()
    out = distill_step(z0.bfloat16(), cond, uncond, models, solver, spec, torch.Generator().manual_seed(0))
    assert seen == [torch.bfloat16]  # z_prev is cast back to the latents' dtype
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)


def test_reproducible_from_generator():
    z0, cond, uncond, models, solver, spec = make_setup()
    run = lambda seed: distill_step(z0, cond, uncond, models, solver, spec,  # noqa: E731
                                    torch.Generator().manual_seed(seed)).per_sample_loss
    assert torch.equal(run(5), run(5))
    assert not torch.equal(run(5), run(6))


def test_bad_inputs():
    z0, cond, uncond, models, solver, spec = make_setup()
    with pytest.raises(ValueError, match="batch sizes differ"):
        distill_step(z0, cond[:3], uncond, models, solver, spec, None)
    with pytest.raises(ValueError, match="'eps'.*epsilon, v_prediction, sample"):
        DDPMSchedule(torch.from_numpy(sd_alphas_cumprod()), "eps")
    with pytest.raises(ValueError, match="w_min"):
        ObjectiveSpec(loss=build_loss("l2"), w_min=16, w_max=15)
    spec.loss = lambda p, t: ((p - t) ** 2).mean()
    with pytest.raises(ValueError, match="per-sample"):
        distill_step(z0, cond, uncond, models, solver, spec, None)

