"""Phased Consistency Model distillation (Wang et al. 2024): the trajectory is cut into ``phases`` phases and the
student maps x_t to the lower edge of its phase (objectives-facts 2.1-2.4; G-U-N/Phased-Consistency-Model
the SD1.5 LoRA training script under code/, ``ddim_style_multiphase_pred``).

Edge indices E = floor(linspace(0, N, K, endpoint=False)); a grid index i belongs to the phase of
e(i) = max{e in E: e <= i}, whose edge position is u = max(e * k - 1, 0) (e = 0: t = 0, alpha_bar[0]). Student
(at t_start) and target (at t_end) both jump to u with a DDIM step from their own (x0, eps); the target is z_prev
itself when i is an edge (t_end = u). The phase is that of t_start for both, as in the reference.

Sampling: diffusers' TCDScheduler with eta = 0 is DDIM on the training grid's timesteps, ending on alpha_bar[0].
For n steps it visits floor(linspace(0, N, n, endpoint=False)) of the reversed grid, which contains every phase
edge exactly when K divides n (given K divides N, which the config requires): so K, 2K, ... steps are consistent
with training; other counts still run (a DDIM jump with the student's estimates) but leave the edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lcm_exp.objective.consistency import ConsistencyObjective, Tensor
from lcm_exp.objective.tcd import _tcd_scheduler, trajectory_point


def phase_edges(num_ddim_timesteps: int, phases: int) -> list[int]:
    """E = floor(linspace(0, N, K, endpoint=False)) in the reference's numpy arithmetic (N=50, K=4: 0, 12, 25, 37)."""
    if not 1 <= phases <= num_ddim_timesteps:
        raise ValueError(f"phases must be in [1, num_ddim_timesteps={num_ddim_timesteps}], got {phases}")
    return np.floor(np.linspace(0, num_ddim_timesteps, num=phases, endpoint=False)).astype(np.int64).tolist()


def phase_edge_indices(idx: Tensor, edges: list[int]) -> Tensor:
    """e(i) = the largest edge index <= i, per sample."""
    e = torch.tensor(edges, device=idx.device, dtype=idx.dtype)
    return e[(idx[:, None] >= e[None, :]).sum(dim=1) - 1]


def matching_step_counts(num_ddim_timesteps: int, phases: int) -> list[int]:
    """Step counts whose TCDScheduler timesteps contain every phase edge: the multiples of K up to N."""
    return [n for n in range(phases, num_ddim_timesteps + 1, phases)]


@dataclass(frozen=True)
class PCM(ConsistencyObjective):
    phases: int = 4  # K; 1 = one phase, the one-step model of the reference

    name = "pcm"
    samplers = {"ddpm": _tcd_scheduler}

    def end_points(self, idx: Tensor, solver, generator: torch.Generator | None) -> Tensor:
        """The edge position u of each sample's phase (no randomness)."""
        edges = phase_edges(solver.num_ddim_timesteps, self.phases)
        return solver.end_timesteps(phase_edge_indices(idx, edges))

    def output(self, solver, x: Tensor, x0: Tensor, eps: Tensor, t: Tensor, s: Tensor | None) -> Tensor:
        return trajectory_point(solver, x, x0, eps, t, s)

    def sampling_kwargs(self) -> dict[str, Any]:
        return {"eta": 0.0}  # deterministic: the phase edges are the sampler's own timesteps

    def sampling_note(self, num_ddim_timesteps: int) -> str:
        counts = matching_step_counts(num_ddim_timesteps, self.phases)
        shown = ", ".join(str(n) for n in counts[:6]) + (", ..." if len(counts) > 6 else "")
        return (f"Trained with {self.phases} phase(s) on an N = {num_ddim_timesteps} grid: sample with `eta=0.0` "
                f"(deterministic); {shown} steps land exactly on the phase edges (fewer steps work but skip edges).")
