"""Consistency-model boundary-condition scalings (lcd-facts item 8).

They must be exactly diffusers' LCMScheduler ones: the distilled student is sampled with that scheduler, so any
other c_skip/c_out would train a model that inference then mis-combines.
"""

from __future__ import annotations

import torch


def boundary_scalings(
    t: torch.Tensor, sigma_data: float = 0.5, timestep_scaling: float = 10.0, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """(c_skip, c_out) with x = timestep_scaling * t: c_skip = sd^2/(x^2+sd^2), c_out = x/sqrt(x^2+sd^2).

    Computed in float64 (LCMScheduler uses Python floats) and rounded to ``dtype``, so the float32 values equal the
    ones inference multiplies with. Same shape as ``t``.
    """
    work = torch.float32 if t.device.type == "mps" else torch.float64  # MPS has no float64
    x = t.to(work) * timestep_scaling
    denom = x**2 + sigma_data**2
    return (sigma_data**2 / denom).to(dtype), (x / denom**0.5).to(dtype)
