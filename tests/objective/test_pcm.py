"""PCM (objectives-facts 2.1-2.4): the phase edges, the edge each grid index maps to, the i-in-E boundary (target =
z_prev), a whole distill_step against numpy, and that TCDScheduler at eta 0 walks the edges the student learnt."""

import numpy as np
import pytest
import torch
from diffusers import TCDScheduler

from lcm_exp.objective import PCM, DDIMSolver, DDPMSchedule, distill_step
from lcm_exp.objective.pcm import matching_step_counts, phase_edge_indices, phase_edges
from tests.objective.test_step import SEED, B, Tiny, make_setup, sd_alphas_cumprod

SD = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


def _solver(n):
    return DDIMSolver(DDPMSchedule(torch.from_numpy(sd_alphas_cumprod())), n)


def test_phase_edges_are_the_facts_table():
    assert phase_edges(50, 1) == [0]
    assert phase_edges(50, 2) == [0, 25]
    assert phase_edges(50, 4) == [0, 12, 25, 37]
    assert phase_edges(50, 8) == [0, 6, 12, 18, 25, 31, 37, 43]
    with pytest.raises(ValueError, match="phases"):
        phase_edges(4, 5)


def test_each_start_maps_to_its_phase_edge_n50_k4():
    """t_start in [759, 999] -> 739, [519, 739] -> 499, [259, 499] -> 239, [19, 239] -> 0 (issue G-U-N#14)."""
    solver = _solver(50)
    idx = torch.arange(50)
    u = PCM(phases=4).end_points(idx, solver, None)
    t_start = solver.start_timesteps(idx)
    for lo, hi, edge in [(759, 999, 739), (519, 739, 499), (259, 499, 239), (19, 239, 0)]:
        in_phase = (t_start >= lo) & (t_start <= hi)
        assert in_phase.any() and (u[in_phase] == edge).all()
    assert phase_edge_indices(torch.tensor([0, 11, 12, 24, 25, 36, 37, 49]), [0, 12, 25, 37]).tolist() == [
        0, 0, 12, 12, 25, 25, 37, 37]  # fmt: skip


def test_i_in_edges_target_is_z_prev_and_the_student_is_not():
    """At an edge index i, t_end is the edge itself: the target is z_prev bitwise; the student still jumps."""
    seen = {}

    def loss(pred, target):
        seen["pred"], seen["target"] = pred.detach(), target.detach()
        return ((pred - target) ** 2).flatten(1).mean(1)

    z0, cond, uncond, models, solver, spec = make_setup(None, "epsilon")  # N = 5
    spec.objective, spec.loss = PCM(phases=5), loss  # every index is an edge: target = z_prev everywhere
    zprev = {}
    target = models.target
    models.target = lambda x, t, c, e: (zprev.setdefault("z", x.detach().clone()), target(x, t, c, e))[1]
    out = distill_step(z0, cond, uncond, models, solver, spec, torch.Generator().manual_seed(SEED))
    assert torch.equal(seen["target"], zprev["z"])
    assert torch.equal(out.end_timesteps, spec.objective.end_points(torch.div(out.start_timesteps + 1, 200,
                                                                              rounding_mode="floor") - 1, solver, None))
    assert not torch.equal(seen["pred"], zprev["z"])


def test_pcm_step_matches_a_float64_rederivation():
    z0, cond, uncond, models, solver, spec = make_setup(None, "epsilon")  # N = 5, k = 200
    spec.objective = PCM(phases=2)  # E = [0, 2]: i = 0, 2 are edges
    out = distill_step(z0, cond, uncond, models, solver, spec, torch.Generator().manual_seed(SEED))

    g = torch.Generator().manual_seed(SEED)
    idx = torch.randint(0, 5, (B,), generator=g).numpy()
    eps = torch.randn(z0.shape, generator=g).double().numpy()
    w = (15.0 - 3.0) * torch.rand(B, generator=g).double().numpy() + 3.0
    ac = sd_alphas_cumprod()
    a, sg = np.sqrt(ac), np.sqrt(1 - ac)
    col = lambda v: np.asarray(v, dtype=np.float64).reshape(-1, 1, 1, 1)  # noqa: E731
    t_s, t_e = (idx + 1) * 200 - 1, np.maximum(idx * 200 - 1, 0)
    e = np.where(idx >= 2, 2, 0)
    u = np.maximum(e * 200 - 1, 0)
    assert np.isin(idx, [0, 2]).any() and (~np.isin(idx, [0, 2])).any()
    z_t = col(a[t_s]) * z0.double().numpy() + col(sg[t_s]) * eps
    pc, pu = cond.prompt_embeds.double().numpy(), uncond.prompt_embeds.double().numpy()

    def edge_point(net: Tiny, x, t):
        out_ = net.numpy(x, t, pc, None)
        return col(a[u]) * (x - col(sg[t]) * out_) / col(a[t]) + col(sg[u]) * out_

    e_c, e_u = models.teacher.numpy(z_t, t_s, pc, None), models.teacher.numpy(z_t, t_s, pu, None)
    x_c, x_u = (z_t - col(sg[t_s]) * e_c) / col(a[t_s]), (z_t - col(sg[t_s]) * e_u) / col(a[t_s])
    z_prev = col(a[t_e]) * (x_c + col(w) * (x_c - x_u)) + col(sg[t_e]) * (e_c + col(w) * (e_c - e_u))
    target = np.where(col(np.isin(idx, [0, 2])), z_prev, edge_point(models.target, z_prev, t_e))
    expected = ((edge_point(models.student, z_t, t_s) - target) ** 2).reshape(B, -1).mean(1)
    np.testing.assert_allclose(out.per_sample_loss.double().numpy(), expected, rtol=2e-5, atol=1e-9)


@pytest.mark.parametrize(("n", "k"), [(10, 2), (20, 4), (40, 4), (8, 8), (12, 3)])
def test_tcdscheduler_at_k_2k_steps_walks_the_phase_edges(n, k):
    """The exported sampler's timesteps for K and 2K steps: the grid's top, then every phase edge, ending on
    alpha_bar[0]; each step from t jumps to the next timestep, for K steps exactly the edge the student maps t to."""
    solver = _solver(n)
    scheduler = PCM(phases=k).inference_scheduler("ddpm", dict(SD), n)
    assert isinstance(scheduler, TCDScheduler) and scheduler.config.original_inference_steps == n
    edge_times = sorted({max(e * (1000 // n) - 1, 0) for e in phase_edges(n, k)} - {0}, reverse=True)
    scheduler.set_timesteps(k)
    ts = scheduler.timesteps.tolist()
    assert ts == [solver.timesteps[-1].item(), *edge_times]  # the grid's top (999, or 995 for N = 12)
    grid_index = torch.tensor([(t + 1) // (1000 // n) - 1 for t in ts])
    assert PCM(phases=k).end_points(grid_index, solver, None).tolist() == [*edge_times, 0]
    if 2 * k <= n:
        scheduler.set_timesteps(2 * k)
        assert set(edge_times) <= set(scheduler.timesteps.tolist())
    assert matching_step_counts(n, k)[:2] == [k, 2 * k][: len(matching_step_counts(n, k)[:2])]


def test_pcm_samples_deterministically_and_says_which_step_counts_match():
    objective = PCM(phases=4)
    assert objective.sampling_kwargs() == {"eta": 0.0}
    assert matching_step_counts(40, 4) == [4, 8, 12, 16, 20, 24, 28, 32, 36, 40]
    note = objective.sampling_note(40)
    assert "4 phase(s)" in note and "4, 8, 12, 16, 20, 24, ..." in note and "eta=0.0" in note
