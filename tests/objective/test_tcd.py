"""TCD (objectives-facts 1.2-1.5): the s draw, the trajectory consistency function against a float64 re-derivation of
the reference's formula and against diffusers' TCDScheduler.step, and a whole distill_step against numpy."""

import numpy as np
import pytest
import torch
from diffusers import TCDScheduler

from lcm_exp.objective import TCD, DDIMSolver, DDPMSchedule, distill_step
from lcm_exp.objective.tcd import draw_end_indices, trajectory_point
from tests.objective.test_step import N_DDIM, SEED, B, make_setup, sd_alphas_cumprod

SD = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


def _solver(n=N_DDIM, prediction_type="epsilon"):
    return DDIMSolver(DDPMSchedule(torch.from_numpy(sd_alphas_cumprod()), prediction_type), n)


def test_s_is_the_references_draw_and_uniform_up_to_t_end():
    solver = _solver(10)  # k = 100
    idx = torch.tensor([0, 1, 5, 9] * 500)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    s = TCD().end_points(idx, solver, g1)
    j = torch.randint(2**63 - 1, idx.shape, generator=g2) % (idx + 1)  # the scripts' randint(0, index + 1)
    assert torch.equal(s, torch.clamp(j * 100 - 1, min=0))
    assert (s <= solver.end_timesteps(idx)).all() and (s[idx == 0] == 0).all()
    for i in (1, 5, 9):  # every end position 0, 99, ..., t_end is drawn, about equally often
        values, counts = s[idx == i].unique(return_counts=True)
        assert values.tolist() == [0] + [e * 100 - 1 for e in range(1, i + 1)]
        assert counts.min() > 0.5 * counts.float().mean()


def _rc_tcf_float64(out, x, t, s, prediction_type):
    """get_predicted_original_sample_tcd of the reference, float64: (s_s/s_t) x - a_s (e^-h - 1) x0."""
    ac = sd_alphas_cumprod()
    a, sg = np.sqrt(ac), np.sqrt(1 - ac)
    col = lambda v: v.reshape(-1, 1, 1, 1)  # noqa: E731
    at, st, as_, ss = col(a[t]), col(sg[t]), col(a[s]), col(sg[s])
    out, x = out.double().numpy(), x.double().numpy()
    x0 = {"epsilon": (x - st * out) / at, "v_prediction": at * x - st * out, "sample": out}[prediction_type]
    h = (np.log(as_) - np.log(ss)) - (np.log(at) - np.log(st))
    return ss * x / st - as_ * (np.exp(-h) - 1.0) * x0


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_tcf_matches_the_references_formula_in_float64(prediction_type):
    solver = _solver(10, prediction_type)
    g = torch.Generator().manual_seed(0)
    x, out = torch.randn(6, 4, 3, 3, generator=g), torch.randn(6, 4, 3, 3, generator=g) * 0.5
    t = torch.tensor([999, 999, 499, 199, 99, 9])
    s = torch.tensor([899, 0, 299, 99, 0, 9])  # the last: s = t
    x0, eps = solver.x0_eps(out, x, t)
    got = TCD().output(solver, x, x0, eps, t, s)
    np.testing.assert_allclose(got.double().numpy(), _rc_tcf_float64(out, x, t.numpy(), s.numpy(), prediction_type),
                               rtol=2e-4, atol=2e-5)  # fmt: skip
    assert torch.equal(got[-1], x[-1])  # f(x, t, t) = x exactly (h = 0)


@pytest.mark.parametrize("eta", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_tcf_is_what_tcdscheduler_step_computes(eta, prediction_type):
    """TCDScheduler.step(eta) from t to t' forms x_s at s = floor((1 - eta) t') from the same (x0, eps): the exported
    scheduler combines the student's outputs exactly as training did. eta = 0 returns x_s itself (DDIM)."""
    scheduler = TCDScheduler(**SD, original_inference_steps=10, prediction_type=prediction_type)
    scheduler.set_timesteps(4)
    assert scheduler.timesteps.tolist() == [999, 799, 499, 299]
    solver = _solver(10, prediction_type)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 3, 3, generator=g)
    for i, t in enumerate(scheduler.timesteps.tolist()):
        out = torch.randn(2, 4, 3, 3, generator=g) * 0.7
        nxt = scheduler.timesteps[i + 1].item() if i + 1 < 4 else 0
        s = int(np.floor((1 - eta) * nxt))
        prev, noised = scheduler.step(out, t, x, eta=eta, generator=torch.Generator().manual_seed(i),
                                      return_dict=False)  # fmt: skip
        x0, eps = solver.x0_eps(out, x, torch.full((2,), t))
        ours = TCD(gamma=eta).output(solver, x, x0, eps, torch.full((2,), t), torch.full((2,), s))
        torch.testing.assert_close(noised, ours, rtol=1e-5, atol=1e-5)
        if eta == 0 or i == 3:  # no fresh noise: the step is the trajectory point itself
            torch.testing.assert_close(prev, ours, rtol=1e-5, atol=1e-5)
        x = prev


