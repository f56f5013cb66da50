"""What a UNet needs besides the noisy latent and the timestep, in one family-agnostic object.

SD1.5 fills only ``prompt_embeds``; SDXL adds the pooled text embedding and the micro-conditioning
``time_ids``. The objective and the loop handle it opaquely, so they never ask which family they serve; each family
turns it into its denoiser's keyword arguments (``ModelFamily.denoiser_fn``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class Conditioning:
    prompt_embeds: torch.Tensor  # (B, L, D)
    pooled_embeds: torch.Tensor | None = None  # (B, P) SDXL `text_embeds`
    time_ids: torch.Tensor | None = None  # (B, 6) SDXL (orig_h, orig_w, top, left, target_h, target_w)

    def _map(self, fn) -> Conditioning:
        return Conditioning(**{f.name: None if getattr(self, f.name) is None else fn(getattr(self, f.name))
                               for f in fields(self)})

    def to(self, *args, **kwargs) -> Conditioning:
        """Move/cast every tensor; time_ids keep their values but follow the dtype like diffusers does."""
        return self._map(lambda t: t.to(*args, **kwargs))

    def detach(self) -> Conditioning:
        return self._map(torch.Tensor.detach)

    def __getitem__(self, index) -> Conditioning:
        return self._map(lambda t: t[index])

    def __len__(self) -> int:
        return self.prompt_embeds.shape[0]

    def cat(self, other: Conditioning) -> Conditioning:
        """Stack two conditionings along the batch (e.g. cond + uncond for one 2B teacher pass)."""
        parts = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if (a is None) != (b is None):
                raise ValueError(f"cannot concatenate conditionings: '{f.name}' is set on one side only")
            parts[f.name] = None if a is None else torch.cat([a, b])
        return Conditioning(**parts)
