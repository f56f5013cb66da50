"""The toy flow-matching teacher: an SD3Transformer2DModel trained with rectified flow on the toy world's latents.

Same objective as SD3 (Esser et al. 2024): x_sigma = (1 - sigma) x0 + sigma eps, the network predicts v = eps - x0
at timestep 1000 * sigma, sigma drawn logit-normal (mean 0, std 1) then shifted, unweighted MSE. The toy's 8 x 8
latents hold 256 numbers, far fewer than SD3's 128 x 128 x 16, so the scheduler shift is 1 (SD3 shifts to 3 for
its resolution). Patch size 2 gives 16 image tokens beside 32 text tokens; position embeddings let the transformer
place shapes (the toy UNet needed a 4 x 4 level for that). 10 % caption dropout (the "" encoding through all three
text encoders, the pipeline's negative prompt) so CFG works; EMA of the weights is what gets saved.
"""

from __future__ import annotations

import logging

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel

from lcm_exp.objective.flow import shift_sigmas
from lcm_exp.toy.training import fit_text_conditioned

SHIFT = 1.0
HEADS, HEAD_DIM, LAYERS, PATCH = 4, 32, 4, 2

log = logging.getLogger(__name__)


def build_transformer(joint_attention_dim: int, pooled_projection_dim: int, latent_channels: int = 4,
                      latent_size: int = 8) -> SD3Transformer2DModel:  # fmt: skip
    """SD3.5-style blocks (QK RMS-norm) at toy width: 128 wide, 4 joint blocks, about 2.3 M parameters."""
    return SD3Transformer2DModel(
        sample_size=latent_size, patch_size=PATCH, in_channels=latent_channels, out_channels=latent_channels,
        num_layers=LAYERS, attention_head_dim=HEAD_DIM, num_attention_heads=HEADS,
        joint_attention_dim=joint_attention_dim, caption_projection_dim=HEADS * HEAD_DIM,
        pooled_projection_dim=pooled_projection_dim, pos_embed_max_size=latent_size, qk_norm="rms_norm",
    )  # fmt: skip


def flow_scheduler() -> FlowMatchEulerDiscreteScheduler:
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=SHIFT)


def sample_sigmas(batch: int, generator: torch.Generator, shift: float = SHIFT) -> torch.Tensor:
    """SD3's logit-normal training sigmas, shifted like the scheduler's table, kept inside (0, 1)."""
    u = torch.sigmoid(torch.randn(batch, generator=generator))
    return shift_sigmas(u, shift).clamp(1e-4, 1.0)


def train_flow_teacher(
    transformer: SD3Transformer2DModel,
    latents: torch.Tensor,
    prompt_embeds: torch.Tensor,
    pooled_embeds: torch.Tensor,
    caption_ids: torch.Tensor,
    *,
    steps: int,
    batch: int,
    lr: float,
    caption_dropout: float,
    ema_decay: float,
    generator: torch.Generator,
) -> SD3Transformer2DModel:
    """Rectified-flow training on scaled latents (n, C, 8, 8); row 0 of the (m, L, D) / (m, P) embeddings is the
    empty prompt and ``caption_ids`` (n,) picks each latent's row. Returns the transformer holding the EMA weights."""

    def loss_of(z0: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        sigma = sample_sigmas(z0.shape[0], generator).to(z0.device)
        noise = torch.randn(z0.shape, generator=generator).to(z0.device)
        s = sigma.view(-1, 1, 1, 1)
        v = transformer(hidden_states=(1 - s) * z0 + s * noise, timestep=sigma * 1000,
                        encoder_hidden_states=prompt_embeds[ids].to(z0.device),
                        pooled_projections=pooled_embeds[ids].to(z0.device)).sample  # fmt: skip
        return (v - (noise - z0)).pow(2).mean()

    return fit_text_conditioned(transformer, latents, caption_ids, prompt_embeds.shape[0], loss_of, steps=steps,
                                batch=batch, lr=lr, caption_dropout=caption_dropout, ema_decay=ema_decay,
                                generator=generator, log=log, name="toy flow teacher")  # fmt: skip
