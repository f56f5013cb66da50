"""The teacher's skipping-step solver on its schedule table (lcd-facts items 4, 5 and 11).

Consistency distillation does not distil every one of the T training positions: it walks a coarse grid of N
positions ((i+1)*k - 1 with k = T // N) and the teacher makes one deterministic jump of k positions from t_start to
t_end = max(t_start - k, 0): the DDIM step (eta = 0) a_u * x0 + s_u * eps, which on a flow schedule is the Euler
step. This class owns that grid and the schedule's coefficients on the device.
"""

from __future__ import annotations

import torch

from lcm_exp.objective.parameterization import predicted_x0_eps
from lcm_exp.objective.schedule import NoiseSchedule


def ddim_timesteps(num_train_timesteps: int, num_ddim_timesteps: int) -> torch.Tensor:
    """The skipping grid (i+1)*k - 1, i = 0..N-1, k = T // N (19, 39, ..., 999 for T=1000, N=50)."""
    if not 1 <= num_ddim_timesteps <= num_train_timesteps:
        raise ValueError(
            f"num_ddim_timesteps must be in [1, num_train_timesteps={num_train_timesteps}], got {num_ddim_timesteps}"
        )
    k = num_train_timesteps // num_ddim_timesteps
    return torch.arange(1, num_ddim_timesteps + 1, dtype=torch.long) * k - 1


def expand(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1) so a per-sample coefficient broadcasts over a latent."""
    return v.reshape(-1, *([1] * (ndim - 1)))


class DDIMSolver:
    """Grid, noising, (x0, eps) conversion and the eta=0 jump between positions of the schedule.

    ``dtype`` is the precision of the jump coefficients only. float32 (default) returns jumps in the input's dtype.
    float64 is the public scripts' table (their numpy list makes it float64): jumps then return float64,
    reproducing their promotion of z_prev, for parity benchmarks (``distill_step`` still casts z_prev to the latents'
    dtype before the target network, as the scripts feed it ``x_prev.float()``). a_t, s_t (noising and the x0/eps
    conversions) are always the schedule's float32 table, exactly as the scripts and DDPMScheduler compute them.
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        num_ddim_timesteps: int = 50,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.schedule = schedule
        self.prediction_type = schedule.prediction_type
        self.num_train_timesteps = schedule.num_train_timesteps
        self.num_ddim_timesteps = num_ddim_timesteps
        grid = ddim_timesteps(self.num_train_timesteps, num_ddim_timesteps)
        self.step_ratio = self.num_train_timesteps // num_ddim_timesteps
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype
        self.timesteps = grid.to(self.device)
        a32, s32 = schedule.tables(torch.float32)
        self._a, self._s = a32.to(self.device), s32.to(self.device)
        a64, s64 = schedule.tables(torch.float64)
        self._jump_a, self._jump_s = a64.to(self.device, dtype), s64.to(self.device, dtype)

    def sample_indices(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Uniform grid indices (B,) on the solver's device; drawn on the generator's device if one is given."""
        draw_on = generator.device if generator is not None else self.device
        idx = torch.randint(0, self.num_ddim_timesteps, (batch,), generator=generator, device=draw_on)
        return idx.to(self.device)

    def start_timesteps(self, idx: torch.Tensor) -> torch.Tensor:
        return self.timesteps[idx]

    def end_timesteps(self, idx: torch.Tensor) -> torch.Tensor:
        """max(t_start - k, 0): the position the teacher's jump lands on."""
        return (self.timesteps[idx] - self.step_ratio).clamp(min=0)

    def model_time(self, t: torch.Tensor) -> torch.Tensor:
        """What the network is given at positions ``t`` (the position itself for DDPM teachers)."""
        return self.schedule.model_time(t)

    def alpha_sigma(self, t: torch.Tensor, ndim: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha[t], sigma[t]), float32, shaped (B, 1, 1, 1) for ndim=4."""
        return expand(self._a[t], ndim), expand(self._s[t], ndim)

    def add_noise(self, z0: torch.Tensor, eps: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """z_t = a_t * z0 + s_t * eps at t = t_start(idx), in z0's dtype (as DDPMScheduler.add_noise)."""
        a, s = self.alpha_sigma(self.start_timesteps(idx), z0.ndim)
        return a.to(z0.dtype) * z0 + s.to(z0.dtype) * eps

    def x0_eps(self, out: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, eps) from a network output ``out`` for input ``x`` at positions ``t``."""
        a, s = self.alpha_sigma(t, x.ndim)
        return predicted_x0_eps(out, x, a, s, self.prediction_type)

    def jump(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """a_u * x0 + s_u * eps at positions ``t``: DDIM (eta = 0) / Euler to u = t."""
        z = expand(self._jump_a[t], x0.ndim) * x0 + expand(self._jump_s[t], x0.ndim) * eps
        return z if self.dtype == torch.float64 else z.to(x0.dtype)

    def ddim_step(self, x0: torch.Tensor, eps: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """The teacher's jump to t_end: alpha_bar_prev[i] = alpha_bar[t_{i-1}] for i > 0, alpha_bar[0] for i = 0."""
        return self.jump(x0, eps, self.end_timesteps(idx))
