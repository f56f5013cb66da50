import math

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from lcm_exp.objective import DDIMSolver, DDPMSchedule, ddim_timesteps

SD_SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


@pytest.fixture(scope="module")
def alphas_cumprod() -> torch.Tensor:
    return DDPMScheduler(**SD_SCHEDULE).alphas_cumprod  # float32, like the teacher's scheduler


def test_grid_literal_values():
    grid = ddim_timesteps(1000, 50)
    assert grid.dtype == torch.long and grid.shape == (50,)
    assert grid[:3].tolist() == [19, 39, 59] and grid[-1].item() == 999
    assert ddim_timesteps(10, 3).tolist() == [2, 5, 8]  # k = 3, remainder step dropped
    assert ddim_timesteps(1000, 1).tolist() == [999]
    assert ddim_timesteps(1000, 1000).tolist() == list(range(1000))


@pytest.mark.parametrize("n", [50, 8, 30])
def test_grid_is_ddim_scheduler_leading_grid(n):
    k = 1000 // n
    sched = DDIMScheduler(**SD_SCHEDULE, steps_offset=k - 1, timestep_spacing="leading")
    sched.set_timesteps(n)
    assert sched.timesteps.flip(0).tolist() == ddim_timesteps(1000, n).tolist()


@pytest.mark.parametrize("n", [0, -1, 1001])
def test_grid_rejects_bad_n(n, alphas_cumprod):
    with pytest.raises(ValueError, match="num_ddim_timesteps"):
        ddim_timesteps(1000, n)
    with pytest.raises(ValueError, match="num_ddim_timesteps"):
        DDIMSolver(DDPMSchedule(alphas_cumprod), n)


def test_rejects_bad_alphas():
    with pytest.raises(ValueError, match="alphas_cumprod"):
        DDIMSolver(DDPMSchedule(torch.ones(2, 3)), 1)
    with pytest.raises(ValueError, match="alphas_cumprod"):
        DDIMSolver(DDPMSchedule(torch.tensor([0.5, 0.0])), 1)


def test_start_and_end_timesteps(alphas_cumprod):
    solver = DDIMSolver(DDPMSchedule(alphas_cumprod), 50)
    idx = torch.tensor([0, 1, 49])
    assert solver.start_timesteps(idx).tolist() == [19, 39, 999]
    assert solver.end_timesteps(idx).tolist() == [0, 19, 979]


def test_alpha_sigma_values_and_shape(alphas_cumprod):
    solver = DDIMSolver(DDPMSchedule(alphas_cumprod), 50)
    t = torch.tensor([0, 500, 999])
    a, s = solver.alpha_sigma(t)
    assert a.shape == s.shape == (3, 1, 1, 1) and a.dtype == torch.float32
    for j, ti in enumerate(t.tolist()):
        ab = float(alphas_cumprod[ti])
        assert a[j].item() == pytest.approx(math.sqrt(ab), rel=1e-7)
        assert s[j].item() == pytest.approx(math.sqrt(1 - ab), rel=1e-6)


def test_ddim_step_prev_table_by_hand():
    # T = 10, N = 3: k = 3, grid 2, 5, 8; alpha_bar_prev = alpha_bar[0], alpha_bar[2], alpha_bar[5].
    ac = torch.linspace(0.99, 0.05, 10, dtype=torch.float64)
    solver = DDIMSolver(DDPMSchedule(ac), 3, dtype=torch.float64)
    idx = torch.tensor([0, 1, 2])
    ones, zeros = torch.ones(3, 1, 1, 1, dtype=torch.float64), torch.zeros(3, 1, 1, 1, dtype=torch.float64)
    expected_prev = [ac[0].item(), ac[2].item(), ac[5].item()]
    assert solver.ddim_step(ones, zeros, idx).flatten().tolist() == pytest.approx(
        [math.sqrt(p) for p in expected_prev], rel=1e-15)
    assert solver.ddim_step(zeros, ones, idx).flatten().tolist() == pytest.approx(
        [math.sqrt(1 - p) for p in expected_prev], rel=1e-15)
    assert solver.end_timesteps(idx).tolist() == [0, 2, 5]


