"""The flow-matching schedule (objective/flow.py): every formula pinned by hand and against diffusers' flow schedulers."""

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FlowMatchLCMScheduler

from lcm_exp.conditioning import Conditioning
from lcm_exp.objective import LCD, DDIMSolver, DistillModels, ObjectiveSpec, apply_cfg, build_loss, distill_step
from lcm_exp.objective.flow import FlowSchedule, shift_sigmas

SHIFT = 3.0  # SD3 / SD3.5's scheduler shift


def schedule(shift: float = SHIFT) -> FlowSchedule:
    return FlowSchedule.from_scheduler_config(dict(FlowMatchEulerDiscreteScheduler(shift=shift).config))


def randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_shift_formula_by_hand():
    s = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    torch.testing.assert_close(shift_sigmas(s, 3.0), torch.tensor([0.0, 0.5, 0.75, 1.0], dtype=torch.float64))
    torch.testing.assert_close(shift_sigmas(s, 1.0), s)


def test_sigma_table_is_the_schedulers_init_table_reversed():
    sched = FlowMatchEulerDiscreteScheduler(shift=SHIFT)
    sch = schedule()
    assert sch.kind == "flow" and sch.prediction_type == "flow" and sch.num_train_timesteps == 1000
    assert torch.equal(sch.sigmas, sched.sigmas.flip(0))
    assert sch.sigmas[-1].item() == 1.0
    assert sch.sigmas[0].item() == pytest.approx(3 * 0.001 / (1 + 2 * 0.001), rel=1e-6)  # shift(1/T), not 0
    positions = torch.tensor([0, 499, 999])
    torch.testing.assert_close(sch.sigmas[positions].double(), shift_sigmas((positions + 1).double() / 1000, SHIFT))
    alpha, sigma = sch.tables()
    assert torch.equal(alpha, 1 - sigma) and alpha.dtype == torch.float32


def test_model_time_is_the_pipelines_timestep():
    sched = FlowMatchEulerDiscreteScheduler(shift=SHIFT)
    t = torch.arange(1000)
    assert torch.equal(schedule().model_time(t), sched.timesteps.flip(0))  # timestep = 1000 * sigma, float32
    assert schedule().model_time(torch.tensor([999])).item() == 1000.0


def test_add_noise_is_scale_noise_bitwise():
    sched = FlowMatchEulerDiscreteScheduler(shift=SHIFT)
    solver = DDIMSolver(schedule(), 10)
    z0, eps, idx = randn(3, 4, 2, 2), randn(3, 4, 2, 2, seed=1), torch.tensor([0, 4, 9])
    expected = torch.cat([sched.scale_noise(z0[i:i + 1], solver.model_time(solver.start_timesteps(idx[i:i + 1])),
                                            eps[i:i + 1]) for i in range(3)])  # fmt: skip
    assert torch.equal(solver.add_noise(z0, eps, idx), expected)


def test_flow_prediction_recovers_x0_and_eps():
    solver = DDIMSolver(schedule(), 10)
    t = solver.start_timesteps(torch.tensor([0, 3, 9]))
    x0, eps = randn(3, 4, 2, 2, dtype=torch.float64), randn(3, 4, 2, 2, seed=1, dtype=torch.float64)
    s = solver.schedule.sigmas[t].double().view(-1, 1, 1, 1)
    x = (1 - s) * x0 + s * eps
    got_x0, got_eps = solver.x0_eps(eps - x0, x, t)  # v = eps - x0
    torch.testing.assert_close(got_x0, x0, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got_eps, eps, rtol=1e-6, atol=1e-6)


