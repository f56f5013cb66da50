"""Encoders turn a data batch into (latents, cond, uncond) on the device.

``FamilyEncoder`` runs the VAE and text encoders on every step (images from shards, folders, datasets: the
reference's way); ``lcm_exp.data.latent_cache.CachedLatentEncoder`` reads them from a latent cache and needs
neither.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from lcm_exp.conditioning import Conditioning


class BatchEncoder(Protocol):
    def latents(self, batch: dict[str, Any]) -> torch.Tensor:
        """Clean latents z0 in the compute dtype, on the device."""

    def conditioning(self, batch: dict[str, Any]) -> tuple[Conditioning, Conditioning]:
        """(cond, uncond) on the device."""


class FamilyEncoder:
    """The VAE and text encoders on every step, as the reference does."""

    def __init__(self, family, weight_dtype: torch.dtype):
        self.family, self.weight_dtype = family, weight_dtype

    @torch.no_grad()
    def latents(self, batch: dict[str, Any]) -> torch.Tensor:
        # contiguous: the CPU VAE can hand back channels-last strides, which would silently switch the UNets'
        # convolutions to another kernel (other rounding) than latents read from a cache get
        return self.family.encode_images(batch["pixel_values"]).to(self.weight_dtype).contiguous()

    @torch.no_grad()
    def conditioning(self, batch: dict[str, Any]) -> tuple[Conditioning, Conditioning]:
        cond = self.family.encode_text(batch)
        return cond, self.family.unconditional(cond)
