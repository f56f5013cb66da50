"""The ``perf`` switches that live in the objective's spec, the DDIM solver and the optimizer."""

from __future__ import annotations

import dataclasses
import logging

import torch

from lcm_exp.objective import DDIMSolver, ObjectiveSpec, build_loss
from lcm_exp.objective.losses import LossFn

log = logging.getLogger(__name__)

SOLVER_DTYPES = {"fp32": torch.float32, "fp64": torch.float64}
ATTENTION = ("sdpa", "classic")


def check_perf(perf) -> None:
    """Raise ValueError naming the key for an unknown enumerated value."""
    if perf.solver_dtype not in SOLVER_DTYPES:
        raise ValueError(f"perf.solver_dtype={perf.solver_dtype!r}: choose one of {list(SOLVER_DTYPES)}")
    if perf.attention not in ATTENTION:
        raise ValueError(f"perf.attention={perf.attention!r}: choose one of {list(ATTENTION)}")


def build_solver(alphas_cumprod: torch.Tensor, num_ddim_timesteps: int, device, perf) -> DDIMSolver:
    """The DDIM solver with its step table in float32 on the device, or float64 (reference) with ``solver_dtype``."""
    check_perf(perf)
    return DDIMSolver(alphas_cumprod, num_ddim_timesteps, device=device, dtype=SOLVER_DTYPES[perf.solver_dtype])


def loss_from_config(loss_cfg) -> LossFn:
    """The loss named by the ``loss`` group, with its variant's parameters (huber_c, scale, ...)."""
    params = {k: v for k, v in dataclasses.asdict(loss_cfg).items() if k != "name"}
    return build_loss(loss_cfg.name, **params)


def objective_spec(prediction_type: str, loss: LossFn, guidance, objective, perf) -> ObjectiveSpec:
    """``ObjectiveSpec`` from the guidance / objective config groups plus the perf switches it carries."""
    return ObjectiveSpec(
        prediction_type=prediction_type,
        loss=loss,
        w_min=guidance.w_min,
        w_max=guidance.w_max,
        sigma_data=objective.sigma_data,
        timestep_scaling=objective.timestep_scaling_factor,
        teacher_single_pass=perf.teacher_single_pass,
        no_grad_first=perf.no_grad_first,
        host_side_sampling=perf.host_side_sampling,
    )


def build_optimizer(cfg, params: list[torch.nn.Parameter], lr: float, perf) -> torch.optim.Optimizer:
    """AdamW fused (one kernel for all tensors) wherever torch has the kernel, CPU included, or torch's default
    (reference: foreach on CUDA, a per-tensor loop on CPU); other optimizers (8-bit AdamW) come from
    ``lcm_exp.train.optim`` unchanged."""
    if cfg.name != "adamw":
        from lcm_exp.train.optim import build_eightbit_adamw

        return build_eightbit_adamw(cfg, params, lr)
    kwargs = dict(lr=lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, eps=cfg.eps)
    # CPU too: on torch 2.13 the fused CPU kernel's step is 3-4x faster than the per-tensor loop for the full
    # UNet and for LoRA's many small tensors alike (docs/performance.md, fused_optimizer row)
    if perf.fused_optimizer and params:
        if _fused_supported(params):
            return torch.optim.AdamW(params, fused=True, **kwargs)
        log.warning("fused AdamW has no kernel for these parameters; using torch's default implementation")
    return torch.optim.AdamW(params, foreach=None, fused=None, **kwargs)


def _fused_supported(params: list[torch.nn.Parameter]) -> bool:
    """Torch's own condition for ``fused=True``, checked up front: torch only checks it in the first ``step()``."""
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    devices = _get_fused_kernels_supported_devices()
    return all(p.device.type in devices and p.is_floating_point() for p in params)
