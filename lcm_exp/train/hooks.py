"""What the loop calls besides its own bookkeeping: hooks a higher layer hands to ``train`` (the evaluation's
learning curve), so the loop stays below the packages that judge its students."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol


class TrainingHook(Protocol):
    def after_update(self, step: int) -> None:
        """After each optimizer update (and its checkpoint / validation)."""

    def finish(self, step: int) -> dict[str, Any]:
        """At the end of training: the run metrics it adds."""


#: (the built Run, the run dir, the MetricsFile or None off the main process, the start step) -> a hook or None
HookFactory = Callable[[Any, Path, Any, int], "TrainingHook | None"]
