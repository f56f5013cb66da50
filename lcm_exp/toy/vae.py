"""The toy AutoencoderKL: 32 x 32 images <-> 8 x 8 x 4 latents (factor 4), trained on CPU in about a minute.

The posterior is made (almost) deterministic: the log-variance half of ``quant_conv`` is fixed at -14 (std 1e-3)
and never trained. The training loop encodes with ``latent_dist.sample()`` (as the reference scripts do) while the
teacher is trained on posterior means (the probe's lesson: a free posterior std of ~0.55 drowns the latents); with
a fixed tiny std both give the same latents. ``scaling_factor`` = 1 / std of the training latents' means, so the
teacher sees unit-variance latents, as SD's 0.18215 intends.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from lcm_exp.toy.training import cosine_lr, index_batches, set_lr

LATENT_CHANNELS = 4
FIXED_LOGVAR = -14.0

log = logging.getLogger(__name__)


def build_vae() -> AutoencoderKL:
    """Architecture only (weights from the caller's seeded RNG); the posterior variance is fixed."""
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=32,
        sample_size=32,
        scaling_factor=1.0,
        force_upcast=False,
    )
    with torch.no_grad():
        vae.quant_conv.weight[LATENT_CHANNELS:].zero_()
        vae.quant_conv.bias[LATENT_CHANNELS:].fill_(FIXED_LOGVAR)
    return vae


def _freeze_logvar_grads(vae: AutoencoderKL) -> None:
    def hook(grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        grad[LATENT_CHANNELS:] = 0
        return grad

    vae.quant_conv.weight.register_hook(hook)
    vae.quant_conv.bias.register_hook(hook)


def train_vae(
    vae: AutoencoderKL, images: torch.Tensor, steps: int, batch: int, lr: float, generator: torch.Generator
) -> AutoencoderKL:
    """Reconstruction training (MSE + L1) on images in [-1, 1]; the log-variance rows never move."""
    _freeze_logvar_grads(vae)
    device = vae.device
    vae.train()
    params = [p for p in vae.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    batches = index_batches(images.shape[0], batch, generator)
    for step in range(steps):
        set_lr(optimizer, cosine_lr(step, steps, lr, warmup=max(steps // 20, 1)))
        x = images[next(batches)].to(device)
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator)).sample
        loss = F.mse_loss(recon, x) + 0.1 * F.l1_loss(recon, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if (step + 1) % max(steps // 5, 1) == 0:
            log.info("toy VAE: step %d/%d, loss %.4f", step + 1, steps, loss.item())
    return vae.eval().requires_grad_(False)


@torch.no_grad()
def latent_means(vae: AutoencoderKL, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Posterior means, unscaled (n, 4, 8, 8), on the VAE's device."""
    return torch.cat([vae.encode(images[i : i + batch].to(vae.device)).latent_dist.mean
                      for i in range(0, images.shape[0], batch)])  # fmt: skip


@torch.no_grad()
def reconstruction_psnr(vae: AutoencoderKL, images: torch.Tensor) -> float:
    """Mean PSNR (dB, images mapped to [0, 1]) of decode(mean) against the input."""
    means = latent_means(vae, images)
    recon = torch.cat([vae.decode(means[i : i + 256]).sample for i in range(0, means.shape[0], 256)]).clamp(-1, 1)
    mse = ((recon.cpu() - images) / 2).pow(2).flatten(1).mean(1)
    return float((10 * torch.log10(1 / mse.clamp_min(1e-10))).mean())