def test_jump_is_the_euler_step_by_hand():
    solver = DDIMSolver(schedule(), 10, dtype=torch.float64)
    idx = torch.tensor([0, 5, 9])
    t, u = solver.start_timesteps(idx), solver.end_timesteps(idx)
    x, v = randn(3, 4, 2, 2, dtype=torch.float64), randn(3, 4, 2, 2, seed=1, dtype=torch.float64)
    s_t, s_u = (solver.schedule.sigmas[p].double().view(-1, 1, 1, 1) for p in (t, u))
    x0, eps = solver.x0_eps(v, x, t)
    torch.testing.assert_close(solver.ddim_step(x0, eps, idx), x + (s_u - s_t) * v, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("i", [0, 3, 9])
def test_ddim_step_matches_flow_match_euler_step(i):
    """The scheduler's own step() between the grid's sigmas (its table set to [sigma_t, sigma_u, 0])."""
    solver = DDIMSolver(schedule(), 10)
    idx = torch.full((2,), i)
    t, u = solver.start_timesteps(idx), solver.end_timesteps(idx)
    x, v = randn(2, 4, 3, 3), randn(2, 4, 3, 3, seed=1)
    sched = FlowMatchEulerDiscreteScheduler(shift=SHIFT)
    sched.sigmas = torch.stack([solver.schedule.sigmas[t[0]], solver.schedule.sigmas[u[0]], torch.tensor(0.0)])
    sched.timesteps = sched.sigmas[:2] * 1000
    expected = sched.step(v, sched.timesteps[0], x).prev_sample
    torch.testing.assert_close(solver.ddim_step(*solver.x0_eps(v, x, t), idx), expected, rtol=0, atol=2e-6)


def test_euler_trajectory_matches_the_scheduler_through_its_public_api():
    """shift 1: set_timesteps(sigmas=...) takes the grid's sigmas unchanged; N Euler steps == N solver jumps."""
    solver = DDIMSolver(schedule(1.0), 5)
    grid = solver.schedule.sigmas[solver.timesteps.flip(0)]  # descending start sigmas
    sched = FlowMatchEulerDiscreteScheduler(shift=1.0)
    sched.set_timesteps(sigmas=grid.tolist())
    w = torch.linspace(0.5, 1.5, 4).view(1, 4, 1, 1)
    velocity = lambda x, sig: w * x + sig  # noqa: E731  (any smooth field)
    x_ref = x_ours = randn(1, 4, 2, 2)
    for k, ts in enumerate(sched.timesteps):
        x_ref = sched.step(velocity(x_ref, ts / 1000), ts, x_ref).prev_sample
        idx = torch.tensor([4 - k])
        t = solver.start_timesteps(idx)
        x_ours = solver.ddim_step(*solver.x0_eps(velocity(x_ours, solver.model_time(t) / 1000), x_ours, t), idx)
        if k < 4:  # the scheduler's last step goes to 0, the grid's to shift(1/T) = 0.001
            torch.testing.assert_close(x_ours, x_ref, rtol=0, atol=1e-5)


def test_cfg_on_x0_eps_is_cfg_on_the_velocity():
    solver = DDIMSolver(schedule(), 10, dtype=torch.float64)
    idx = torch.tensor([2, 7])
    t = solver.start_timesteps(idx)
    x = randn(2, 4, 2, 2, dtype=torch.float64)
    v_c, v_u = randn(2, 4, 2, 2, seed=1, dtype=torch.float64), randn(2, 4, 2, 2, seed=2, dtype=torch.float64)
    w = torch.tensor([3.0, 6.0], dtype=torch.float64)
    (x0_c, eps_c), (x0_u, eps_u) = solver.x0_eps(v_c, x, t), solver.x0_eps(v_u, x, t)
    v_g = v_u + (w + 1).view(-1, 1, 1, 1) * (v_c - v_u)  # the SD3 pipeline's CFG with guidance_scale = w + 1
    x0_g, eps_g = solver.x0_eps(v_g, x, t)
    torch.testing.assert_close(apply_cfg(x0_c, x0_u, w), x0_g, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(apply_cfg(eps_c, eps_u, w), eps_g, rtol=1e-12, atol=1e-12)


def test_boundary_scalings_are_skip_0_out_1_and_lcd_output_is_the_lcm_schedulers_x0():
    sch = schedule()
    c_skip, c_out = sch.boundary_scalings(torch.tensor([0, 500, 999]), 0.5, 10.0)
    assert c_skip.tolist() == [0.0, 0.0, 0.0] and c_out.tolist() == [1.0, 1.0, 1.0]
    solver = DDIMSolver(sch, 10)
    t = torch.tensor([999, 999])
    x, v = randn(2, 4, 2, 2), randn(2, 4, 2, 2, seed=1)
    ours = LCD().output(solver, x, *solver.x0_eps(v, x, t), t, None)
    lcm = FlowMatchLCMScheduler(shift=SHIFT)
    lcm.set_timesteps(1)  # sigma 1 -> 0: the step returns its x0 = x - sigma * v exactly (no noise left)
    assert lcm.timesteps.tolist() == [1000.0]  # the top of the training grid
    torch.testing.assert_close(ours, lcm.step(v, lcm.timesteps[0], x).prev_sample, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours, x - v)


def test_lcd_exports_a_flow_match_lcm_scheduler_with_the_teachers_shift():
    teacher = dict(FlowMatchEulerDiscreteScheduler(shift=SHIFT).config)
    sched = LCD().inference_scheduler("flow", teacher, 10)
    assert isinstance(sched, FlowMatchLCMScheduler)
    assert sched.config.shift == SHIFT and sched.config.num_train_timesteps == 1000
    sched.set_timesteps(4)  # objectives-facts 3.3: S = 3, n = 4 gives [1, 0.8577, 0.6022, 0.00893, 0]
    assert sched.sigmas.tolist() == pytest.approx([1.0, 0.8577, 0.6022, 0.00893, 0.0], abs=1e-4)


def test_end_of_grid_is_the_lowest_table_sigma():
    solver = DDIMSolver(schedule(), 10)
    idx = torch.tensor([0, 1])
    assert solver.end_timesteps(idx).tolist() == [0, 99]
    assert solver.model_time(solver.end_timesteps(idx)).tolist() == pytest.approx(
        [1000 * 3 * 0.001 / 1.002, 1000 * 3 * 0.1 / 1.2], rel=1e-5
    )


@pytest.mark.parametrize("option", ["use_dynamic_shifting", "invert_sigmas", "use_karras_sigmas", "shift_terminal"])
def test_unsupported_scheduler_options_are_refused(option):
    config = dict(FlowMatchEulerDiscreteScheduler().config, **{option: 0.5 if option == "shift_terminal" else True})
    with pytest.raises(ValueError, match=option):
        FlowSchedule.from_scheduler_config(config)


def test_rejects_bad_tables():
    with pytest.raises(ValueError, match="increase"):
        FlowSchedule(torch.tensor([0.5, 0.4]))
    with pytest.raises(ValueError, match="increase"):
        FlowSchedule(torch.tensor([0.0, 0.5]))


def test_distill_step_on_the_exact_flow_of_a_point_mass_has_zero_loss():
    """Data = one point z*: the exact velocity is (x - z*) / sigma(time), whose consistency output x - sigma v is z*
    wherever x is, so the loss is 0 exactly when the time the network is given is the sigma the conversions use."""
    z_star = randn(1, 4, 2, 2, seed=3, dtype=torch.float64)
    solver = DDIMSolver(schedule(), 10, dtype=torch.float64)

    def exact(x, time, cond, w_emb=None):
        return (x - z_star) / (time.double() / 1000).view(-1, 1, 1, 1)

    models = DistillModels(student=exact, teacher=exact, target=exact, guidance_embedding_dim=None)
    cond = Conditioning(torch.zeros(6, 2, 3, dtype=torch.float64))
    spec = ObjectiveSpec(loss=build_loss("l2"), w_min=2.0, w_max=8.0)
    out = distill_step(z_star.expand(6, -1, -1, -1).clone(), cond, cond, models, solver, spec,
                       torch.Generator().manual_seed(0))  # fmt: skip
    assert out.loss.item() < 1e-12  # float32 sigma tables
    off_by_one = DistillModels(student=lambda x, time, c, w=None: exact(x, time + 1, c), teacher=exact, target=exact,
                               guidance_embedding_dim=None)  # fmt: skip
    assert distill_step(z_star.expand(6, -1, -1, -1).clone(), cond, cond, off_by_one, solver, spec,
                        torch.Generator().manual_seed(0)).loss.item() > 1e-6  # fmt: skip
