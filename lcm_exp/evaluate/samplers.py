"""The samplers being compared, each starting from the same initial noise and conditioning.

The teacher's baselines and the student's exported scheduler (LCMScheduler, TCDScheduler with its gamma as eta,
FlowMatchLCMScheduler, ...) are diffusers' own schedulers, stepped with batched tensors exactly as their pipelines
step them, at the schedulers' own timesteps (DDPM: integer positions; flow: float 1000 sigma), so the numbers
describe what a diffusers user gets. Each student scheduler may also have a deterministic variant: for LCMScheduler
and FlowMatchLCMScheduler (fresh noise between steps) one written here that re-noises the consistency output with
the model's own noise estimate (a DDIM-like step, keeping the trajectory of the first step); for TCDScheduler
gamma = 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers import FlowMatchLCMScheduler, LCMScheduler

from lcm_exp.conditioning import Conditioning
from lcm_exp.objective import apply_cfg, guidance_embedding, predicted_x0_eps


class Denoiser:
    """A network as the samplers run it: its family's call convention, in the network's own dtype. ``call`` replaces
    the network's own call (the teacher of a LoRA student: the shared network with its adapters disabled)."""

    def __init__(self, family, network: torch.nn.Module, call: Callable | None = None):
        self.network, self.dtype = network, network.dtype
        self.call = call or family.denoiser_fn(network)
        self.embedding_dim = family.w_embedding_dim(network)  # a student that embeds w
        if call is not None:
            self.embedding_dim = None  # a replaced call is a teacher: it takes no w embedding


def _call(net: Denoiser, x: torch.Tensor, t, cond: Conditioning, w_emb: torch.Tensor | None) -> torch.Tensor:
    ts = torch.as_tensor(t, device=x.device).reshape(()).expand(x.shape[0])  # the scheduler's own timestep dtype
    dtype = net.dtype
    return net.call(x.to(dtype), ts, cond.to(dtype=dtype), w_emb).float()


def guided_output(net: Denoiser, x: torch.Tensor, t, cond: Conditioning, uncond: Conditioning, w: float):
    """Teacher output with classifier-free guidance cond + w (cond - uncond), one 2B pass; w = 0: cond only."""
    if w == 0:
        return _call(net, x, t, cond, None)
    out_c, out_u = _call(net, torch.cat([x, x]), t, cond.cat(uncond), None).chunk(2)
    return apply_cfg(out_c, out_u, w)


@torch.no_grad()
def teacher_sample(
    net: Denoiser, scheduler, x: torch.Tensor, steps: int, cond: Conditioning, uncond: Conditioning, w: float,
    **step_kwargs: Any,
) -> torch.Tensor:  # fmt: skip
    """A teacher baseline: the scheduler with its own spacing (DDIM: eta 0 in ``step_kwargs``); the final latents."""
    scheduler.set_timesteps(steps, device=x.device)
    for t in scheduler.timesteps:
        x = scheduler.step(guided_output(net, x, t, cond, uncond, w), t, x, **step_kwargs).prev_sample
    return x


def student_embedding(net: Denoiser, w: float, batch: int, device) -> torch.Tensor | None:
    """The student's w embedding (what LCM pipelines feed ``timestep_cond``); None for a UNet without cond_proj."""
    dim = net.embedding_dim
    if dim is None:
        return None
    return guidance_embedding(torch.full((batch,), float(w), device=device), dim)


@torch.no_grad()
def student_sample(
    net: Denoiser, scheduler, x: torch.Tensor, steps: int, cond: Conditioning, w: float,
    noise_generators: Sequence[torch.Generator], **step_kwargs: Any,
) -> torch.Tensor:  # fmt: skip
    """The student's exported scheduler, multistep as its pipeline runs it (its last step adds no noise); fresh noise
    between steps, where the scheduler draws any, from one generator per sample."""
    scheduler.set_timesteps(steps, device=x.device)
    w_emb = student_embedding(net, w, x.shape[0], x.device)
    for t in scheduler.timesteps:
        out = _call(net, x, t, cond, w_emb)
        x = scheduler.step(out, t, x, generator=list(noise_generators), return_dict=False, **step_kwargs)[0]
    return x


