"""Stable Diffusion 3 / 3.5: a flow-matching SD3Transformer2DModel conditioned by three text encoders.

Prompt embeddings as StableDiffusion3Pipeline.encode_prompt makes them (objectives-facts 4.1): CLIP-L and CLIP-G
penultimate hidden states concatenated on the feature axis, zero-padded (or cropped, as the pipeline's F.pad does) to
the T5 width, then T5's last hidden state appended on the sequence axis (zeros when the teacher ships no T5);
pooled = both CLIPs' projected embeddings concatenated. The unconditional branch is "" through all three encoders,
the pipeline's default negative prompt (``model.uncond=empty_prompt``). Latents are (sample - shift_factor) *
scaling_factor and decode as latents / scaling_factor + shift_factor, both factors from the VAE config (the shared
``ModelFamily.scale_latents`` / ``decode``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

from lcm_exp.conditioning import Conditioning
from lcm_exp.models.family import ModelFamily, _frozen
from lcm_exp.objective.flow import FlowSchedule

T5 = ("tokenizer_3", "text_encoder_3")


class SD3Family(ModelFamily):
    name = "sd3"
    pipeline_class = StableDiffusion3Pipeline
    text_components = (("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2"), T5)
    denoiser_component = "transformer"

    def _load_schedule(self):
        scheduler = self._load("scheduler", FlowMatchEulerDiscreteScheduler)
        return FlowSchedule.from_scheduler_config(dict(scheduler.config)), dict(scheduler.config)

    def _load(self, component: str, cls: type | None = None, **kwargs: Any) -> Any:
        """T5 is optional in SD3 checkpoints (model_index entry [null, null]): then it loads as None."""
        if component in T5 and not any(self.model_index.get(component) or []):
            return None
        return super()._load(component, cls, **kwargs)

    def _load_text_encoders(self) -> list[torch.nn.Module | None]:
        encoders = [self._load(enc, variant=self.cfg.variant) for _, enc in self.text_components]
        return [None if e is None else _frozen(e, self.device, self.weight_dtype) for e in encoders]

    def load_denoiser(self, dtype: torch.dtype = torch.float32) -> SD3Transformer2DModel:
        return self._load("transformer", SD3Transformer2DModel, variant=self.cfg.variant, torch_dtype=dtype)

    def denoiser_fn(self, network: torch.nn.Module):
        """Outside autocast the inputs are cast to the network's own dtype (a bf16 teacher beside an fp32 student),
        as for the UNets; the timestep 1000 * sigma stays float32 (the transformer embeds it in float32)."""
        dtype = next(network.parameters()).dtype

        def call(x: torch.Tensor, t: torch.Tensor, cond: Conditioning, w_emb: torch.Tensor | None = None):
            if not torch.is_autocast_enabled(x.device.type):
                x, cond = x.to(dtype), cond.to(dtype=dtype)
                w_emb = None if w_emb is None else w_emb.to(dtype)
            extra = {} if w_emb is None else {"guidance_emb": w_emb}  # a guided student's w embedding
            return network(hidden_states=x, timestep=t, encoder_hidden_states=cond.prompt_embeds,
                           pooled_projections=cond.pooled_embeds, return_dict=False, **extra)[0]  # fmt: skip

        return call

    def guided_student(self, teacher: torch.nn.Module, embedding_dim: int, init: str) -> torch.nn.Module:
        from lcm_exp.models.sd3_guided import make_guided_transformer

        return make_guided_transformer(teacher, embedding_dim, init)

    def w_embedding_dim(self, network: torch.nn.Module) -> int | None:
        """The guided student's ``guidance_embedding_dim`` (GuidedSD3Transformer2DModel); None for a plain one."""
        return getattr(network.config, "guidance_embedding_dim", None)

    # ------------------------------------------------------------------ text

    def _encode_prompts(self, captions: list[str]) -> Conditioning:
        hidden, pooled = [], []
        for tokenizer, encoder in zip(self.tokenizers[:2], self.text_encoders[:2], strict=True):
            out = encoder(self._tokenize(tokenizer, captions), output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
            pooled.append(out[0])  # text_embeds: the projected pooled output
        clip = torch.cat(hidden, dim=-1)
        t5 = self._t5(captions, clip)
        clip = F.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))
        return Conditioning(torch.cat([clip, t5], dim=-2), pooled_embeds=torch.cat(pooled, dim=-1))

    def _t5(self, captions: list[str], like: torch.Tensor) -> torch.Tensor:
        length = self.cfg.max_sequence_length
        tokenizer, encoder = self.tokenizers[2], self.text_encoders[2]
        if encoder is None:
            width = self.denoiser.config.joint_attention_dim
            return torch.zeros(len(captions), length, width, device=like.device, dtype=like.dtype)
        ids = tokenizer(captions, padding="max_length", max_length=length, truncation=True, add_special_tokens=True,
                        return_tensors="pt").input_ids  # fmt: skip
        return encoder(ids.to(self.device))[0]

    # ------------------------------------------------------------------ inference

    @classmethod
    def pipeline_call_kwargs(cls, model_cfg: Any) -> dict[str, Any]:
        """The T5 length the embeddings were trained with (the pipeline's default is 256)."""
        return {"max_sequence_length": model_cfg.max_sequence_length}

    def build_pipeline(self, denoiser: torch.nn.Module, scheduler: Any) -> StableDiffusion3Pipeline:
        tok, enc = self.tokenizers, self.text_encoders
        return StableDiffusion3Pipeline(
            transformer=denoiser, scheduler=scheduler, vae=self.vae,
            text_encoder=enc[0], tokenizer=tok[0], text_encoder_2=enc[1], tokenizer_2=tok[1],
            text_encoder_3=enc[2], tokenizer_3=tok[2],
        )  # fmt: skip
