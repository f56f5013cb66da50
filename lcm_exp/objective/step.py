"""One consistency-distillation step (lcd-facts items 4-13) as a pure function.

The student's consistency output at t_start is pulled towards the target network's output at t_end, where z_prev
comes from one guided jump of the teacher. What "consistency output" means is the objective's (LCD: x0 under the
boundary scalings; TCD, PCM: a point on the trajectory); everything else is shared. Everything random is drawn
before any network runs, so the call order (reference: student first; default: no-grad passes first, for lower
peak memory) and one-vs-two teacher passes do not change the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from lcm_exp.conditioning import Conditioning
from lcm_exp.objective.consistency import ConsistencyObjective
from lcm_exp.objective.guidance import apply_cfg, guidance_embedding, sample_guidance
from lcm_exp.objective.lcd import LCD
from lcm_exp.objective.losses import LossFn
from lcm_exp.objective.solver import DDIMSolver

Tensor = torch.Tensor
#: a network as the step calls it: (x_t, model time, conditioning, w embedding or None) -> raw output
Network = Callable[..., Tensor]


@dataclass
class DistillModels:
    student: Network  # with grad
    teacher: Network  # run under no_grad, called as (x, t, cond)
    target: Network  # run under no_grad (EMA or the student itself)
    guidance_embedding_dim: int | None  # None: student/target get w_emb=None (plain LoRA, w-averaged student)


@dataclass
class ObjectiveSpec:
    loss: LossFn  # per-sample, (B,)
    w_min: float
    w_max: float
    objective: ConsistencyObjective = field(default_factory=LCD)
    teacher_single_pass: bool = True  # cond+uncond as one 2B teacher call (False: two calls, reference parity)
    no_grad_first: bool = True  # teacher+target before the student (lower peak memory); False: reference order
    host_side_sampling: bool = False  # w and its embedding made on the CPU, then copied (reference parity)

    def __post_init__(self) -> None:
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


def _guidance(batch: int, spec: ObjectiveSpec, dim: int | None, generator, latents: Tensor):
    """w ~ U[w_min, w_max] and its embedding; with ``host_side_sampling`` drawn and built on the CPU (reference)."""
    if spec.host_side_sampling:
        # The reference draws w from the global CPU generator and builds its embedding there; a device generator
        # cannot draw on the CPU, so it is used only when it is a CPU one.
        host_gen = generator if generator is not None and generator.device.type == "cpu" else None
        w = sample_guidance(batch, spec.w_min, spec.w_max, host_gen, "cpu")
        w_emb = None if dim is None else guidance_embedding(w, dim, dtype=latents.dtype).to(latents.device)
        return w.to(latents.device), w_emb
    w = sample_guidance(batch, spec.w_min, spec.w_max, generator, latents.device)
    return w, None if dim is None else guidance_embedding(w, dim, dtype=latents.dtype)


def distill_step(
    latents: Tensor,
    cond: Conditioning,
    uncond: Conditioning,
    models: DistillModels,
    solver: DDIMSolver,
    spec: ObjectiveSpec,
    generator: torch.Generator | None,
) -> StepOutput:
    """Loss of one step on clean latents z0 (B, C, H, W); backward is the caller's."""
    batch = latents.shape[0]
    if len(cond) != batch or len(uncond) != batch:
        raise ValueError(f"batch sizes differ: latents {batch}, cond {len(cond)}, uncond {len(uncond)}")

    # All randomness first, in this order: grid index, noise, guidance scale, the objective's own draws.
    idx = solver.sample_indices(batch, generator)
    draw_on = generator.device if generator is not None else latents.device
    eps = torch.randn(latents.shape, generator=generator, device=draw_on).to(latents.device, latents.dtype)
    w, w_emb = _guidance(batch, spec, models.guidance_embedding_dim, generator, latents)
    objective = spec.objective
    s = objective.end_points(idx, solver, generator)

    t_start, t_end = solver.start_timesteps(idx), solver.end_timesteps(idx)
    time_start, time_end = solver.model_time(t_start), solver.model_time(t_end)
    z_t = solver.add_noise(latents, eps, idx)

    def student_prediction() -> Tensor:
        x0, eps_s = solver.x0_eps(models.student(z_t, time_start, cond, w_emb), z_t, t_start)
        return objective.output(solver, z_t, x0, eps_s, t_start, s)

    @torch.no_grad()
    def target_prediction() -> Tensor:
        if spec.teacher_single_pass:
            out = models.teacher(torch.cat([z_t, z_t]), torch.cat([time_start, time_start]), cond.cat(uncond))
            out_c, out_u = out.chunk(2)
        else:
            out_c, out_u = models.teacher(z_t, time_start, cond), models.teacher(z_t, time_start, uncond)
        x0_c, eps_c = solver.x0_eps(out_c, z_t, t_start)
        x0_u, eps_u = solver.x0_eps(out_u, z_t, t_start)
        # w stays float32 here (the public scripts cast it to the latents' dtype first; same in fp32).
        z_prev = solver.ddim_step(apply_cfg(x0_c, x0_u, w), apply_cfg(eps_c, eps_u, w), idx).to(latents.dtype)
        x0, eps_t = solver.x0_eps(models.target(z_prev, time_end, cond, w_emb), z_prev, t_end)
        return objective.output(solver, z_prev, x0, eps_t, t_end, s)

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
