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
from lcm_exp.toy.training import fit_text_conditioned

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
    schedule = DDPMScheduler(**SCHEDULE)
    alphas_cumprod = schedule.alphas_cumprod
    snr = alphas_cumprod / (1 - alphas_cumprod)
    weight = (snr.clamp(max=MIN_SNR_GAMMA) / snr).to(unet.device)  # min-SNR-gamma for epsilon prediction

    def loss_of(z0: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        t = torch.randint(0, schedule.config.num_train_timesteps, (z0.shape[0],), generator=generator)
        noise = torch.randn(z0.shape, generator=generator).to(z0.device)
        t = t.to(z0.device)
        pred = unet(schedule.add_noise(z0, noise, t), t, encoder_hidden_states=prompt_embeds[ids].to(z0.device)).sample
        return (weight[t] * (pred - noise).pow(2).flatten(1).mean(1)).mean()

    return fit_text_conditioned(unet, latents, caption_ids, prompt_embeds.shape[0], loss_of, steps=steps, batch=batch,
                                lr=lr, caption_dropout=caption_dropout, ema_decay=ema_decay, generator=generator,
                                log=log, name="toy teacher")  # fmt: skip
