"""The toy teacher: an SD1.5-layout UNet2DConditionModel (cross-attention on the text encoder's hidden states),
epsilon prediction on the SD1.5 noise schedule, trained on CPU with caption dropout so classifier-free guidance
works.

Latents are 8 x 8 x 4, so a 2-level UNet (8 x 8 and 4 x 4, attention at both plus the mid block) sees the whole
image at its lowest level, which the caption's position words need (the probe's 16 x 16 teacher, lowest level
8 x 8, never learned position). Training uses the min-SNR-5 loss weighting (Hang et al. 2023) because it
converges faster on a short budget, and keeps an EMA of the weights, which is what gets saved.
"""

from __future__ import annotations

import logging

import torch
from diffusers import DDPMScheduler, PNDMScheduler, UNet2DConditionModel

from lcm_exp.toy.text import HIDDEN
from lcm_exp.toy.training import EMA, cosine_lr, index_batches, set_lr

#: the SD1.5 training schedule (scaled-linear betas) and its shipped scheduler_config values
SCHEDULE = {"num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}
MIN_SNR_GAMMA = 5.0

log = logging.getLogger(__name__)


def build_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(64, 96),
        layers_per_block=1,
        attention_head_dim=4,
        cross_attention_dim=HIDDEN,
        norm_num_groups=32,
    )


def sd15_scheduler() -> PNDMScheduler:
    """What SD1.5 ships in scheduler/ (PNDM, leading spacing, steps_offset 1, clip_sample false); families read it
    as DDPM. clip_sample is not a PNDM argument but SD1.5's file has it, and without it DDIMScheduler.from_config
    would clip latents to [-1, 1]."""
    scheduler = PNDMScheduler(**SCHEDULE, prediction_type="epsilon", set_alpha_to_one=False, skip_prk_steps=True,
                              steps_offset=1)  # fmt: skip
    scheduler.register_to_config(clip_sample=False)
    return scheduler


def train_teacher(
    unet: UNet2DConditionModel,
    latents: torch.Tensor,
    prompt_embeds: torch.Tensor,
    caption_ids: torch.Tensor,
    *,
    steps: int,
    batch: int,
    lr: float,
    caption_dropout: float,
    ema_decay: float,
    generator: torch.Generator,
) -> UNet2DConditionModel:
    """Epsilon-prediction training on scaled latents (n, 4, 8, 8).

    ``prompt_embeds`` (m, L, D) holds one encoding per distinct caption with row 0 the empty prompt;
    ``caption_ids`` (n,) says which row belongs to each latent. A dropped caption uses row 0. Trains on the
    UNet's device; every random draw comes from ``generator`` on the CPU. Returns the UNet holding the EMA weights.
    """
    if prompt_embeds.shape[0] < 2 or not bool((caption_ids > 0).all()):
        raise ValueError("prompt_embeds row 0 must be the empty prompt and every caption id must be >= 1")
    schedule = DDPMScheduler(**SCHEDULE)
    alphas_cumprod = schedule.alphas_cumprod
    snr = alphas_cumprod / (1 - alphas_cumprod)
    weight = snr.clamp(max=MIN_SNR_GAMMA) / snr  # min-SNR-gamma for epsilon prediction

    device = unet.device
    weight = weight.to(device)
    unet.train()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.01)
    ema = EMA(unet, ema_decay)
    batches = index_batches(latents.shape[0], batch, generator)
    for step in range(steps):
        set_lr(optimizer, cosine_lr(step, steps, lr, warmup=max(steps // 20, 1)))
        idx = next(batches)
        z0 = latents[idx].to(device)
        ids = torch.where(torch.rand(batch, generator=generator) < caption_dropout, 0, caption_ids[idx])
        t = torch.randint(0, schedule.config.num_train_timesteps, (batch,), generator=generator)
        noise = torch.randn(z0.shape, generator=generator).to(device)
        t = t.to(device)
        z_t = schedule.add_noise(z0, noise, t)
        pred = unet(z_t, t, encoder_hidden_states=prompt_embeds[ids].to(device)).sample
        loss = (weight[t] * (pred - noise).pow(2).flatten(1).mean(1)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        ema.update(unet)
        if (step + 1) % max(steps // 10, 1) == 0:
            log.info("toy teacher: step %d/%d, loss %.4f", step + 1, steps, loss.item())
    ema.copy_to(unet)
    return unet.eval().requires_grad_(False)
