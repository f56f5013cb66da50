"""Full-UNet student: teacher weights plus a guidance-embedding ``cond_proj``; the target is its EMA."""

from __future__ import annotations

import copy
from contextlib import nullcontext
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel

from lcm_exp.adapters.base import StudentAdapter
from lcm_exp.adapters.ema import EMA
from lcm_exp.objective import DistillModels, unet_fn


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


class FullAdapter(StudentAdapter):
    recommended_guidance_scale = 8.0  # w = 7, inside both families' trained range
    recommended_steps, steps_range = 4, (2, 8)
    guidance_note = ("The student embeds w itself (UNet `time_cond_proj_dim`), so the pipeline runs no separate CFG "
                     "pass; any guidance_scale with w = guidance_scale - 1 inside the trained range works.")

    def __init__(self, cfg, family, gradient_checkpointing: bool = False):
        self.cfg = cfg
        self.teacher = family.unet
        fp32_teacher = family.load_unet()  # fresh fp32 weights, not the teacher cast to the compute dtype
        self.student = make_student_unet(fp32_teacher, cfg.time_cond_proj_dim, cfg.cond_proj_init)
        self.student.to(family.device).train()
        del fp32_teacher
        if gradient_checkpointing:
            self.student.enable_gradient_checkpointing()
        self.target = copy.deepcopy(self.student).requires_grad_(False).eval()
        self.ema = EMA(list(self.student.parameters()), list(self.target.parameters()), cfg.ema_decay)
        self.checkpoint_state = {"ema": self.ema}
        self._prepared = self.student

    @property
    def trainable_module(self):
        return self.student

    def bind(self, prepared):
        self._prepared = prepared

    def distill_models(self) -> DistillModels:
        return DistillModels(
            student=unet_fn(self._prepared),
            teacher=unet_fn(self.teacher),
            target=unet_fn(self.target),
            guidance_embedding_dim=self.cfg.time_cond_proj_dim,
        )

    def after_optimizer_step(self):
        self.ema.update()

    def inference_unet(self):
        return nullcontext(self.target if self.cfg.export_weights == "ema" else self.student)

    def export(self, model_dir: Path, pipeline_class, *, fp16_variant: bool = False) -> list[str]:
        """``unet/`` in fp32; with ``fp16_variant`` also ``diffusion_pytorch_model.fp16.safetensors`` beside it
        (``from_pretrained(..., variant="fp16")``), cast from a CPU copy so the live weights stay untouched."""
        with self.inference_unet() as unet:
            unet.save_pretrained(model_dir / "unet", safe_serialization=True)
            if fp16_variant:
                half_copy(unet).save_pretrained(model_dir / "unet", safe_serialization=True, variant="fp16")
        return ["unet/"]

    @staticmethod
    def usage_code(pipeline: str, teacher: str, model_ref: str, *, fp16_variant: bool = False) -> str:
        """A diffusers snippet that loads this student (the model card's)."""
        steps, guidance = FullAdapter.recommended_steps, FullAdapter.recommended_guidance_scale
        variant = ', variant="fp16", torch_dtype=torch.float16' if fp16_variant else ""
        dtype = ", torch_dtype=torch.float16" if fp16_variant else ""
        device = '"cuda"' if fp16_variant else '"cuda" if torch.cuda.is_available() else "cpu"'
        return f"""import torch
from diffusers import {pipeline}, LCMScheduler, UNet2DConditionModel

model_id = "{model_ref}"
unet = UNet2DConditionModel.from_pretrained(model_id, subfolder="unet"{variant})
pipe = {pipeline}.from_pretrained("{teacher}", unet=unet{dtype})
pipe.scheduler = LCMScheduler.from_pretrained(model_id, subfolder="scheduler")
pipe = pipe.to({device})
image = pipe("a photo of a cat", num_inference_steps={steps}, guidance_scale={guidance}).images[0]"""


def half_copy(unet: UNet2DConditionModel) -> UNet2DConditionModel:
    """An fp16 CPU copy built on the meta device (no random init, no second fp32 copy on the accelerator)."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        half = UNet2DConditionModel.from_config(unet.config)
    half.load_state_dict({k: v.detach().to("cpu", torch.float16) for k, v in unet.state_dict().items()}, assign=True)
    return half
