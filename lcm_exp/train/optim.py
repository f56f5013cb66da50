"""The optimizer and the learning-rate schedule from the ``optim`` config."""

from __future__ import annotations

import logging

import torch
from diffusers.optimization import get_scheduler

log = logging.getLogger(__name__)


def build_optimizer(cfg, params: list[torch.nn.Parameter], lr: float, fused: bool = True) -> torch.optim.Optimizer:
    """AdamW, fused (one kernel for all tensors) wherever torch has the kernel, CPU included, or torch's default
    with ``fused=False`` (``perf.fused_optimizer``; reference: foreach on CUDA, a per-tensor loop on CPU); or
    bitsandbytes' 8-bit AdamW (``optim=adamw8bit``)."""
    if cfg.name == "adamw8bit":
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(params, lr=lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, eps=cfg.eps)
    kwargs = dict(lr=lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, eps=cfg.eps)
    # CPU too: on torch 2.13 the fused CPU kernel's step is 3-4x faster than the per-tensor loop for the full
    # UNet and for LoRA's many small tensors alike (docs/performance.md, fused_optimizer row)
    if fused and params:
        if _fused_supported(params):
            return torch.optim.AdamW(params, fused=True, **kwargs)
        log.warning("fused AdamW has no kernel for these parameters; using torch's default implementation")
    return torch.optim.AdamW(params, foreach=None, fused=None, **kwargs)


def _fused_supported(params: list[torch.nn.Parameter]) -> bool:
    """Torch's own condition for ``fused=True``, checked up front: torch only checks it in the first ``step()``."""
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    devices = _get_fused_kernels_supported_devices()
    return all(p.device.type in devices and p.is_floating_point() for p in params)


def build_scheduler(cfg, optimizer, max_train_steps: int, num_processes: int):
    """A diffusers schedule counted in optimizer steps.

    accelerate steps a prepared scheduler once per process on each optimizer step, so the step counts given to
    diffusers are multiplied by the process count (as the reference scripts do).
    """
    return get_scheduler(
        cfg.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=cfg.lr_warmup_steps * num_processes,
        num_training_steps=max_train_steps * num_processes,
    )
