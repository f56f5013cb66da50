"""The samplers being compared, each starting from the same initial noise and conditioning.

The teacher's DDIM (eta = 0) and the student's LCMScheduler are diffusers' own schedulers, stepped with batched
tensors, so the numbers describe what a diffusers user gets. The deterministic student variant is written here:
LCMScheduler draws fresh noise between steps, this variant re-noises the consistency output with the model's own
noise estimate instead (a DDIM-like step), which keeps the trajectory of the first step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from diffusers import DDIMScheduler, LCMScheduler

from lcm_exp.conditioning import Conditioning
from lcm_exp.objective import apply_cfg, guidance_embedding, predicted_x0_eps


class Denoiser:
    """A network as the samplers run it: its family's call convention, in the network's own dtype."""

    def __init__(self, family, network: torch.nn.Module):
        self.network, self.call, self.dtype = network, family.denoiser_fn(network), network.dtype
        self.embedding_dim = getattr(network.config, "time_cond_proj_dim", None)  # a student that embeds w


def _call(net: Denoiser, x: torch.Tensor, t: int, cond: Conditioning, w_emb: torch.Tensor | None) -> torch.Tensor:
    ts = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
    dtype = net.dtype
    return net.call(x.to(dtype), ts, cond.to(dtype=dtype), w_emb).float()


def guided_output(net: Denoiser, x: torch.Tensor, t: int, cond: Conditioning, uncond: Conditioning, w: float):
    """Teacher output with classifier-free guidance cond + w (cond - uncond), one 2B pass; w = 0: cond only."""
    if w == 0:
        return _call(net, x, t, cond, None)
    out_c, out_u = _call(net, torch.cat([x, x]), t, cond.cat(uncond), None).chunk(2)
    return apply_cfg(out_c, out_u, w)


@torch.no_grad()
def ddim_sample(
    net: Denoiser, scheduler: DDIMScheduler, x: torch.Tensor, steps: int, cond: Conditioning, uncond: Conditioning,
    w: float,
) -> torch.Tensor:  # fmt: skip
    """diffusers DDIM (eta 0) with the scheduler's own spacing; returns the final latents."""
    scheduler.set_timesteps(steps, device=x.device)
    for t in scheduler.timesteps:
        x = scheduler.step(guided_output(net, x, int(t), cond, uncond, w), t, x, eta=0.0).prev_sample
    return x


def student_embedding(net: Denoiser, w: float, batch: int, device) -> torch.Tensor | None:
    """The student's w embedding (what LCM pipelines feed ``timestep_cond``); None for a UNet without cond_proj."""
    dim = net.embedding_dim
    if dim is None:
        return None
    return guidance_embedding(torch.full((batch,), float(w), device=device), dim)


@torch.no_grad()
def lcm_sample(
    net: Denoiser, scheduler: LCMScheduler, x: torch.Tensor, steps: int, cond: Conditioning, w: float,
    noise_generators: Sequence[torch.Generator],
) -> torch.Tensor:  # fmt: skip
    """diffusers LCMScheduler multistep sampling; fresh noise between steps from one generator per sample."""
    scheduler.set_timesteps(steps, device=x.device)
    w_emb = student_embedding(net, w, x.shape[0], x.device)
    denoised = x
    for t in scheduler.timesteps:
        out = _call(net, x, int(t), cond, w_emb)
        x, denoised = scheduler.step(out, t, x, generator=list(noise_generators), return_dict=False)
    return denoised


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


Sampler = Callable[[torch.Tensor, int], torch.Tensor]  # (initial noise, steps) -> latents
