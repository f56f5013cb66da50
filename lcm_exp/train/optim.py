"""The 8-bit optimizer and the learning-rate schedule from the ``optim`` config."""

from __future__ import annotations

import torch
from diffusers.optimization import get_scheduler


def build_eightbit_adamw(cfg, params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """bitsandbytes' 8-bit AdamW (``optim=adamw8bit``); plain AdamW is built by ``lcm_exp.perf.components``."""
    if cfg.name != "adamw8bit":
        raise ValueError(f"optim.name={cfg.name!r}: unknown, choose one of [adamw, adamw8bit]")
    try:
        import bitsandbytes as bnb
    except ImportError as e:  # pragma: no cover - bitsandbytes is a dependency
        raise ImportError("optim=adamw8bit needs bitsandbytes (pip install bitsandbytes)") from e
    return bnb.optim.AdamW8bit(params, lr=lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, eps=cfg.eps)


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
