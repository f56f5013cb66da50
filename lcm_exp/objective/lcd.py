"""Latent Consistency Distillation (Luo et al. 2023): the student maps x_t to x0 under the boundary scalings.

f(x, t) = c_skip(t) * x + c_out(t) * x0(x, t), with LCMScheduler's c_skip/c_out on DDPM schedules (lcd-facts item
8), so the exported LCMScheduler combines the student's outputs exactly as training did; on flow schedules
(0, 1), which FlowMatchLCMScheduler applies (objective/flow.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lcm_exp.objective.consistency import ConsistencyObjective, Tensor, scheduler_from_teacher
from lcm_exp.objective.flow import flow_lcm_scheduler
from lcm_exp.objective.solver import expand


def _lcm_scheduler(objective: LCD, teacher_scheduler_config: dict[str, Any], num_ddim_timesteps: int):
    """LCMScheduler on the teacher's betas with the training grid size N and the same scalings."""
    from diffusers import LCMScheduler

    return scheduler_from_teacher(LCMScheduler, teacher_scheduler_config, original_inference_steps=num_ddim_timesteps,
                                  timestep_scaling=objective.timestep_scaling_factor)  # fmt: skip


@dataclass(frozen=True)
class LCD(ConsistencyObjective):
    sigma_data: float = 0.5
    timestep_scaling_factor: float = 10.0  # x = factor * t in the scalings; LCMScheduler's `timestep_scaling`

    name = "lcd"
    samplers = {"ddpm": _lcm_scheduler, "flow": flow_lcm_scheduler}

    def output(self, solver, x: Tensor, x0: Tensor, eps: Tensor, t: Tensor, s: Tensor | None) -> Tensor:
        c_skip, c_out = solver.schedule.boundary_scalings(t, self.sigma_data, self.timestep_scaling_factor)
        return expand(c_skip, x.ndim) * x + expand(c_out, x.ndim) * x0
