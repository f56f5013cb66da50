"""Per-sample distillation losses (lcd-facts item 13).

They return shape (B,) so the loop can log per-timestep losses; the step averages them. With equal-size samples
the mean of per-sample means equals the public scripts' mean over the whole batch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _per_sample_mean(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).mean(dim=1)


def l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean((pred - target)^2) per sample."""
    return _per_sample_mean((pred - target) ** 2)


def huber(pred: torch.Tensor, target: torch.Tensor, c: float = 0.001) -> torch.Tensor:
    """Pseudo-Huber with a constant c per element (the public scripts' `huber`): mean(sqrt(d^2 + c^2) - c)."""
    return _per_sample_mean(torch.sqrt((pred - target) ** 2 + c**2) - c)


def pseudo_huber(pred: torch.Tensor, target: torch.Tensor, scale: float = 0.00054) -> torch.Tensor:
    """Pseudo-Huber with c = scale * sqrt(d), d = elements per sample (improved consistency training)."""
    c = scale * pred.shape[1:].numel() ** 0.5
    return huber(pred, target, c)


_LOSSES: dict[str, tuple[Callable[..., torch.Tensor], dict[str, str]]] = {
    "l2": (l2, {}),
    "huber": (huber, {"huber_c": "c"}),
    "pseudo_huber": (pseudo_huber, {"scale": "scale"}),
}


def build_loss(name: str, **params: float) -> LossFn:
    """A per-sample loss by config name: "l2", "huber" (huber_c), "pseudo_huber" (scale)."""
    if name not in _LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid: {', '.join(_LOSSES)}")
    fn, param_names = _LOSSES[name]
    unknown = sorted(set(params) - set(param_names))
    if unknown:
        valid = ", ".join(param_names) or "none"
        raise ValueError(f"loss {name!r} got unknown parameter(s) {', '.join(unknown)}; valid: {valid}")
    kwargs = {param_names[k]: float(v) for k, v in params.items()}
    return functools.partial(fn, **kwargs)
