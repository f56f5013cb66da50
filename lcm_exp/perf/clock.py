"""Phase marks inside a training step: ``mark(name)`` closes the phase that ran since the previous mark.

The step code calls marks unconditionally; outside a benchmark they go to ``NULL_CLOCK`` and cost nothing.
"""

from __future__ import annotations

from typing import Protocol


class PhaseClock(Protocol):
    def mark(self, phase: str) -> None:
        """Attribute the time since the previous mark to ``phase``."""


class _NullClock:
    def mark(self, phase: str) -> None:
        pass


NULL_CLOCK: PhaseClock = _NullClock()
