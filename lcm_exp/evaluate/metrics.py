"""Fidelity and distribution metrics as plain tensor functions (per-sample where a mean of samples is reported)."""

from __future__ import annotations

import torch


def latent_rmse(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-sample root mean squared difference (n,) over all latent elements."""
    return (x.double() - ref.double()).pow(2).flatten(1).mean(1).sqrt()


def psnr_db(images: torch.Tensor, ref: torch.Tensor, max_db: float = 100.0) -> torch.Tensor:
    """Per-sample PSNR (n,) in dB of images in [0, 1]; identical images give ``max_db`` instead of infinity."""
    mse = (images.double() - ref.double()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(1.0 / mse.clamp_min(10 ** (-max_db / 10)))).clamp(max=max_db)


def _sqrtm_psd(m: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(m)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to feature sets a (n, d) and b (m, d) (the FID formula).

    ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2), in float64; the symmetric form keeps the
    matrix square root real (scipy's sqrtm of S_a S_b can return complex noise).
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets must be (n, d) and (m, d), got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError("each feature set needs at least 2 rows for a covariance")
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.atleast_2d(torch.cov(a.T)), torch.atleast_2d(torch.cov(b.T))
    root_a = _sqrtm_psd(cov_a)
    cross = _sqrtm_psd(root_a @ cov_b @ root_a)
    return float((mu_a - mu_b).pow(2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * torch.trace(cross))
