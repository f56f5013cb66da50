import math

import pytest
import torch

from lcm_exp.objective import build_loss, huber, l2, pseudo_huber


@pytest.fixture
def pair():
    pred = torch.zeros(2, 1, 1, 2)
    target = torch.tensor([[[[3.0, 4.0]]], [[[0.0, 1.0]]]])
    return pred, target


def test_l2_hand_values(pair):
    assert l2(*pair).tolist() == [12.5, 0.5]


def test_huber_hand_values(pair):
    c = 0.5
    expected = [((math.sqrt(9 + c * c) - c) + (math.sqrt(16 + c * c) - c)) / 2,
                ((math.sqrt(0 + c * c) - c) + (math.sqrt(1 + c * c) - c)) / 2]
    assert huber(*pair, c).tolist() == pytest.approx(expected, rel=1e-6)
    # default c = 0.001 (public scripts' huber_c)
    assert huber(*pair)[0].item() == pytest.approx((math.sqrt(9 + 1e-6) + math.sqrt(16 + 1e-6)) / 2 - 1e-3, rel=1e-6)


def test_pseudo_huber_uses_per_sample_dimension():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(3, 3, 4, 5, generator=g), torch.randn(3, 3, 4, 5, generator=g)
    c = 0.00054 * math.sqrt(60)
    d = (pred - target).double().numpy().reshape(3, -1)
    expected = [sum(math.sqrt(x * x + c * c) - c for x in row) / 60 for row in d]
    assert pseudo_huber(pred, target).tolist() == pytest.approx(expected, rel=1e-5)
    c2 = 0.01 * math.sqrt(60)
    expected2 = [sum(math.sqrt(x * x + c2 * c2) - c2 for x in row) / 60 for row in d]
    assert pseudo_huber(pred, target, scale=0.01).tolist() == pytest.approx(expected2, rel=1e-5)


def test_build_loss_by_name(pair):
    assert build_loss("l2")(*pair).tolist() == [12.5, 0.5]
    c = 0.5
    assert build_loss("huber", huber_c=c)(*pair)[1].item() == pytest.approx((math.sqrt(1.25) - c) / 2, rel=1e-6)
    c = 0.1 * math.sqrt(2)
    assert build_loss("pseudo_huber", scale=0.1)(*pair)[1].item() == pytest.approx(
        (math.sqrt(1 + c * c) - c) / 2, rel=1e-6)


def test_build_loss_errors():
    with pytest.raises(ValueError, match="'mse'.*l2, huber, pseudo_huber"):
        build_loss("mse")
    with pytest.raises(ValueError, match="huber_c.*valid: none"):
        build_loss("l2", huber_c=0.1)
    with pytest.raises(ValueError, match="scale.*valid: huber_c"):
        build_loss("huber", scale=0.1)
