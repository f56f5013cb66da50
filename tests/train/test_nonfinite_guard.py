"""The skip policy counts bad steps, resets on a good one and aborts after K in a row."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lcm_exp.train.nonfinite import NonFiniteGuard, NonFiniteLoss


def _out(loss):
    one = torch.ones(2)
    return SimpleNamespace(loss=torch.tensor(loss), per_sample_loss=one * loss, start_timesteps=one * 19, w=one * 7,
                           pred_rms=one, target_rms=one)  # fmt: skip


def test_skip_counts_and_resets():
    guard = NonFiniteGuard("skip", max_consecutive=2)
    assert guard.check(_out(1.0), 1, True)
    assert not guard.check(_out(float("nan")), 2, False)
    assert guard.check(_out(1.0), 3, True)
    assert not guard.check(_out(float("inf")), 4, False)
    assert guard.skipped == 2 and guard.first_bad["step"] == 2 and guard.first_bad["w"] == [7.0, 7.0]
    with pytest.raises(NonFiniteLoss, match="2 non-finite steps in a row"):
        guard.check(_out(float("nan")), 5, False)


def test_stop_raises_at_once_with_diagnostics():
    with pytest.raises(NonFiniteLoss, match="start_timesteps"):
        NonFiniteGuard("stop", 5).check(_out(float("nan")), 1, False)
