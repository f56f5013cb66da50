"""One training step exactly as ``lcm_exp.train.loop`` runs it, with phase marks for the benchmark harness.

Encoders turn a data batch into (latents, cond, uncond): ``FamilyEncoder`` runs the VAE and text encoders on every
step (the loop's default, and the reference), ``lcm_exp.data.latent_cache.CachedLatentEncoder`` reads them from a
latent cache. Phases: vae, text, ema (the lazy target-copy refresh), teacher, target, student_fwd, objective (noise,
solver and loss math), student_bwd, optimizer (clip, step, schedule, zero_grad), ema, sync.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch

from lcm_exp.conditioning import Conditioning
from lcm_exp.objective import DistillModels, StepOutput, distill_step
from lcm_exp.perf.clock import NULL_CLOCK, PhaseClock


class BatchEncoder(Protocol):
    def latents(self, batch: dict[str, Any]) -> torch.Tensor:
        """Clean latents z0 in the compute dtype, on the device."""

    def conditioning(self, batch: dict[str, Any]) -> tuple[Conditioning, Conditioning]:
        """(cond, uncond) on the device."""


class FamilyEncoder:
    """The VAE and text encoders on every step, as the loop (and the reference) do."""

    def __init__(self, family, weight_dtype: torch.dtype):
        self.family, self.weight_dtype = family, weight_dtype

    @torch.no_grad()
    def latents(self, batch: dict[str, Any]) -> torch.Tensor:
        # contiguous: the CPU VAE can hand back channels-last strides, which would silently switch the UNets'
        # convolutions to another kernel (other rounding) than latents read from a cache get
        return self.family.encode_images(batch["pixel_values"]).to(self.weight_dtype).contiguous()

    @torch.no_grad()
    def conditioning(self, batch: dict[str, Any]) -> tuple[Conditioning, Conditioning]:
        cond = self.family.encode_text(batch)
        return cond, self.family.unconditional(cond)


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


@dataclass
class TrainStep:
    """The loop's step: encode, ``distill_step`` under autocast, backward, clip, optimizer, schedule, EMA.

    It leaves out the loop's bookkeeping (skip counts, the non-finite guard, log windows, checkpoints).
    ``sync_every_step`` reads the loss back to the host after every step, as the reference's per-step logging does.
    """

    accelerator: Any
    encoder: BatchEncoder
    adapter: Any  # StudentAdapter
    prepared: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    solver: Any
    spec: Any
    max_grad_norm: float
    sync_every_step: bool = False
    clock: PhaseClock = NULL_CLOCK

    def __call__(self, batch: dict[str, Any]) -> tuple[StepOutput, torch.Tensor | None]:
        acc, clock = self.accelerator, self.clock
        with acc.accumulate(self.prepared):
            latents = self.encoder.latents(batch)
            clock.mark("vae")
            cond, uncond = self.encoder.conditioning(batch)
            clock.mark("text")
            models = self.adapter.distill_models()
            clock.mark("ema")
            with acc.autocast():
                out = distill_step(latents, cond, uncond, timed_models(models, clock), self.solver, self.spec, None)
            clock.mark("objective")
            acc.backward(out.loss)
            clock.mark("student_bwd")
            grad_norm = None
            if acc.sync_gradients:
                grad_norm = acc.clip_grad_norm_(self.adapter.trainable_parameters(), self.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            clock.mark("optimizer")
        if acc.sync_gradients:
            self.adapter.after_optimizer_step()
            clock.mark("ema")
        if self.sync_every_step:
            out.loss.item()
            clock.mark("sync")
        return out, grad_norm
