"""DDIM skipping-step solver on the teacher's DDPM schedule (lcd-facts items 4, 5 and 11).

LCD does not distil every one of the T training steps: it walks a coarse grid of N timesteps
((i+1)*k - 1 with k = T // N) and the teacher makes one deterministic DDIM jump (eta = 0) of k steps from
t_start to t_end = max(t_start - k, 0). This class owns that grid and the schedule coefficients.
"""

from __future__ import annotations

import torch


def ddim_timesteps(num_train_timesteps: int, num_ddim_timesteps: int) -> torch.Tensor:
    """The skipping grid (i+1)*k - 1, i = 0..N-1, k = T // N (19, 39, ..., 999 for T=1000, N=50)."""
    if not 1 <= num_ddim_timesteps <= num_train_timesteps:
        raise ValueError(
            f"num_ddim_timesteps must be in [1, num_train_timesteps={num_train_timesteps}], got {num_ddim_timesteps}"
        )
    k = num_train_timesteps // num_ddim_timesteps
    return torch.arange(1, num_ddim_timesteps + 1, dtype=torch.long) * k - 1


def _expand(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1) so a per-sample coefficient broadcasts over a latent."""
    return v.reshape(-1, *([1] * (ndim - 1)))


class DDIMSolver:
    """Grid, noising and the eta=0 DDIM step of LCD.

    ``dtype`` is the precision of the DDIM-step coefficient table only. float32 (default) returns z_prev in the
    input's dtype. float64 is the public scripts' table (their numpy list makes it float64): ``ddim_step`` then
    returns float64, reproducing their promotion of z_prev, for parity benchmarks (``distill_step`` still casts
    z_prev to the latents' dtype before the target network, as the scripts feed it ``x_prev.float()``; only their
    c_skip * z_prev term kept float64, a float32-rounding difference). a_t, s_t (noising and the x0/eps conversions)
    are always float32 computed from float32 alpha_bar, exactly as the scripts and DDPMScheduler do.
    """

    def __init__(
        self,
        alphas_cumprod: torch.Tensor,
        num_ddim_timesteps: int = 50,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if alphas_cumprod.ndim != 1 or alphas_cumprod.numel() == 0:
            raise ValueError(f"alphas_cumprod must be a non-empty 1-D tensor, got shape {tuple(alphas_cumprod.shape)}")
        ac64 = alphas_cumprod.detach().to("cpu", torch.float64)
        if not bool(((ac64 > 0) & (ac64 <= 1)).all()):
            raise ValueError("alphas_cumprod values must lie in (0, 1]")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.num_train_timesteps = ac64.numel()
        self.num_ddim_timesteps = num_ddim_timesteps
        grid = ddim_timesteps(self.num_train_timesteps, num_ddim_timesteps)
        self.step_ratio = self.num_train_timesteps // num_ddim_timesteps
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype
        self.timesteps = grid.to(self.device)

        ac32 = ac64.float()
        self._sqrt_ac = ac32.sqrt().to(self.device)
        self._sqrt_one_minus_ac = (1 - ac32).sqrt().to(self.device)
        # alpha_bar_prev[i] = alpha_bar[t_i - k] = alpha_bar[t_{i-1}] for i > 0; alpha_bar[0] for i = 0.
        prev = torch.cat([ac64[:1], ac64[grid[:-1]]])
        self._sqrt_prev = prev.sqrt().to(self.device, dtype)
        self._sqrt_one_minus_prev = (1 - prev).sqrt().to(self.device, dtype)

    def sample_indices(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Uniform grid indices (B,) on the solver's device; drawn on the generator's device if one is given."""
        draw_on = generator.device if generator is not None else self.device
        idx = torch.randint(0, self.num_ddim_timesteps, (batch,), generator=generator, device=draw_on)
        return idx.to(self.device)

    def start_timesteps(self, idx: torch.Tensor) -> torch.Tensor:
        return self.timesteps[idx]

    def end_timesteps(self, idx: torch.Tensor) -> torch.Tensor:
        """max(t_start - k, 0): the timestep the teacher's DDIM jump lands on."""
        return (self.timesteps[idx] - self.step_ratio).clamp(min=0)

    def alpha_sigma(self, t: torch.Tensor, ndim: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
        """(sqrt(alpha_bar[t]), sqrt(1 - alpha_bar[t])), float32, shaped (B, 1, 1, 1) for ndim=4."""
        return _expand(self._sqrt_ac[t], ndim), _expand(self._sqrt_one_minus_ac[t], ndim)

    def add_noise(self, z0: torch.Tensor, eps: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """z_t = a_t * z0 + s_t * eps at t = t_start(idx), in z0's dtype (as DDPMScheduler.add_noise)."""
        a, s = self.alpha_sigma(self.start_timesteps(idx), z0.ndim)
        return a.to(z0.dtype) * z0 + s.to(z0.dtype) * eps

    def ddim_step(self, x0: torch.Tensor, eps: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """z_prev = sqrt(alpha_bar_prev) * x0 + sqrt(1 - alpha_bar_prev) * eps (DDIM, eta = 0)."""
        z = _expand(self._sqrt_prev[idx], x0.ndim) * x0 + _expand(self._sqrt_one_minus_prev[idx], x0.ndim) * eps
        return z if self.dtype == torch.float64 else z.to(x0.dtype)
