"""Small training helpers shared by the toy VAE, teacher and classifier recipes (no accelerate: one CPU process)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook
from tqdm.auto import tqdm


def cosine_lr(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warmup then cosine decay to 0."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return base * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def index_batches(n: int, batch: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless shuffled epochs of row indices, from ``generator`` only."""
    while True:
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n - batch + 1, batch):
            yield perm[i : i + batch]


class EMA:
    """Exponential moving average of a module's parameters with the usual warmup ``min(decay, (1+s)/(10+s))``."""

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = [p.detach().clone() for p in module.parameters()]
        self.updates = 0

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in module.parameters()], 1.0 - decay)

    @torch.no_grad()
    def copy_to(self, module: torch.nn.Module) -> None:
        for p, s in zip(module.parameters(), self.shadow, strict=True):
            p.copy_(s)


def fit_text_conditioned(
    net: torch.nn.Module,
    latents: torch.Tensor,
    caption_ids: torch.Tensor,
    prompt_rows: int,
    loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    steps: int,
    batch: int,
    lr: float,
    caption_dropout: float,
    ema_decay: float,
    generator: torch.Generator,
    log: logging.Logger,
    name: str,
) -> torch.nn.Module:
    """The toy teachers' shared training loop: AdamW with cosine LR, caption dropout to row 0 (the empty prompt of the
    ``prompt_rows`` encodings), gradient clipping, EMA. ``loss_of(z0, ids)`` draws its own timesteps and noise from
    ``generator`` (after the dropout draw) and returns the batch loss. Progress lines go to the caller's ``log`` (a
    build phase's bar reads them there). Returns ``net`` holding the EMA weights."""
    if prompt_rows < 2 or not bool((caption_ids > 0).all()):
        raise ValueError("prompt_embeds row 0 must be the empty prompt and every caption id must be >= 1")
    device = next(net.parameters()).device
    net.train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)
    ema = EMA(net, ema_decay)
    batches = index_batches(latents.shape[0], batch, generator)
    for step in range(steps):
        set_lr(optimizer, cosine_lr(step, steps, lr, warmup=max(steps // 20, 1)))
        idx = next(batches)
        z0 = latents[idx].to(device)
        ids = torch.where(torch.rand(batch, generator=generator) < caption_dropout, 0, caption_ids[idx])
        loss = loss_of(z0, ids)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        ema.update(net)
        if (step + 1) % max(steps // 10, 1) == 0:
            log.info("%s: step %d/%d, loss %.4f", name, step + 1, steps, loss.item())
    ema.copy_to(net)
    return net.eval().requires_grad_(False)


class _ToBar(logging.Filter):
    """Turns a phase's own progress lines ("step i/n, loss x") into the bar's postfix instead of printing them."""

    def __init__(self, bar):
        super().__init__()
        self.bar = bar

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        self.bar.set_postfix_str(record.getMessage().rsplit(", ", 1)[-1], refresh=False)
        return False


@contextmanager
def phase_progress(desc: str, total: int, logger_name: str | None = None):
    """A progress bar with an ETA over one build phase of ``total`` optimizer steps (counted by torch's global
    optimizer-step hook, so the training functions need no callback); ``logger_name``'s step lines feed its postfix."""
    bar = tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True)
    hook = register_optimizer_step_post_hook(lambda *_: bar.update(1))
    logger = logging.getLogger(logger_name) if logger_name else None
    to_bar = _ToBar(bar)
    if logger:
        logger.addFilter(to_bar)
    try:
        yield bar
    finally:
        hook.remove()
        if logger:
            logger.removeFilter(to_bar)
        bar.close()
