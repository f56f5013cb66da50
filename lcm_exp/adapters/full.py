"""Full student: the teacher network plus a guidance-embedding input; the target is its EMA."""

from __future__ import annotations

import copy
from contextlib import nullcontext
from pathlib import Path

import torch

from lcm_exp.adapters.base import DEFAULT_OPTIONS, AdapterOptions, StudentAdapter
from lcm_exp.adapters.ema import EMA, ComputeDtypeCopy
from lcm_exp.models.family import guidance_call_kwargs
from lcm_exp.objective import DistillModels


class FullAdapter(StudentAdapter):
    recommended_guidance_scale = 8.0  # w = 7, inside both families' trained range
    guidance_note = ("The student embeds w itself (`time_cond_proj_dim`), so the pipeline runs no separate CFG "
                     "pass; any guidance_scale with w = guidance_scale - 1 inside the trained range works.")

    def __init__(self, cfg, family, options: AdapterOptions = DEFAULT_OPTIONS):
        self.cfg, self.component = cfg, family.denoiser_component
        self.teacher = family.denoiser
        self._call = family.denoiser_fn
        fp32_teacher = family.load_denoiser()  # fresh fp32 weights, not the teacher cast to the compute dtype
        self.student = family.guided_student(fp32_teacher, cfg.time_cond_proj_dim, cfg.cond_proj_init)
        self.student.to(family.device).train()
        del fp32_teacher
        if options.gradient_checkpointing:
            self.student.enable_gradient_checkpointing()
        self.target = copy.deepcopy(self.student).requires_grad_(False).eval()
        self.ema = EMA(list(self.student.parameters()), list(self.target.parameters()), cfg.ema_decay,
                       foreach=options.ema_foreach)  # fmt: skip
        self.checkpoint_state = {"ema": self.ema}
        self.target_copy = (ComputeDtypeCopy(self.target, options.frozen_dtype)
                            if options.frozen_dtype != torch.float32 else None)  # fmt: skip
        self._stale = True  # refreshed lazily, so weights loaded by a resume are picked up by the first step
        self._prepared = self.student

    @property
    def trainable_module(self):
        return self.student

    def bind(self, prepared):
        self._prepared = prepared

    def networks(self) -> list[torch.nn.Module]:
        return [self.student, self.target, *([self.target_copy.module] if self.target_copy else [])]

    def distill_models(self) -> DistillModels:
        target = self.target
        if self.target_copy is not None:
            if self._stale:
                self.target_copy.refresh()
                self._stale = False
            target = self.target_copy.module
        return DistillModels(student=self._call(self._prepared), teacher=self._call(self.teacher),
                             target=self._call(target), guidance_embedding_dim=self.cfg.time_cond_proj_dim)  # fmt: skip

    def after_optimizer_step(self):
        self.ema.update()
        self._stale = True

    def inference_denoiser(self):
        return nullcontext(self.target if self.cfg.export_weights == "ema" else self.student)

    def export(self, model_dir: Path, pipeline_class, *, fp16_variant: bool = False) -> list[str]:
        """``<component>/`` in fp32; with ``fp16_variant`` also ``*.fp16.safetensors`` beside it
        (``from_pretrained(..., variant="fp16")``), cast from a CPU copy so the live weights stay untouched."""
        with self.inference_denoiser() as net:
            net.save_pretrained(model_dir / self.component, safe_serialization=True)
            if fp16_variant:
                half_copy(net).save_pretrained(model_dir / self.component, safe_serialization=True, variant="fp16")
        return [f"{self.component}/"]

    @classmethod
    def load_student(cls, pipe, component: str, model_dir: Path, dtype: torch.dtype) -> None:
        net_cls = saved_network_class(model_dir / component)  # the teacher's class, or a guided SD3 student
        fp16 = (model_dir / component / "diffusion_pytorch_model.fp16.safetensors").is_file()
        variant = "fp16" if dtype == torch.float16 and fp16 else None
        student = net_cls.from_pretrained(model_dir, subfolder=component, variant=variant, torch_dtype=dtype)
        setattr(pipe, component, student.to(pipe.device))

    def usage_code(self, pipeline: str, teacher: str, model_ref: str, scheduler: str, *,
                   fp16_variant: bool = False, call_kwargs: str = "") -> str:  # fmt: skip
        net_cls, module = type(self.student).__name__, type(self.student).__module__
        imports = f"{pipeline}, {scheduler}, {net_cls}"  # a project student (guided SD3) imports from lcm_exp
        if not module.startswith("diffusers"):
            imports = f"{pipeline}, {scheduler}\nfrom {module} import {net_cls}"
        guidance = ", ".join(f"{k}={v!r}" for k, v in guidance_call_kwargs(self.student,
                                                                           self.recommended_guidance_scale).items())
        variant = ', variant="fp16", torch_dtype=torch.float16' if fp16_variant else ""
        dtype = ", torch_dtype=torch.float16" if fp16_variant else ""
        device = '"cuda"' if fp16_variant else '"cuda" if torch.cuda.is_available() else "cpu"'
        return f"""import torch
from diffusers import {imports}

model_id = "{model_ref}"
{self.component} = {net_cls}.from_pretrained(model_id, subfolder="{self.component}"{variant})
pipe = {pipeline}.from_pretrained("{teacher}", {self.component}={self.component}{dtype})
pipe.scheduler = {scheduler}.from_pretrained(model_id, subfolder="scheduler")
pipe = pipe.to({device})
image = pipe("a photo of a cat", num_inference_steps={self.recommended_steps}, {guidance}{call_kwargs}).images[0]"""


def saved_network_class(folder: Path) -> type:
    """The class a saved network names in its config.json."""
    import json

    from lcm_exp.models.registry import network_class

    return network_class(json.loads((Path(folder) / "config.json").read_text())["_class_name"])


def half_copy(net: torch.nn.Module) -> torch.nn.Module:
    """An fp16 CPU copy built on the meta device (no random init, no second fp32 copy on the accelerator)."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        half = type(net).from_config(net.config)
    half.load_state_dict({k: v.detach().to("cpu", torch.float16) for k, v in net.state_dict().items()}, assign=True)
    return half
