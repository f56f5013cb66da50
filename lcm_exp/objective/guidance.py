"""Guidance scale: sampling, the student's w embedding and classifier-free guidance (lcd-facts items 6, 7, 11).

Convention (LCM paper): guided = cond + w * (cond - uncond) = (1 + w) * cond - w * uncond. The classic
diffusers/Imagen ``guidance_scale`` is g = w + 1; LCM pipelines embed ``guidance_scale - 1`` = w, so a student
trained on w here is driven at inference with guidance_scale = w + 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def guidance_embedding(w: torch.Tensor, dim: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Sinusoidal embedding (B, dim) of w * 1000, [sin, cos], zero-padded if dim is odd.

    Same float32 operations as diffusers' ``get_guidance_scale_embedding`` (what inference feeds the student),
    then cast to ``dtype``.
    """
    if w.ndim != 1:
        raise ValueError(f"w must have shape (B,), got {tuple(w.shape)}")
    if dim < 4:
        raise ValueError(f"guidance embedding dim must be >= 4 (half - 1 divides the frequency exponent), got {dim}")
    half = dim // 2
    scale = torch.log(torch.tensor(10000.0)) / (half - 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=w.device) * -scale)
    args = (w * 1000.0).float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb.to(dtype)


def sample_guidance(
    batch: int,
    w_min: float,
    w_max: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """w ~ U[w_min, w_max] per sample, float32 (B,). w_min == w_max gives that constant without drawing (LCM-LoRA's
    fixed-w recipe)."""
    if w_min > w_max:
        raise ValueError(f"w_min ({w_min}) must not exceed w_max ({w_max})")
    if w_min == w_max:
        return torch.full((batch,), float(w_min), device=device)
    draw_on = generator.device if generator is not None else device
    u = torch.rand(batch, generator=generator, device=draw_on)
    return ((w_max - w_min) * u + w_min).to(device)


def apply_cfg(cond: torch.Tensor, uncond: torch.Tensor, w: torch.Tensor | float) -> torch.Tensor:
    """cond + w * (cond - uncond); a (B,) w applies per sample."""
    if isinstance(w, torch.Tensor):
        w = w.reshape(-1, *([1] * (cond.ndim - 1)))
    return cond + w * (cond - uncond)
