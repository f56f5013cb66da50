import math

import pytest
import torch

from lcm_exp.evaluate.metrics import frechet_distance, latent_rmse, psnr_db


def test_latent_rmse_per_sample():
    ref = torch.zeros(2, 1, 2, 2)
    x = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]]], [[[3.0, 0.0], [0.0, 0.0]]]])
    assert latent_rmse(x, ref).tolist() == pytest.approx([1.0, 1.5])  # sqrt(4/4), sqrt(9/4)


def test_psnr_literal_and_cap():
    ref = torch.zeros(1, 3, 2, 2)
    assert float(psnr_db(ref + 0.1, ref)) == pytest.approx(20.0)  # 10 log10(1 / 0.01)
    assert float(psnr_db(ref, ref)) == 100.0


def test_frechet_distance_of_identical_sets_is_zero():
    a = torch.randn(200, 5, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_one_dimension_closed_form():
    """For 1-D Gaussians FD = (m1 - m2)^2 + (s1 - s2)^2, with the samples' own mean and std."""
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(500, 1, generator=g), 3 * torch.randn(400, 1, generator=g) + 2
    m1, m2, s1, s2 = a.mean(), b.mean(), a.std(), b.std()  # torch.std is unbiased, like torch.cov
    assert frechet_distance(a, b) == pytest.approx(float((m1 - m2) ** 2 + (s1 - s2) ** 2), rel=1e-6)


def test_frechet_distance_diagonal_closed_form():
    """Independent coordinates: the distance is the sum of the 1-D distances (covariances commute)."""
    a = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])  # cov diag(2/3, 8/3), mean 0
    b = a * torch.tensor([3.0, 0.5]) + torch.tensor([1.0, 0.0])  # cov diag(6, 2/3), mean (1, 0)
    expected = 1.0 + (math.sqrt(2 / 3) - math.sqrt(6)) ** 2 + (math.sqrt(8 / 3) - math.sqrt(2 / 3)) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_rejects_bad_shapes():
    with pytest.raises(ValueError, match="feature sets"):
        frechet_distance(torch.zeros(3, 2), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="2 rows"):
        frechet_distance(torch.zeros(1, 2), torch.zeros(3, 2))
