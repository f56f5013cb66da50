"""What the student is trained to hit: the one part in which LCD and its successors (TCD, PCM) differ.

``distill_step`` owns the shared plumbing (grid, noise, w, the teacher's guided jump to t_end, the target network
at t_end, the loss); an objective turns a network's (x0, eps) estimate at a position into the point the loss
compares, and names the diffusers scheduler that samples the trained student.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import torch

Tensor = torch.Tensor


class ConsistencyObjective(ABC):
    name: ClassVar[str]

    def end_points(self, idx: Tensor, solver, generator: torch.Generator | None) -> Tensor | None:
        """Per-sample positions the consistency function maps to, drawn after the step's own randomness (TCD's s,
        PCM's phase edge); None when the objective has none (LCD maps to x0)."""
        return None

    @abstractmethod
    def output(self, solver, x: Tensor, x0: Tensor, eps: Tensor, t: Tensor, s: Tensor | None) -> Tensor:
        """The consistency output for input ``x`` at positions ``t`` given the network's (x0, eps) estimate there."""

    #: schedule kind (NoiseSchedule.kind) -> (objective, teacher scheduler config, N) -> the diffusers scheduler
    #: that samples a student trained with this objective on that kind of teacher
    samplers: ClassVar[dict[str, Callable[..., Any]]]

    def inference_scheduler(self, schedule_kind: str, teacher_scheduler_config: dict[str, Any],
                            num_ddim_timesteps: int):  # fmt: skip
        """The exported scheduler: what generate, validation, evaluation and the model card use."""
        self.check_schedule(schedule_kind)
        return self.samplers[schedule_kind](self, teacher_scheduler_config, num_ddim_timesteps)

    def sampling_kwargs(self) -> dict[str, Any]:
        """Keyword arguments every sampling call passes to the pipeline / ``scheduler.step`` (TCD: its ``eta``,
        which StableDiffusionPipeline otherwise sets to 0)."""
        return {}

    def sampling_note(self, num_ddim_timesteps: int) -> str:
        """One sentence for the model card on how to sample this student (which step counts suit it)."""
        return ""

    def check_schedule(self, schedule_kind: str) -> None:
        """Raise ValueError when this objective has no sampler for ``schedule_kind`` (checked before training)."""
        if schedule_kind not in self.samplers:
            raise ValueError(f"objective.name={self.name!r} has no sampler for a {schedule_kind!r} teacher; "
                             f"supported: {', '.join(self.samplers)}")  # fmt: skip


def scheduler_from_teacher(cls, teacher_scheduler_config: dict[str, Any], **overrides: Any):
    """``cls.from_config`` on the teacher's scheduler config, without the keys ``cls`` does not take (a PNDM
    teacher's ``skip_prk_steps``), which diffusers would warn about on every export."""
    import inspect

    accepted = inspect.signature(cls.__init__).parameters
    config = {k: v for k, v in teacher_scheduler_config.items() if k in accepted or k.startswith("_")}
    return cls.from_config(config, **overrides)