def _ddim_scheduler_prev(x0, eps, idx, solver, alphas_cumprod, n):
    """z_prev from diffusers' own DDIMScheduler (eta=0), one sample at a time."""
    k = 1000 // n
    sched = DDIMScheduler(**SD_SCHEDULE, steps_offset=k - 1, set_alpha_to_one=False, clip_sample=False,
                          prediction_type="epsilon")
    sched.set_timesteps(n)
    sched.alphas_cumprod = sched.alphas_cumprod.double()  # float64 arithmetic, like the reference's table
    sched.final_alpha_cumprod = sched.final_alpha_cumprod.double()
    out = []
    for b in range(len(idx)):
        t = int(solver.start_timesteps(idx[b:b + 1]))
        ab = alphas_cumprod[t].to(x0.dtype)
        x_t = ab.sqrt() * x0[b:b + 1] + (1 - ab).sqrt() * eps[b:b + 1]
        out.append(sched.step(eps[b:b + 1], t, x_t, eta=0.0).prev_sample)
    return torch.cat(out)


def test_ddim_step_matches_diffusers_ddim_scheduler(alphas_cumprod):
    n = 50
    g = torch.Generator().manual_seed(0)
    idx = torch.tensor([0, 1, 7, 25, 49])
    x0 = torch.randn(5, 2, 3, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(5, 2, 3, 3, generator=g, dtype=torch.float64)
    expected = _ddim_scheduler_prev(x0, eps, idx, DDIMSolver(DDPMSchedule(alphas_cumprod), n), alphas_cumprod, n)
    z64 = DDIMSolver(DDPMSchedule(alphas_cumprod), n, dtype=torch.float64).ddim_step(x0, eps, idx)
    torch.testing.assert_close(z64, expected, rtol=1e-10, atol=1e-10)
    z32 = DDIMSolver(DDPMSchedule(alphas_cumprod), n).ddim_step(x0.float(), eps.float(), idx)
    assert z32.dtype == torch.float32
    torch.testing.assert_close(z32, expected.float(), rtol=1e-5, atol=1e-5)


def test_ddim_step_dtypes(alphas_cumprod):
    idx = torch.tensor([3, 4])
    x = torch.randn(2, 4, 2, 2)
    assert DDIMSolver(DDPMSchedule(alphas_cumprod), 50).ddim_step(x.bfloat16(), x.bfloat16(), idx).dtype == torch.bfloat16
    # float64 table: the public scripts' promotion of z_prev to float64
    assert DDIMSolver(DDPMSchedule(alphas_cumprod), 50, dtype=torch.float64).ddim_step(x, x, idx).dtype == torch.float64


def test_add_noise_matches_ddpm_scheduler(alphas_cumprod):
    sched = DDPMScheduler(**SD_SCHEDULE)
    solver = DDIMSolver(DDPMSchedule(alphas_cumprod.double()), 50)  # the family hands over float64
    g = torch.Generator().manual_seed(1)
    z0, eps = torch.randn(4, 4, 3, 3, generator=g), torch.randn(4, 4, 3, 3, generator=g)
    idx = torch.tensor([0, 10, 30, 49])
    expected = sched.add_noise(z0, eps, solver.start_timesteps(idx))
    torch.testing.assert_close(solver.add_noise(z0, eps, idx), expected, rtol=1e-6, atol=1e-7)


def test_sample_indices_uniform_and_reproducible(alphas_cumprod):
    solver = DDIMSolver(DDPMSchedule(alphas_cumprod), 5)
    idx = solver.sample_indices(400, torch.Generator().manual_seed(3))
    assert idx.dtype == torch.long and idx.shape == (400,)
    assert sorted(idx.unique().tolist()) == [0, 1, 2, 3, 4]
    counts = torch.bincount(idx, minlength=5).float()
    assert (counts > 50).all()  # expected 80 each
    assert torch.equal(idx, solver.sample_indices(400, torch.Generator().manual_seed(3)))
    expected = torch.randint(0, 5, (400,), generator=torch.Generator().manual_seed(3))
    assert torch.equal(idx, expected)
