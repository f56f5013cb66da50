"""Trajectory Consistency Distillation (Zheng et al. 2024): the student maps x_t to a point x_s on the trajectory.

objectives-facts 1.2-1.5 (training: rootonchair/consistency_models_distill tcd scripts; sampling: diffusers'
TCDScheduler). Per sample, s is drawn uniformly from the grid's end positions {0, k-1, 2k-1, ..., t_end}; student
(at t_start) and target (at t_end) map to that same s with the first-order trajectory consistency function

    f(x_t, t, s) = a_s * x0 + s_s * eps,   eps the network's noise estimate at t

(the scripts' (s_s/s_t) x_t - a_s (e^-h - 1) x0 with h = lambda_s - lambda_t, rewritten), and f(x, t, t) = x
exactly: the boundary condition is built in, so there are no c_skip/c_out. TCDScheduler.step computes the same
x_s, so the exported scheduler samples the student as it was trained; gamma (its ``eta``) only sets how much fresh
noise each sampling step adds back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lcm_exp.objective.consistency import ConsistencyObjective, Tensor, scheduler_from_teacher
from lcm_exp.objective.solver import expand

_BIG = 2**63 - 1  # the scripts draw randint(0, 2**63 - 1) % (i + 1)


def draw_end_indices(idx: Tensor, generator: torch.Generator | None) -> Tensor:
    """j ~ U{0..i} per sample, as the reference draws it (a big random integer modulo i + 1)."""
    draw_on = generator.device if generator is not None else idx.device
    big = torch.randint(_BIG, idx.shape, generator=generator, device=draw_on).to(idx.device)
    return big % (idx + 1)


def trajectory_point(solver, x: Tensor, x0: Tensor, eps: Tensor, t: Tensor, s: Tensor) -> Tensor:
    """a_s * x0 + s_s * eps at positions ``s`` (the DDIM jump from the network's estimates), and exactly ``x``
    where s == t (TCD's h = 0 and PCM's target at a phase edge)."""
    same = expand(s == t, x.ndim)
    return torch.where(same, x, solver.jump(x0, eps, s).to(x.dtype))


def _tcd_scheduler(objective: ConsistencyObjective, teacher_scheduler_config: dict[str, Any], num_ddim_timesteps: int):
    """TCDScheduler on the teacher's betas; its timesteps for n steps come from the training grid (N)."""
    from diffusers import TCDScheduler

    return scheduler_from_teacher(TCDScheduler, teacher_scheduler_config, original_inference_steps=num_ddim_timesteps)


@dataclass(frozen=True)
class TCD(ConsistencyObjective):
    gamma: float = 0.3  # sampling stochasticity (TCDScheduler's eta); not used in training (TCD#8)

    name = "tcd"
    samplers = {"ddpm": _tcd_scheduler}

    def end_points(self, idx: Tensor, solver, generator: torch.Generator | None) -> Tensor:
        """s = max(j * k - 1, 0), j ~ U{0..i}: uniform over the grid's end positions up to t_end."""
        return solver.end_timesteps(draw_end_indices(idx, generator))

    def output(self, solver, x: Tensor, x0: Tensor, eps: Tensor, t: Tensor, s: Tensor | None) -> Tensor:
        return trajectory_point(solver, x, x0, eps, t, s)

    def sampling_kwargs(self) -> dict[str, Any]:
        return {"eta": self.gamma}

    def sampling_note(self, num_ddim_timesteps: int) -> str:
        return (f"Pass `eta={self.gamma}` (gamma, the stochasticity of each step) to the pipeline call: diffusers "
                "pipelines default to eta=0, which samples deterministically.")
