"""``PerfAdapter``: any student adapter plus the perf switches that concern its target network.

Wrapping keeps the adapters free of benchmark knobs: the wrapper sets the EMA mode (foreach or the reference's
Python loop) and, under mixed precision, runs the target network from a copy stored in the compute dtype that is
refreshed from the float32 EMA weights after each EMA update (the EMA itself stays float32, so its small steps
are not rounded away; autocast would otherwise re-cast the float32 target's weights on every op).
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch

from lcm_exp.adapters.base import StudentAdapter
from lcm_exp.objective import DistillModels, unet_fn


class ComputeDtypeCopy:
    """A frozen copy of ``master`` in ``dtype``; ``refresh`` copies the master's current weights into it."""

    def __init__(self, master: torch.nn.Module, dtype: torch.dtype):
        self.module = copy.deepcopy(master).to(dtype).requires_grad_(False).eval()
        self._dst = list(self.module.parameters())
        self._src = list(master.parameters())

    @torch.no_grad()
    def refresh(self) -> None:
        torch._foreach_copy_(self._dst, [s.detach() for s in self._src])


class PerfAdapter(StudentAdapter):
    def __init__(self, inner: StudentAdapter, perf, compute_dtype: torch.dtype):
        self.inner = inner
        self.recommended_guidance_scale = inner.recommended_guidance_scale
        self.checkpoint_state = inner.checkpoint_state
        ema = getattr(inner, "ema", None)
        if ema is not None:
            ema.foreach = perf.ema_foreach
        target = getattr(inner, "target", None)  # a separate target network (full adapter), else None
        self.target_copy: ComputeDtypeCopy | None = None
        if (
            perf.frozen_weights_in_compute_dtype
            and compute_dtype != torch.float32
            and isinstance(target, torch.nn.Module)
        ):
            self.target_copy = ComputeDtypeCopy(target, compute_dtype)
        self._stale = True  # refreshed lazily, so weights loaded by a resume are picked up by the first step

    @property
    def trainable_module(self) -> torch.nn.Module:
        return self.inner.trainable_module

    def bind(self, prepared: torch.nn.Module) -> None:
        self.inner.bind(prepared)

    def distill_models(self) -> DistillModels:
        models = self.inner.distill_models()
        if self.target_copy is None:
            return models
        if self._stale:
            self.target_copy.refresh()
            self._stale = False
        return replace(models, target=unet_fn(self.target_copy.module))

    def after_optimizer_step(self) -> None:
        self.inner.after_optimizer_step()
        self._stale = True

    def inference_unet(self):
        return self.inner.inference_unet()

    def export(self, model_dir, pipeline_class, **kwargs) -> list[str]:
        return self.inner.export(model_dir, pipeline_class, **kwargs)

    def __getattr__(self, name: str):
        """Everything else (model-card text, recommended steps, ...) is the wrapped adapter's."""
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def unets(self) -> list[torch.nn.Module]:
        """Every UNet this adapter runs besides the family's teacher (student, target, target copy)."""
        inner_target = getattr(self.inner, "target", None)
        copy_module = self.target_copy.module if self.target_copy is not None else None
        return [m for m in (self.inner.trainable_module, inner_target, copy_module) if isinstance(m, torch.nn.Module)]
