"""The one training step every trainer runs (the loop, the benchmark): encode, distill_step, the non-finite guard,
backward, clip, optimizer, LR schedule, target update.

Gradient accumulation and non-finite losses: a micro-batch whose loss is not finite on some process is skipped
(no backward) and the rest of its window is kept; at the window's end the accumulated gradient is rescaled to the
mean over the window's good micro-batches, so the update is the one those micro-batches alone would give. A window
with no good micro-batch makes no update (no optimizer, schedule or EMA step) and does not count as a step. Under
DDP, when the window's last micro-batch (the one that would all-reduce) is skipped, the kept gradients are
averaged across processes explicitly, so the ranks stay in sync.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from lcm_exp.objective import StepOutput, distill_step
from lcm_exp.perf.clock import NULL_CLOCK, PhaseClock, timed_models
from lcm_exp.perf.switches import reference_autocast
from lcm_exp.train.encoders import BatchEncoder
from lcm_exp.train.nonfinite import NonFiniteGuard


@dataclass
class StepResult:
    out: StepOutput
    grad_norm: torch.Tensor | None  # at a window's end when it made an update
    window_end: bool  # the micro-batch closed a gradient-accumulation window
    updated: bool  # an optimizer update happened (the global step advances)
    finite: bool  # this micro-batch's loss was finite on every process (else it was skipped)


def all_ranks(accelerator, flag: torch.Tensor | bool) -> bool:
    """True when ``flag`` holds on every process (a collective only under DDP, so all ranks take the same branch)."""
    if accelerator.num_processes == 1:
        return bool(flag)
    flag = torch.as_tensor(flag, dtype=torch.float32, device=accelerator.device)
    return bool(accelerator.reduce(flag, reduction="sum") >= accelerator.num_processes)


@dataclass
class TrainStep:
    accelerator: Any
    encoder: BatchEncoder
    adapter: Any  # StudentAdapter
    prepared: torch.nn.Module
    optimizer: torch.optim.Optimizer
    lr_scheduler: Any
    solver: Any
    spec: Any  # ObjectiveSpec
    max_grad_norm: float
    guard: NonFiniteGuard
    sync_every_step: bool = False  # reference parity: the loss read back to the host every step
    autocast_like_reference: bool = False  # reference parity: the scripts' dtype-less autocast around the teacher
    cudnn_benchmark: bool = False  # cuDNN's per-shape kernel search (set per step: runs in one process may differ)
    clock: PhaseClock = NULL_CLOCK
    global_step: int = 0  # optimizer updates so far (the guard's step numbers)
    _good: int = field(default=0, repr=False)  # finite micro-batches in the open window

    def __call__(self, batch: dict[str, Any]) -> StepResult:
        acc, clock = self.accelerator, self.clock
        if acc.device.type == "cuda":
            torch.backends.cudnn.benchmark = self.cudnn_benchmark
        with acc.accumulate(self.prepared):
            latents = self.encoder.latents(batch)
            clock.mark("vae")
            cond, uncond = self.encoder.conditioning(batch)
            clock.mark("text")
            models = self.adapter.distill_models()
            if self.autocast_like_reference:
                models = reference_autocast(models, acc.device.type, self.adapter.target_is_student)
            clock.mark("ema")
            with acc.autocast():
                out = distill_step(latents, cond, uncond, timed_models(models, clock), self.solver, self.spec, None)
            clock.mark("objective")
            finite = self.guard.check(out, self.global_step + 1, all_ranks(acc, torch.isfinite(out.loss)))
            if finite:
                acc.backward(out.loss)
                self._good += 1
            clock.mark("student_bwd")
            window_end = acc.sync_gradients
            grad_norm, updated = (self._close_window(finite) if window_end else (None, False))
            clock.mark("optimizer")
        if updated:
            self.adapter.after_optimizer_step()
            self.global_step += 1
            clock.mark("ema")
        if self.sync_every_step:
            out.loss.item()
            clock.mark("sync")
        return StepResult(out, grad_norm, window_end, updated, finite)

    def _close_window(self, last_was_finite: bool) -> tuple[torch.Tensor | None, bool]:
        good, self._good = self._good, 0
        params = self.adapter.trainable_parameters()
        if not good:
            self.optimizer.zero_grad(set_to_none=True)
            return None, False
        accumulation = self.accelerator.gradient_accumulation_steps
        if not last_was_finite and self.accelerator.num_processes > 1:
            _average_across_ranks(self.accelerator, params)  # the skipped backward would have all-reduced
        if good < accumulation:  # each backward divided its loss by the window size: mean over good ones
            torch._foreach_mul_([p.grad for p in params if p.grad is not None], accumulation / good)
        grad_norm = self.accelerator.clip_grad_norm_(params, self.max_grad_norm)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm, True


@torch.no_grad()
def _average_across_ranks(accelerator, params: list[torch.nn.Parameter]) -> None:
    for p in params:
        if p.grad is not None:
            p.grad.copy_(accelerator.reduce(p.grad, reduction="mean"))
