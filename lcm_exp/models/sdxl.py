"""SDXL: two CLIP text encoders plus size/crop micro-conditioning.

prompt embeds = both encoders' penultimate hidden states concatenated on the feature axis; pooled embeds = the
second encoder's projected ``text_embeds``; time_ids = (orig_h, orig_w, crop_top, crop_left, target_h, target_w),
always in (height, width) order (the reference WebDataset scripts pass (W, H), a known bug).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel

from lcm_exp.conditioning import Conditioning
from lcm_exp.models.unet_family import UNetFamily


class SDXLFamily(UNetFamily):
    name = "sdxl"
    pipeline_class = StableDiffusionXLPipeline
    text_components = (("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2"))

    def _encode_prompts(self, captions: list[str]) -> Conditioning:
        hidden = []
        for tokenizer, encoder in zip(self.tokenizers, self.text_encoders, strict=True):
            out = encoder(self._tokenize(tokenizer, captions), output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
        return Conditioning(torch.cat(hidden, dim=-1), pooled_embeds=out.text_embeds)

    @torch.no_grad()
    def encode_text(self, batch: dict[str, Any]) -> Conditioning:
        cond = self._encode_prompts(list(batch["captions"]))
        return replace(cond, time_ids=self.time_ids(batch, len(cond)))

    def time_ids(self, batch: dict[str, Any], n: int) -> torch.Tensor:
        """(n, 6) float32: original (h, w), crop (top, left), target (h, w) = (resolution, resolution).

        With ``fixed_crop_and_size`` the original size is the target and the crop is (0, 0), whatever the batch
        says (the reference's --use_fix_crop_and_size). Float32 keeps sizes exact (bf16 would round 301 to 300).
        """
        res = self.cfg.resolution
        target = torch.tensor([[res, res]], dtype=torch.float32).expand(n, 2)
        if self.cfg.fixed_crop_and_size:
            original, crop = target, torch.zeros(n, 2)
        else:
            original, crop = (_pairs(batch, key, n) for key in ("original_size", "crop_top_left"))
        return torch.cat([original, crop, target], dim=1).to(self.device)

    def build_pipeline(self, denoiser: UNet2DConditionModel, scheduler: Any) -> StableDiffusionXLPipeline:
        return StableDiffusionXLPipeline(
            vae=self.vae,
            text_encoder=self.text_encoders[0],
            text_encoder_2=self.text_encoders[1],
            tokenizer=self.tokenizers[0],
            tokenizer_2=self.tokenizers[1],
            unet=denoiser,
            scheduler=scheduler,
            force_zeros_for_empty_prompt=self.model_index.get("force_zeros_for_empty_prompt", True),
            add_watermarker=False,
        )


def _pairs(batch: dict[str, Any], key: str, n: int) -> torch.Tensor:
    if key not in batch:
        raise KeyError(f"SDXL batch lacks {key!r} (needed for time_ids; or set model.fixed_crop_and_size=true)")
    value = torch.as_tensor(batch[key])
    if value.shape != (n, 2):
        keys = batch.get("keys", [])[:3]
        raise ValueError(f"batch[{key!r}] has shape {tuple(value.shape)}, expected ({n}, 2); samples {keys}")
    return value.to(torch.float32)
