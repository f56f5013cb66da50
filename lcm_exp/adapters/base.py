"""How a student is made from the teacher, where the teacher and the target come from, and how it is exported.

The loop, the benchmark, export, evaluation and generate see only this interface: none of them asks whether the
student is a full network or a LoRA. Everything they use is declared here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from lcm_exp.objective import DistillModels


@dataclass(frozen=True)
class AdapterOptions:
    """How the adapter stores and updates what it holds (from trainer.* and the perf switches)."""

    compute_dtype: torch.dtype = torch.float32  # the student's compute dtype (trainer.mixed_precision)
    frozen_dtype: torch.dtype = torch.float32  # the no-grad networks' dtype (perf.frozen_dtype): the target's copy
    ema_foreach: bool = True  # fused EMA update (False: the reference's Python loop)
    gradient_checkpointing: bool = False


DEFAULT_OPTIONS = AdapterOptions()  # frozen: one shared default is safe


class StudentAdapter(ABC):
    #: model-card and generate defaults: diffusers ``guidance_scale`` (= w + 1) recommended at inference
    recommended_guidance_scale: float
    recommended_steps: ClassVar[int] = 4
    steps_range: ClassVar[tuple[int, int]] = (2, 8)
    #: one paragraph for the model card on how this student handles guidance
    guidance_note: ClassVar[str]
    #: name -> object with a tensor ``state_dict``/``load_state_dict`` saved in checkpoints (the EMA)
    checkpoint_state: dict[str, Any]
    #: the target pass runs the student network itself (LoRA), not a separate target network (full)
    target_is_student: ClassVar[bool] = False

    @property
    @abstractmethod
    def trainable_module(self) -> torch.nn.Module:
        """The module whose parameters the optimizer trains (accelerate prepares it: DDP, autocast)."""

    @abstractmethod
    def bind(self, prepared: torch.nn.Module) -> None:
        """Use the accelerate-prepared module for the student's forward pass."""

    @abstractmethod
    def networks(self) -> list[torch.nn.Module]:
        """Every network this adapter runs besides the family's own (student, target, compute-dtype copies):
        attention kernels, memory format and compilation apply to each."""

    @abstractmethod
    def distill_models(self) -> DistillModels:
        """Student (with grad), teacher and target (no grad) as callables for ``distill_step``."""

    @abstractmethod
    def after_optimizer_step(self) -> None:
        """Update the target network after a real optimizer step."""

    @abstractmethod
    def inference_denoiser(self) -> AbstractContextManager[torch.nn.Module]:
        """A context giving the denoiser that validation and in-loop evaluation run (EMA or online student)."""

    @abstractmethod
    def export(self, model_dir: Path, pipeline_class, *, fp16_variant: bool = False) -> list[str]:
        """Write the student in a format diffusers loads; return the written files relative to model_dir."""

    @abstractmethod
    def usage_code(self, pipeline: str, teacher: str, model_ref: str, scheduler: str, *,
                   fp16_variant: bool = False, call_kwargs: str = "") -> str:  # fmt: skip
        """A diffusers snippet that loads this student with its exported scheduler class (the model card's);
        ``call_kwargs`` (e.g. ", eta=0.3") is appended to its pipeline call."""

    @classmethod
    @abstractmethod
    def load_student(cls, pipe, component: str, model_dir: Path, dtype: torch.dtype) -> None:
        """Put the student exported in ``model_dir`` into a teacher pipeline, in place (``component``: the
        pipeline's denoiser attribute, e.g. "unet"); what evaluation and generate load."""

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.trainable_module.parameters() if p.requires_grad]
