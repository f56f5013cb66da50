import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from lcm_exp.objective import predicted_x0_eps

SD_SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                   clip_sample=False)
TIMESTEPS = [0, 19, 480, 999]


@pytest.fixture(scope="module")
def case():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 4, 3, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(4, 4, 3, 3, generator=g, dtype=torch.float64)
    ac = DDPMScheduler(**SD_SCHEDULE).alphas_cumprod.double()[TIMESTEPS].view(-1, 1, 1, 1)
    a, s = ac.sqrt(), (1 - ac).sqrt()
    return x0, eps, a, s, a * x0 + s * eps


def _scheduler_x0(sched_cls, prediction_type, out, x_t):
    """pred_original_sample from diffusers' own scheduler step, one sample at a time."""
    sched = sched_cls(**SD_SCHEDULE, prediction_type=prediction_type)
    sched.alphas_cumprod = sched.alphas_cumprod.double()  # its float32 (1 - alpha_bar) would dominate the error
    if sched_cls is DDIMScheduler:
        sched.set_timesteps(50)
    return torch.cat([sched.step(out[b:b + 1], t, x_t[b:b + 1]).pred_original_sample
                      for b, t in enumerate(TIMESTEPS)])


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample"])
def test_epsilon_and_sample_recover_x0_eps(case, prediction_type):
    x0, eps, a, s, x_t = case
    out = eps if prediction_type == "epsilon" else x0
    got_x0, got_eps = predicted_x0_eps(out, x_t, a, s, prediction_type)
    torch.testing.assert_close(got_x0, x0, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(got_eps, eps, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(got_x0, _scheduler_x0(DDIMScheduler, prediction_type, out, x_t), rtol=1e-12,
                               atol=1e-12)


def test_v_prediction_against_diffusers(case):
    x0, eps, a, s, x_t = case
    v = DDPMScheduler(**SD_SCHEDULE).get_velocity(x0, eps, torch.tensor(TIMESTEPS))  # a*eps - s*x0
    got_x0, got_eps = predicted_x0_eps(v, x_t, a, s, "v_prediction")
    torch.testing.assert_close(got_x0, x0, rtol=1e-6, atol=1e-6)  # get_velocity's coefficients are float32
    torch.testing.assert_close(got_eps, eps, rtol=1e-6, atol=1e-6)
    for sched_cls in (DDIMScheduler, DDPMScheduler):
        torch.testing.assert_close(got_x0, _scheduler_x0(sched_cls, "v_prediction", v, x_t), rtol=1e-12,
                                   atol=1e-12)


def test_v_prediction_hand_values():
    # a = 0.6, s = 0.8, x_t = 1, out = 0.5: x0 = 0.6 - 0.4 = 0.2, eps = 0.3 + 0.8 = 1.1
    x0, eps = predicted_x0_eps(torch.tensor(0.5), torch.tensor(1.0), torch.tensor(0.6), torch.tensor(0.8),
                               "v_prediction")
    assert x0.item() == pytest.approx(0.2) and eps.item() == pytest.approx(1.1)


def test_flow_velocity_recovers_x0_eps_and_is_the_euler_step():
    """x = (1 - sig) x0 + sig eps, v = eps - x0 (objectives-facts 3.1); the jump (1 - sig') x0 + sig' eps from the
    recovered pair is FlowMatchEulerDiscreteScheduler's step x + (sig' - sig) v."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 4, 3, 3, generator=g), torch.randn(2, 4, 3, 3, generator=g)
    sched = FlowMatchEulerDiscreteScheduler(shift=3.0)
    sched.set_timesteps(4)
    sig, sig_next = sched.sigmas[1], sched.sigmas[2]
    x, v = (1 - sig) * x0 + sig * eps, eps - x0
    got_x0, got_eps = predicted_x0_eps(v, x, 1 - sig, sig, "flow")
    torch.testing.assert_close(got_x0, x0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_eps, eps, rtol=1e-5, atol=1e-5)
    sched._step_index = 1
    euler = sched.step(v, sched.timesteps[1], x).prev_sample
    torch.testing.assert_close((1 - sig_next) * got_x0 + sig_next * got_eps, euler, rtol=1e-5, atol=1e-5)


def test_unknown_prediction_type_lists_valid_ones(case):
    x0, eps, a, s, x_t = case
    with pytest.raises(ValueError, match="'velocity'.*epsilon, v_prediction, sample, flow"):
        predicted_x0_eps(eps, x_t, a, s, "velocity")