@torch.no_grad()
def lcm_deterministic_sample(
    net: Denoiser, scheduler: LCMScheduler, x: torch.Tensor, steps: int, cond: Conditioning, w: float,
) -> torch.Tensor:  # fmt: skip
    """LCMScheduler's timesteps and boundary scalings, but x_next = a * denoised + s * eps_model (no fresh noise)."""
    scheduler.set_timesteps(steps, device=x.device)
    w_emb = student_embedding(net, w, x.shape[0], x.device)
    ac = scheduler.alphas_cumprod.to(x.device, torch.float32)
    prediction_type = scheduler.config.prediction_type
    timesteps = [int(t) for t in scheduler.timesteps]
    for i, t in enumerate(timesteps):
        out = _call(net, x, t, cond, w_emb)
        x0, eps = predicted_x0_eps(out, x, ac[t].sqrt(), (1 - ac[t]).sqrt(), prediction_type)
        c_skip, c_out = scheduler.get_scalings_for_boundary_condition_discrete(t)
        denoised = c_skip * x + c_out * x0
        if i == len(timesteps) - 1:
            return denoised
        nxt = timesteps[i + 1]
        x = ac[nxt].sqrt() * denoised + (1 - ac[nxt]).sqrt() * eps
    raise ValueError("steps must be >= 1")


@torch.no_grad()
def flow_lcm_deterministic_sample(
    net: Denoiser, scheduler: FlowMatchLCMScheduler, x: torch.Tensor, steps: int, cond: Conditioning, w: float,
) -> torch.Tensor:  # fmt: skip
    """FlowMatchLCMScheduler's sigmas and its x0 = x - sigma v, but x_next = (1 - s') x0 + s' eps_model with the
    model's own noise estimate eps_model = x + (1 - sigma) v instead of fresh noise; the final step returns x0."""
    scheduler.set_timesteps(steps, device=x.device)
    w_emb = student_embedding(net, w, x.shape[0], x.device)
    sigmas = scheduler.sigmas  # float32, the terminal 0 appended
    for i, t in enumerate(scheduler.timesteps):
        v = _call(net, x, t, cond, w_emb)
        sigma, nxt = sigmas[i], sigmas[i + 1]
        x0, eps = x - sigma * v, x + (1 - sigma) * v
        x = (1 - nxt) * x0 + nxt * eps if i < steps - 1 else x0
    return x


def _lcm_deterministic(net, scheduler, x, steps, cond, w, noise_generators, **step_kwargs):
    return lcm_deterministic_sample(net, scheduler, x, steps, cond, w)


def _flow_lcm_deterministic(net, scheduler, x, steps, cond, w, noise_generators, **step_kwargs):
    return flow_lcm_deterministic_sample(net, scheduler, x, steps, cond, w)


def _without_noise(net, scheduler, x, steps, cond, w, noise_generators, **step_kwargs):
    return student_sample(net, scheduler, x, steps, cond, w, noise_generators, **{**step_kwargs, "eta": 0.0})


#: student scheduler class -> (label of its deterministic variant, the sampler)
DETERMINISTIC: dict[str, tuple[str, Callable[..., torch.Tensor]]] = {
    "LCMScheduler": ("deterministic (own noise estimate)", _lcm_deterministic),
    "TCDScheduler": ("TCDScheduler, gamma 0 (deterministic)", _without_noise),
    "FlowMatchLCMScheduler": ("deterministic (own noise estimate)", _flow_lcm_deterministic),
}


@dataclass
class StudentSampling:
    """How the student's rows are sampled: the scheduler its objective exported and the keyword arguments every
    sampling call passes (TCD: ``eta`` = its gamma)."""

    scheduler: Any
    step_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        name = type(self.scheduler).__name__
        return f"{name} (gamma {self.step_kwargs['eta']:g})" if "eta" in self.step_kwargs else name

    def sampler(self, deterministic: bool) -> tuple[str, Callable[..., torch.Tensor]] | None:
        """(label suffix, sampler) of the plain or deterministic variant; None when the scheduler has none."""
        if not deterministic:
            return self.name, student_sample
        return DETERMINISTIC.get(type(self.scheduler).__name__)
