"""One Latent Consistency Distillation step (lcd-facts items 4-13) as a pure function.

The student's consistency prediction at t_start is pulled towards the target network's prediction at t_end, where
z_prev comes from one guided DDIM jump of the teacher. Everything random is drawn before any network runs, so the
call order (reference: student first; default: no-grad passes first, for lower peak memory) and one-vs-two teacher
passes do not change the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from lcm_exp.conditioning import Conditioning
from lcm_exp.objective.guidance import apply_cfg, guidance_embedding, sample_guidance
from lcm_exp.objective.losses import LossFn
from lcm_exp.objective.parameterization import PREDICTION_TYPES, predicted_x0_eps
from lcm_exp.objective.scalings import boundary_scalings
from lcm_exp.objective.solver import DDIMSolver

Tensor = torch.Tensor


def unet_fn(unet: torch.nn.Module) -> Callable[..., Tensor]:
    """Adapt a diffusers UNet to the objective's call (x_t, t, cond, w_emb=None) -> raw output."""

    def call(x: Tensor, t: Tensor, cond: Conditioning, w_emb: Tensor | None = None) -> Tensor:
        return unet(x, t, timestep_cond=w_emb, **cond.unet_kwargs()).sample

    return call


@dataclass
class DistillModels:
    student: Callable[[Tensor, Tensor, Conditioning, Tensor | None], Tensor]  # raw output, with grad
    teacher: Callable[[Tensor, Tensor, Conditioning], Tensor]  # run under no_grad
    target: Callable[[Tensor, Tensor, Conditioning, Tensor | None], Tensor]  # run under no_grad (EMA or student)
    guidance_embedding_dim: int | None  # None: student/target get w_emb=None (plain LoRA, w-averaged student)


@dataclass
class ObjectiveSpec:
    prediction_type: str
    loss: LossFn  # per-sample, (B,)
    w_min: float
    w_max: float
    sigma_data: float = 0.5
    timestep_scaling: float = 10.0
    teacher_single_pass: bool = True  # cond+uncond as one 2B teacher call (False: two calls, reference parity)
    no_grad_first: bool = True  # teacher+target before the student (lower peak memory); False: reference order
    host_side_sampling: bool = False  # w and its embedding made on the CPU, then copied (reference parity)

    def __post_init__(self) -> None:
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"unknown prediction_type {self.prediction_type!r}; valid: {', '.join(PREDICTION_TYPES)}")
        if self.w_min > self.w_max:
            raise ValueError(f"w_min ({self.w_min}) must not exceed w_max ({self.w_max})")


@dataclass
class StepOutput:
    loss: Tensor  # scalar, mean of per_sample_loss, with grad
    per_sample_loss: Tensor  # (B,) detached
    start_timesteps: Tensor  # (B,)
    end_timesteps: Tensor  # (B,)
    w: Tensor  # (B,) LCM-paper guidance scale
    pred_rms: Tensor  # (B,) detached RMS of the student's consistency prediction
    target_rms: Tensor  # (B,) detached RMS of the target


def _rms(x: Tensor) -> Tensor:
    return x.detach().float().pow(2).flatten(1).mean(dim=1).sqrt()


def distill_step(
    latents: Tensor,
    cond: Conditioning,
    uncond: Conditioning,
    models: DistillModels,
    solver: DDIMSolver,
    spec: ObjectiveSpec,
    generator: torch.Generator | None,
) -> StepOutput:
    """Loss of one LCD step on clean latents z0 (B, C, H, W); backward is the caller's."""
    batch = latents.shape[0]
    if len(cond) != batch or len(uncond) != batch:
        raise ValueError(f"batch sizes differ: latents {batch}, cond {len(cond)}, uncond {len(uncond)}")

    # All randomness first, in this order: grid index, noise, guidance scale.
    idx = solver.sample_indices(batch, generator)
    draw_on = generator.device if generator is not None else latents.device
    eps = torch.randn(latents.shape, generator=generator, device=draw_on).to(latents.device, latents.dtype)
    dim = models.guidance_embedding_dim
    if spec.host_side_sampling:
        # The reference draws w from the global CPU generator and builds its embedding there; a device generator
        # cannot draw on the CPU, so it is used only when it is a CPU one.
        host_gen = generator if generator is not None and generator.device.type == "cpu" else None
        w = sample_guidance(batch, spec.w_min, spec.w_max, host_gen, "cpu")
        w_emb = None if dim is None else guidance_embedding(w, dim, dtype=latents.dtype).to(latents.device)
        w = w.to(latents.device)
    else:
        w = sample_guidance(batch, spec.w_min, spec.w_max, generator, latents.device)
        w_emb = None if dim is None else guidance_embedding(w, dim, dtype=latents.dtype)

    t_start, t_end = solver.start_timesteps(idx), solver.end_timesteps(idx)
    z_t = solver.add_noise(latents, eps, idx)
    a_s, s_s = solver.alpha_sigma(t_start, latents.ndim)
    a_e, s_e = solver.alpha_sigma(t_end, latents.ndim)
    c_skip_s, c_out_s = (c.reshape_as(a_s) for c in boundary_scalings(t_start, spec.sigma_data, spec.timestep_scaling))
    c_skip_e, c_out_e = (c.reshape_as(a_e) for c in boundary_scalings(t_end, spec.sigma_data, spec.timestep_scaling))

    def student_prediction() -> Tensor:
        x0, _ = predicted_x0_eps(models.student(z_t, t_start, cond, w_emb), z_t, a_s, s_s, spec.prediction_type)
        return c_skip_s * z_t + c_out_s * x0

    @torch.no_grad()
    def target_prediction() -> Tensor:
        if spec.teacher_single_pass:
            out = models.teacher(torch.cat([z_t, z_t]), torch.cat([t_start, t_start]), cond.cat(uncond))
            out_c, out_u = out.chunk(2)
        else:
            out_c, out_u = models.teacher(z_t, t_start, cond), models.teacher(z_t, t_start, uncond)
        x0_c, eps_c = predicted_x0_eps(out_c, z_t, a_s, s_s, spec.prediction_type)
        x0_u, eps_u = predicted_x0_eps(out_u, z_t, a_s, s_s, spec.prediction_type)
        # w stays float32 here (the public scripts cast it to the latents' dtype first; same in fp32).
        z_prev = solver.ddim_step(apply_cfg(x0_c, x0_u, w), apply_cfg(eps_c, eps_u, w), idx).to(latents.dtype)
        x0, _ = predicted_x0_eps(models.target(z_prev, t_end, cond, w_emb), z_prev, a_e, s_e, spec.prediction_type)
        return c_skip_e * z_prev + c_out_e * x0

    if spec.no_grad_first:
        target = target_prediction()
        pred = student_prediction()
    else:
        pred = student_prediction()
        target = target_prediction()

    loss_dtype = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    per_sample = spec.loss(pred.to(loss_dtype), target.to(loss_dtype))
    if per_sample.shape != (batch,):
        raise ValueError(f"spec.loss must return per-sample losses of shape ({batch},), got {tuple(per_sample.shape)}")
    return StepOutput(
        loss=per_sample.mean(),
        per_sample_loss=per_sample.detach(),
        start_timesteps=t_start,
        end_timesteps=t_end,
        w=w,
        pred_rms=_rms(pred),
        target_rms=_rms(target),
    )
