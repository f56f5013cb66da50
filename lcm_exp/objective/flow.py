"""Flow-matching teachers (SD3-class, rectified flow) as a NoiseSchedule (objectives-facts section 3).

x_sigma = (1 - sigma) * x0 + sigma * eps and the network predicts the velocity v = eps - x0, so alpha = 1 - sigma,
x0 = x - sigma * v, eps = x + (1 - sigma) * v (prediction type "flow"). Position t = 0..T-1 holds
sigma[t] = shift((t + 1) / T), the teacher's FlowMatchEulerDiscreteScheduler table read backwards (its init sigmas,
shift applied once, float32); the transformer is given timestep T * sigma[t], as the SD3 pipeline does.

The shared solver's jump (1 - sigma_u) * x0 + sigma_u * eps is then x + (sigma_u - sigma_t) * v: exactly the Euler
step of FlowMatchEulerDiscreteScheduler. CFG on (x0, eps) is CFG on v, since both are affine in v with equal x.

Boundary conditions in flow time: c_skip = 0, c_out = 1, so LCD's consistency function is f(x, sigma) = x - sigma * v.
That is what FlowMatchLCMScheduler computes before re-noising (no c_skip/c_out of its own), so training and sampling
combine the student's output identically; and f(x, sigma) -> x as sigma -> 0 for any finite v, so the
parameterization itself satisfies the consistency boundary condition that LCM's DDPM c_skip/c_out only approach
(their x = 10 t scaling has no meaning on a sigma grid in [0, 1]). The training grid's lowest position is
shift(1 / T), not 0, as for DDPM teachers (alpha_bar[0]) and PCM's SD3 EulerSolver.
"""

from __future__ import annotations

from typing import Any

import torch

from lcm_exp.objective.schedule import NoiseSchedule

Tensor = torch.Tensor

#: FlowMatchEulerDiscreteScheduler options whose sigma tables this schedule does not reproduce
UNSUPPORTED_OPTIONS = ("use_dynamic_shifting", "invert_sigmas", "shift_terminal", "use_karras_sigmas",
                       "use_exponential_sigmas", "use_beta_sigmas", "stochastic_sampling")  # fmt: skip


def shift_sigmas(sigmas: Tensor, shift: float) -> Tensor:
    """SD3's timestep shift: shift * s / (1 + (shift - 1) * s) (identity for shift = 1)."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)


class FlowSchedule(NoiseSchedule):
    """sigma over positions 0..T-1 (ascending), alpha = 1 - sigma, model time T * sigma."""

    kind = "flow"

    def __init__(self, sigmas: Tensor, time_scale: float | None = None):
        sig = sigmas.detach().to("cpu", torch.float32)
        if sig.ndim != 1 or sig.numel() == 0:
            raise ValueError(f"flow sigmas must be a non-empty 1-D tensor, got shape {tuple(sigmas.shape)}")
        if not bool(((sig > 0) & (sig <= 1)).all()) or not bool((sig[1:] > sig[:-1]).all()):
            raise ValueError("flow sigmas must increase strictly over the positions and lie in (0, 1]")
        sig64 = sig.double()
        super().__init__(1 - sig64, sig64, "flow")
        self._sigmas32 = sig
        self.time_scale = float(time_scale if time_scale is not None else sig.numel())
        self._time_tables: dict[torch.device, Tensor] = {}

    @classmethod
    def from_scheduler_config(cls, config: dict[str, Any]) -> FlowSchedule:
        """The table of a FlowMatchEulerDiscreteScheduler config (the teacher's scheduler/ folder)."""
        from diffusers import FlowMatchEulerDiscreteScheduler

        bad = [k for k in UNSUPPORTED_OPTIONS if config.get(k)]
        if bad:
            raise ValueError(f"flow teacher scheduler: {', '.join(f'{k}={config[k]!r}' for k in bad)} is not "
                             "supported (the distillation grid is the static shifted sigma table)")  # fmt: skip
        scheduler = FlowMatchEulerDiscreteScheduler.from_config(config)
        return cls(scheduler.sigmas.flip(0), scheduler.config.num_train_timesteps)

    @property
    def sigmas(self) -> Tensor:
        """sigma[t], float32, positions ascending."""
        return self._sigmas32

    def tables(self, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
        """float32: (1 - sigma, sigma) computed in float32 from the scheduler's float32 sigmas, the way
        FlowMatchEulerDiscreteScheduler.scale_noise mixes; float64: the same sigmas widened first."""
        sig = self._sigmas32 if dtype == torch.float32 else self._sigmas32.to(dtype)
        return 1 - sig, sig

    def model_time(self, t: Tensor) -> Tensor:
        """T * sigma[t] (float32), the SD3 pipeline's ``timestep`` (``scheduler.timesteps`` = sigmas * T)."""
        table = self._time_tables.get(t.device)
        if table is None:
            table = self._time_tables[t.device] = (self._sigmas32 * self.time_scale).to(t.device)
        return table[t]

    def boundary_scalings(self, t: Tensor, sigma_data: float, timestep_scaling: float) -> tuple[Tensor, Tensor]:
        """(0, 1): the consistency function is the flow's own x0 = x - sigma * v (module docstring);
        sigma_data and timestep_scaling (LCM's DDPM scalings) do not apply."""
        return torch.zeros(t.shape, dtype=torch.float32, device=t.device), torch.ones(
            t.shape, dtype=torch.float32, device=t.device
        )


def flow_lcm_scheduler(objective: Any, teacher_scheduler_config: dict[str, Any], num_ddim_timesteps: int):
    """FlowMatchLCMScheduler on the teacher's flow config (same T and shift, so timestep = T * sigma means what it
    meant in training): x0 = x - sigma * v, i.e. c_skip = 0, c_out = 1 as trained; fresh noise between steps like
    LCMScheduler. It has no grid-size option: its n-step sigmas are the teacher pipeline's own spacing."""
    from diffusers import FlowMatchLCMScheduler

    from lcm_exp.objective.consistency import scheduler_from_teacher

    return scheduler_from_teacher(FlowMatchLCMScheduler, teacher_scheduler_config)
