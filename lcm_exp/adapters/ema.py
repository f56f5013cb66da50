"""Exponential moving average of a parameter list, with fused foreach ops (no Python loop per tensor)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class EMA:
    """theta_target <- mu * theta_target + (1 - mu) * theta, applied on real optimizer steps only.

    ``target`` tensors are updated in place, so they can be the weights of a live target network. The state is
    a flat name -> tensor dict, so checkpoints store it as safetensors (nothing to unpickle on resume).
    """

    def __init__(
        self, source: Sequence[torch.Tensor], target: Sequence[torch.Tensor], decay: float, foreach: bool = True
    ):
        if len(source) != len(target):
            raise ValueError(f"EMA source has {len(source)} tensors, target {len(target)}")
        self.source, self.target, self.decay = list(source), list(target), decay
        #: False: the reference's Python loop (mul_ then add_ per tensor), kept for parity benchmarks (perf.ema_foreach)
        self.foreach = foreach

    @torch.no_grad()
    def update(self) -> None:
        if not self.foreach:
            for t, s in zip(self.target, self.source, strict=True):
                t.mul_(self.decay).add_(s.detach(), alpha=1.0 - self.decay)
            return
        src = [s.detach().to(t.dtype) for s, t in zip(self.source, self.target, strict=True)]
        torch._foreach_lerp_(self.target, src, 1.0 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {str(i): t.detach().contiguous() for i, t in enumerate(self.target)}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if len(state) != len(self.target):
            raise ValueError(f"EMA checkpoint has {len(state)} tensors, the model {len(self.target)}")
        for i, t in enumerate(self.target):
            t.copy_(state[str(i)])


class ComputeDtypeCopy:
    """A frozen copy of ``master`` in ``dtype``, refreshed from the master's current weights on demand.

    Under mixed precision the target network runs from this copy, refreshed after each EMA update, while the EMA
    itself stays float32 (its small steps are not rounded away); autocast would otherwise re-cast every float32
    weight on every op.
    """

    def __init__(self, master: torch.nn.Module, dtype: torch.dtype):
        import copy

        self.module = copy.deepcopy(master).to(dtype).requires_grad_(False).eval()
        self._dst = list(self.module.parameters())
        self._src = list(master.parameters())

    @torch.no_grad()
    def refresh(self) -> None:
        torch._foreach_copy_(self._dst, [s.detach() for s in self._src])
