"""Exponential moving average of a parameter list, with fused foreach ops (no Python loop per tensor)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class EMA:
    """theta_target <- mu * theta_target + (1 - mu) * theta, applied on real optimizer steps only.

    ``target`` tensors are updated in place, so they can be the weights of a live target network.
    """

    def __init__(self, source: Sequence[torch.Tensor], target: Sequence[torch.Tensor], decay: float):
        if len(source) != len(target):
            raise ValueError(f"EMA source has {len(source)} tensors, target {len(target)}")
        self.source, self.target, self.decay = list(source), list(target), decay

    @torch.no_grad()
    def update(self) -> None:
        src = [s.detach().to(t.dtype) for s, t in zip(self.source, self.target)]
        torch._foreach_lerp_(self.target, src, 1.0 - self.decay)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "target": [t.detach().clone() for t in self.target]}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        with torch.no_grad():
            for t, saved in zip(self.target, state["target"]):
                t.copy_(saved)
