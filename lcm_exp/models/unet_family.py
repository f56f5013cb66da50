"""DDPM-trained UNet teachers (SD1.x/2.x, SDXL): the schedule from DDPMScheduler, a UNet2DConditionModel denoiser.

The student of the full adapter is the teacher UNet rebuilt with ``time_cond_proj_dim`` (a ``cond_proj`` layer that
embeds w, the LCM pipelines' ``timestep_cond``) and loaded with the teacher's weights.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel

from lcm_exp.conditioning import Conditioning
from lcm_exp.models.family import ModelFamily
from lcm_exp.objective import DDPMSchedule, NoiseSchedule


def unet_kwargs(cond: Conditioning) -> dict[str, Any]:
    """Keyword arguments of ``UNet2DConditionModel.forward`` for a conditioning (SDXL adds its micro-conditioning)."""
    kwargs: dict[str, Any] = {"encoder_hidden_states": cond.prompt_embeds}
    if cond.pooled_embeds is not None:
        kwargs["added_cond_kwargs"] = {"text_embeds": cond.pooled_embeds, "time_ids": cond.time_ids}
    return kwargs


def unet_fn(unet: torch.nn.Module):
    """A diffusers UNet as the objective calls it: (x_t, t, cond, w_emb=None) -> raw output.

    Outside autocast the inputs are cast to the UNet's own dtype (a bf16 teacher beside an fp32 student); the
    SDXL size ids stay float32, as in diffusers, where bf16 would round them.
    """
    dtype = next(unet.parameters()).dtype

    def call(x: torch.Tensor, t: torch.Tensor, cond: Conditioning, w_emb: torch.Tensor | None = None) -> torch.Tensor:
        if not torch.is_autocast_enabled(x.device.type):
            x = x.to(dtype)
            cond = replace(cond, prompt_embeds=cond.prompt_embeds.to(dtype),
                           pooled_embeds=None if cond.pooled_embeds is None else cond.pooled_embeds.to(dtype))
            w_emb = None if w_emb is None else w_emb.to(dtype)
        return unet(x, t, timestep_cond=w_emb, **unet_kwargs(cond)).sample

    return call


def make_student_unet(teacher: UNet2DConditionModel, time_cond_proj_dim: int, cond_proj_init: str):
    """Build from the (fp32) teacher's config with ``time_cond_proj_dim`` and load its weights; cond_proj is new.

    ``cond_proj_init="zero"`` makes the student equal to the teacher at step 0; "random" is the reference.
    """
    student = UNet2DConditionModel.from_config(teacher.config, time_cond_proj_dim=time_cond_proj_dim)
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    if unexpected or any(not k.startswith("time_embedding.cond_proj") for k in missing):
        raise RuntimeError(f"student/teacher weights do not line up: missing={missing}, unexpected={unexpected}")
    if cond_proj_init == "zero":
        torch.nn.init.zeros_(student.time_embedding.cond_proj.weight)
    return student.to(dtype=torch.float32)


class UNetFamily(ModelFamily):
    denoiser_component = "unet"

    def _load_schedule(self) -> tuple[NoiseSchedule, dict[str, Any]]:
        scheduler = self._load("scheduler", DDPMScheduler)
        return DDPMSchedule(scheduler.alphas_cumprod, scheduler.config.prediction_type), dict(scheduler.config)

    def load_denoiser(self, dtype: torch.dtype = torch.float32) -> UNet2DConditionModel:
        return self._load("unet", UNet2DConditionModel, variant=self.cfg.variant, torch_dtype=dtype)

    def denoiser_fn(self, network: torch.nn.Module):
        return unet_fn(network)

    def guided_student(self, teacher: torch.nn.Module, embedding_dim: int, init: str) -> UNet2DConditionModel:
        return make_student_unet(teacher, embedding_dim, init)
