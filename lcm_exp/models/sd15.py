"""Stable Diffusion 1.x/2.x: one CLIP text encoder, its last hidden state (77 x D) conditions the UNet."""

from __future__ import annotations

from typing import Any

from diffusers import StableDiffusionPipeline, UNet2DConditionModel

from lcm_exp.conditioning import Conditioning
from lcm_exp.models.unet_family import UNetFamily


class SD15Family(UNetFamily):
    name = "sd15"
    pipeline_class = StableDiffusionPipeline
    text_components = (("tokenizer", "text_encoder"),)

    def _encode_prompts(self, captions: list[str]) -> Conditioning:
        tokenizer, encoder = self.tokenizers[0], self.text_encoders[0]
        return Conditioning(encoder(self._tokenize(tokenizer, captions))[0])

    def build_pipeline(self, denoiser: UNet2DConditionModel, scheduler: Any) -> StableDiffusionPipeline:
        return StableDiffusionPipeline(
            vae=self.vae,
            text_encoder=self.text_encoders[0],
            tokenizer=self.tokenizers[0],
            unet=denoiser,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
