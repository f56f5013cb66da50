"""How a student is made from the teacher, and where the teacher and the target come from.

The loop sees only this interface: it never asks whether the student is a full UNet or a LoRA.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from pathlib import Path

import torch

from lcm_exp.objective import DistillModels


class StudentAdapter(ABC):
    #: diffusers ``guidance_scale`` (= w + 1) recommended at inference, written into the model card
    recommended_guidance_scale: float
    #: name -> object with a tensor ``state_dict`` saved in checkpoints besides the trained module (the EMA)
    checkpoint_state: dict

    @property
    @abstractmethod
    def trainable_module(self) -> torch.nn.Module:
        """The module whose parameters the optimizer trains (accelerate prepares it: DDP, autocast)."""

    @abstractmethod
    def bind(self, prepared: torch.nn.Module) -> None:
        """Use the accelerate-prepared module for the student's forward pass."""

    @abstractmethod
    def distill_models(self) -> DistillModels:
        """Student (with grad), teacher and target (no grad) as callables for ``distill_step``."""

    @abstractmethod
    def after_optimizer_step(self) -> None:
        """Update the target network after a real optimizer step."""

    @abstractmethod
    def inference_unet(self) -> AbstractContextManager[torch.nn.Module]:
        """A context giving the UNet that validation pipelines should run (EMA or online student)."""

    @abstractmethod
    def export(self, model_dir: Path, pipeline_class) -> list[str]:
        """Write the student in a format diffusers loads; return the written files relative to model_dir."""

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.trainable_module.parameters() if p.requires_grad]