def test_tcd_step_matches_a_float64_rederivation():
    """One distill_step with the TCD objective: the draws (idx, eps, w, then j), the teacher's guided jump, student
    and target mapped to the same s (target = z_prev where s = t_end), l2 loss, all in float64 numpy."""
    from tests.objective.test_step import Tiny

    z0, cond, uncond, models, solver, spec = make_setup(None, "epsilon")
    spec.objective = TCD()
    out = distill_step(z0, cond, uncond, models, solver, spec, torch.Generator().manual_seed(SEED))

    g = torch.Generator().manual_seed(SEED)
    idx = torch.randint(0, N_DDIM, (B,), generator=g)
    eps = torch.randn(z0.shape, generator=g).double().numpy()
    w = (15.0 - 3.0) * torch.rand(B, generator=g).double().numpy() + 3.0
    j = (draw_end_indices(idx, g)).numpy()
    idx = idx.numpy()
    k, ac = 1000 // N_DDIM, sd_alphas_cumprod()
    a, sg = np.sqrt(ac), np.sqrt(1 - ac)
    col = lambda v: np.asarray(v, dtype=np.float64).reshape(-1, 1, 1, 1)  # noqa: E731
    t_s, t_e, s = (idx + 1) * k - 1, np.maximum(idx * k - 1, 0), np.maximum(j * k - 1, 0)
    assert (s == t_e).any() and (s < t_e).any()  # both target branches are exercised
    z_t = col(a[t_s]) * z0.double().numpy() + col(sg[t_s]) * eps
    pc, pu = cond.prompt_embeds.double().numpy(), uncond.prompt_embeds.double().numpy()

    def point(net: Tiny, x, t, prompt):
        e = net.numpy(x, t, prompt, None)
        x0 = (x - col(sg[t]) * e) / col(a[t])
        return col(a[s]) * x0 + col(sg[s]) * e

    pred = point(models.student, z_t, t_s, pc)
    e_c, e_u = models.teacher.numpy(z_t, t_s, pc, None), models.teacher.numpy(z_t, t_s, pu, None)
    x_c, x_u = (z_t - col(sg[t_s]) * e_c) / col(a[t_s]), (z_t - col(sg[t_s]) * e_u) / col(a[t_s])
    x_g, e_g = x_c + col(w) * (x_c - x_u), e_c + col(w) * (e_c - e_u)
    z_prev = col(a[t_e]) * x_g + col(sg[t_e]) * e_g
    target = np.where(col(s == t_e), z_prev, point(models.target, z_prev, t_e, pc))
    expected = ((pred - target) ** 2).reshape(B, -1).mean(1)
    np.testing.assert_allclose(out.per_sample_loss.double().numpy(), expected, rtol=2e-5, atol=1e-9)


def test_trajectory_point_keeps_x_bitwise_where_s_equals_t():
    solver = _solver(10)
    x = torch.randn(3, 4, 2, 2)
    t = torch.tensor([499, 0, 999])
    got = trajectory_point(solver, x, torch.randn_like(x), torch.randn_like(x), t, torch.tensor([499, 0, 899]))
    assert torch.equal(got[:2], x[:2]) and not torch.equal(got[2], x[2])


def test_tcd_exports_tcdscheduler_on_the_grid_with_gamma_as_eta():
    objective = TCD(gamma=0.4)
    config = dict(SD, _class_name="PNDMScheduler", skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False)
    scheduler = objective.inference_scheduler("ddpm", config, 10)
    assert type(scheduler).__name__ == "TCDScheduler" and scheduler.config.original_inference_steps == 10
    assert objective.sampling_kwargs() == {"eta": 0.4} and "eta=0.4" in objective.sampling_note(10)
    with pytest.raises(ValueError, match="no sampler for a 'flow' teacher"):
        objective.inference_scheduler("flow", config, 10)
