"""Phase marks inside a training step: ``mark(name)`` closes the phase that ran since the previous mark.

The step calls marks unconditionally; outside a benchmark they go to ``NULL_CLOCK`` and cost nothing. Phases: data,
vae, text, ema (the lazy target-copy refresh and the EMA update), teacher, target, student_fwd, objective (noise,
solver and loss math), student_bwd, optimizer (clip, step, schedule, zero_grad), sync.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from lcm_exp.objective import DistillModels


class PhaseClock(Protocol):
    def mark(self, phase: str) -> None:
        """Attribute the time since the previous mark to ``phase``."""


class _NullClock:
    def mark(self, phase: str) -> None:
        pass


NULL_CLOCK: PhaseClock = _NullClock()


def _timed(fn: Callable, clock: PhaseClock, phase: str) -> Callable:
    def call(*args):
        clock.mark("objective")
        out = fn(*args)
        clock.mark(phase)
        return out

    return call


def timed_models(models: DistillModels, clock: PhaseClock) -> DistillModels:
    """The same callables, each closing its own phase (everything between them is "objective")."""
    if clock is NULL_CLOCK:
        return models
    return replace(
        models,
        student=_timed(models.student, clock, "student_fwd"),
        teacher=_timed(models.teacher, clock, "teacher"),
        target=_timed(models.target, clock, "target"),
    )
