"""The teacher's noise schedule as one table: x_t = alpha[t] * x0 + sigma[t] * eps at T positions t = 0..T-1.

Every consistency objective (LCD, TCD, PCM) and the teacher's solver read only this table, so they run unchanged on
any family whose schedule fits it:
- DDPM-trained UNets (Stable Diffusion 1.x, 2.x, XL): alpha = sqrt(alpha_bar[t]), sigma = sqrt(1 - alpha_bar[t]);
  the network's timestep is the position t itself; LCD's boundary scalings are LCMScheduler's.
- flow-matching transformers (SD3-class) add their own subclass (alpha = 1 - sigma, timestep 1000 * sigma).
The DDIM jump a_u * x0 + s_u * eps is then the teacher's ODE step on either kind (for flows it is the Euler step).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from lcm_exp.objective.parameterization import PREDICTION_TYPES
from lcm_exp.objective.scalings import boundary_scalings

Tensor = torch.Tensor


class NoiseSchedule(ABC):
    """A table of (alpha, sigma) over the teacher's T training positions and how its network reads a position."""

    kind: ClassVar[str]  # names the schedule in an objective's inference-scheduler table ("ddpm", "flow", ...)

    def __init__(self, alphas: Tensor, sigmas: Tensor, prediction_type: str):
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"unknown prediction_type {prediction_type!r}; valid: {', '.join(PREDICTION_TYPES)}")
        if alphas.ndim != 1 or alphas.shape != sigmas.shape or alphas.numel() == 0:
            raise ValueError(f"alpha/sigma tables must be equal 1-D tensors, got {tuple(alphas.shape)}, "
                             f"{tuple(sigmas.shape)}")  # fmt: skip
        self.prediction_type = prediction_type
        self._alphas = alphas
        self._sigmas = sigmas

    @property
    def num_train_timesteps(self) -> int:
        return self._alphas.numel()

    def tables(self, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
        """(alpha, sigma) over all T positions, on the CPU in ``dtype``."""
        return self._alphas.to(dtype), self._sigmas.to(dtype)

    @abstractmethod
    def model_time(self, t: Tensor) -> Tensor:
        """The timestep the network is given at positions ``t`` (B,)."""

    @abstractmethod
    def boundary_scalings(self, t: Tensor, sigma_data: float, timestep_scaling: float) -> tuple[Tensor, Tensor]:
        """(c_skip, c_out) at positions ``t`` of the consistency function c_skip * x + c_out * x0 (float32)."""


class DDPMSchedule(NoiseSchedule):
    """A DDPM teacher's alpha_bar table (the scheduler's float32 values): alpha and sigma are their square roots.

    ``tables(float32)`` takes the roots of the float32 alpha_bar, exactly as DDPMScheduler.add_noise and the public
    scripts do; ``tables(float64)`` takes them in float64 (the scripts' numpy DDIM table).
    """

    kind = "ddpm"

    def __init__(self, alphas_cumprod: Tensor, prediction_type: str = "epsilon"):
        ac64 = alphas_cumprod.detach().to("cpu", torch.float64)
        if ac64.ndim != 1 or ac64.numel() == 0:
            raise ValueError(f"alphas_cumprod must be a non-empty 1-D tensor, got shape {tuple(alphas_cumprod.shape)}")
        if not bool(((ac64 > 0) & (ac64 <= 1)).all()):
            raise ValueError("alphas_cumprod values must lie in (0, 1]")
        super().__init__(ac64.sqrt(), (1 - ac64).sqrt(), prediction_type)
        self.alphas_cumprod = ac64

    def tables(self, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
        if dtype == torch.float64:
            return super().tables(dtype)
        ac = self.alphas_cumprod.float()
        return ac.sqrt().to(dtype), (1 - ac).sqrt().to(dtype)

    def model_time(self, t: Tensor) -> Tensor:
        return t

    def boundary_scalings(self, t: Tensor, sigma_data: float, timestep_scaling: float) -> tuple[Tensor, Tensor]:
        return boundary_scalings(t, sigma_data, timestep_scaling)
