import math

import pytest
import torch
from diffusers import LCMScheduler

from lcm_exp.objective import boundary_scalings


@pytest.mark.parametrize("timestep_scaling", [10.0, 5.0])
def test_equals_lcm_scheduler_for_every_timestep(timestep_scaling):
    sched = LCMScheduler(timestep_scaling=timestep_scaling)
    t = torch.arange(1000)
    ref = [sched.get_scalings_for_boundary_condition_discrete(i) for i in range(1000)]
    c_skip, c_out = boundary_scalings(t, timestep_scaling=timestep_scaling, dtype=torch.float64)
    assert c_skip.tolist() == pytest.approx([r[0] for r in ref], rel=1e-15, abs=0)
    assert c_out.tolist() == pytest.approx([r[1] for r in ref], rel=1e-15, abs=0)
    # float32 values are exactly what inference multiplies a float32 latent with
    c_skip32, c_out32 = boundary_scalings(t, timestep_scaling=timestep_scaling)
    assert c_skip32.dtype == torch.float32
    assert torch.equal(c_skip32, torch.tensor([r[0] for r in ref], dtype=torch.float32))
    assert torch.equal(c_out32, torch.tensor([r[1] for r in ref], dtype=torch.float32))


def test_hand_values():
    c_skip, c_out = boundary_scalings(torch.tensor([0, 1]), dtype=torch.float64)
    assert c_skip.tolist() == pytest.approx([1.0, 0.25 / 100.25], rel=1e-15)
    assert c_out.tolist() == pytest.approx([0.0, 10 / math.sqrt(100.25)], rel=1e-15)
    c_skip, c_out = boundary_scalings(torch.tensor([1]), sigma_data=1.0, dtype=torch.float64)
    assert c_skip.item() == pytest.approx(1 / 101) and c_out.item() == pytest.approx(10 / math.sqrt(101))


def test_shape_follows_t():
    c_skip, c_out = boundary_scalings(torch.tensor([[3, 4], [5, 6]]))
    assert c_skip.shape == c_out.shape == (2, 2)
