"""EMA modes and the full adapter's compute-dtype target copy."""

from __future__ import annotations

import pytest
import torch

from lcm_exp.adapters.ema import EMA, ComputeDtypeCopy


@pytest.mark.parametrize("foreach", [True, False])
def test_ema_both_modes_give_the_hand_computed_average(foreach):
    target, source = [torch.ones(3), torch.full((2, 2), 2.0)], [torch.full((3,), 3.0), torch.zeros(2, 2)]
    ema = EMA(source, target, decay=0.9, foreach=foreach)
    ema.update()
    assert torch.allclose(target[0], torch.full((3,), 1.2)) and torch.allclose(target[1], torch.full((2, 2), 1.8))
    ema.update()
    assert torch.allclose(target[0], torch.full((3,), 0.9 * 1.2 + 0.1 * 3.0))


def test_compute_dtype_copy_follows_its_fp32_master():
    master = torch.nn.Linear(2, 2)
    copy = ComputeDtypeCopy(master, torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 and not p.requires_grad for p in copy.module.parameters())
    with torch.no_grad():
        master.weight.fill_(0.5)
    assert not torch.all(copy.module.weight == 0.5)  # refreshed on demand, not live
    copy.refresh()
    assert torch.all(copy.module.weight == 0.5) and master.weight.dtype == torch.float32
