"""LoRA student: PEFT adapters on the teacher network itself.

The teacher is the same network with adapters disabled, so no second copy of the weights exists. The target is
the student under stop-grad (reference) or, with ``target: ema``, a second adapter holding the EMA of the
trained one, selected for the target pass (still one network). A guidance-conditioned LoRA (UNet teachers) also
trains the LCM student's w-embedding input, ``time_embedding.cond_proj``.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import load_file, save_file

from lcm_exp.adapters.base import AdapterOptions, StudentAdapter
from lcm_exp.adapters.ema import EMA
from lcm_exp.objective import DistillModels

TRAINED, EMA_ADAPTER = "default", "ema"
COND_PROJ_FILE = "guidance_cond_proj.safetensors"
COND_PROJ_KEY = "time_embedding.cond_proj.weight"


def add_guidance_cond_proj(unet, dim: int, weight: torch.Tensor | None = None) -> None:
    """Give a UNet the guidance-embedding input of an LCM student (``time_embedding.cond_proj``, zero-initialised
    so it starts as the plain LoRA) and record ``time_cond_proj_dim`` so pipelines embed w instead of running CFG."""
    emb = unet.time_embedding
    if weight is None:  # training: a trainable fp32 layer
        weight = torch.zeros(emb.linear_1.in_features, dim, device=emb.linear_1.weight.device)
    emb.cond_proj = torch.nn.Linear(dim, weight.shape[0], bias=False, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        emb.cond_proj.weight.copy_(weight)
    unet.register_to_config(time_cond_proj_dim=dim)


def load_guidance_cond_proj(unet, model_dir) -> bool:
    """After ``pipe.load_lora_weights(model_dir)``: attach a guidance-conditioned LoRA's cond_proj, if it has one."""
    path = Path(model_dir) / COND_PROJ_FILE
    if not path.is_file():
        return False
    weight = load_file(path)[COND_PROJ_KEY]
    add_guidance_cond_proj(unet, weight.shape[1], weight.to(unet.device, unet.dtype))
    return True


@contextmanager
def _active_adapter(unet, name: str | None):
    """Run with one adapter active (None: adapters disabled = the teacher), then restore the trained one."""
    if name is None:
        unet.disable_adapters()
    else:
        unet.set_adapter(name)
    try:
        yield unet
    finally:
        if name is None:
            unet.enable_adapters()
        unet.set_adapter(TRAINED)


class LoraAdapter(StudentAdapter):
    recommended_guidance_scale = 1.0  # a plain LCD LoRA learned a w-averaged map: no CFG at inference
    guidance_note = ("A plain LCD LoRA learned a w-averaged map and is used without CFG (guidance_scale 1.0); values "
                     "slightly above 1 (up to about 2) add ordinary CFG on top, at twice the UNet cost per step.")

    def __init__(self, cfg, family, options: AdapterOptions = AdapterOptions()):
        self.cfg, self.component = cfg, family.denoiser_component
        self._call = family.denoiser_fn
        self.net = family.denoiser  # base weights stay frozen in the compute dtype
        self.net.requires_grad_(False)
        self.guidance_embedding_dim = None
        if cfg.guidance_conditioned:  # w-conditioned LoRA: w enters like in the full student; the teacher passes
            add_guidance_cond_proj(self.net, cfg.time_cond_proj_dim)  # timestep_cond=None, so it skips it
            self.guidance_embedding_dim = cfg.time_cond_proj_dim
            self.recommended_guidance_scale = 8.0  # w = 7 embedded, no CFG pass
        lora = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                          target_modules=list(cfg.target_modules), init_lora_weights="gaussian")
        self.net.add_adapter(lora, adapter_name=TRAINED)
        self.checkpoint_state = {}
        self.ema = None
        if cfg.target == "ema":
            self.net.add_adapter(lora, adapter_name=EMA_ADAPTER)
            self.ema = EMA(self._adapter_params(TRAINED), self._adapter_params(EMA_ADAPTER), cfg.ema_decay,
                           foreach=options.ema_foreach)
            with torch.no_grad():
                for t, s in zip(self.ema.target, self.ema.source, strict=True):
                    t.copy_(s)
            self.checkpoint_state = {"ema": self.ema}
        self.net.set_adapter(TRAINED)
        # LoRA weights train in fp32 even when the frozen base runs in half precision.
        for p in self._adapter_params(TRAINED):
            p.data = p.data.float()
            p.requires_grad_(True)
        for p in self._adapter_params(EMA_ADAPTER) if self.ema else []:
            p.requires_grad_(False)
        if self.guidance_embedding_dim is not None:
            self.net.time_embedding.cond_proj.requires_grad_(True)
        if options.gradient_checkpointing:
            self.net.enable_gradient_checkpointing()
        self.net.train()
        self._prepared = self.net

    def _adapter_params(self, name: str) -> list[torch.nn.Parameter]:
        return [p for n, p in self.net.named_parameters() if f".{name}." in n and "lora_" in n]

    @property
    def trainable_module(self):
        return self.net

    def bind(self, prepared):
        self._prepared = prepared

    def networks(self) -> list[torch.nn.Module]:
        return [self.net]  # the family's teacher network itself, carrying the adapters

    def distill_models(self) -> DistillModels:
        call = self._call(self.net)

        def teacher(x, t, c):
            with _active_adapter(self.net, None):
                return call(x, t, c)

        def target(x, t, c, w):
            with _active_adapter(self.net, EMA_ADAPTER if self.ema else TRAINED):
                return call(x, t, c, w)

        return DistillModels(
            student=self._call(self._prepared),
            teacher=teacher,
            target=target,
            guidance_embedding_dim=self.guidance_embedding_dim,
        )

    def after_optimizer_step(self):
        if self.ema is not None:
            self.ema.update()

    @contextmanager
    def inference_denoiser(self):
        name = EMA_ADAPTER if self.cfg.export_weights == "ema" else TRAINED
        with _active_adapter(self.net, name):
            yield self.net

    def lora_state_dict(self) -> dict[str, torch.Tensor]:
        """PEFT-format keys, which ``load_lora_weights`` reads as they are. (Converting them to the old diffusers
        format, as the reference does, rewrites only the attention keys and the file then loads partially.)"""
        name = EMA_ADAPTER if self.cfg.export_weights == "ema" else TRAINED
        return get_peft_model_state_dict(self.net, adapter_name=name)

    def export(self, model_dir: Path, pipeline_class, *, fp16_variant: bool = False) -> list[str]:
        if fp16_variant:
            raise ValueError("export.fp16_variant: a LoRA file has no fp16 variant (it loads into any pipeline dtype)")
        layers = {f"{self.component}_lora_layers": self.lora_state_dict()}  # unet_lora_layers, transformer_...
        pipeline_class.save_lora_weights(model_dir, **layers, safe_serialization=True)
        if self.guidance_embedding_dim is None:
            return ["pytorch_lora_weights.safetensors"]
        weight = self.net.time_embedding.cond_proj.weight.detach().float().cpu().contiguous()
        save_file({COND_PROJ_KEY: weight}, model_dir / COND_PROJ_FILE)
        return ["pytorch_lora_weights.safetensors", COND_PROJ_FILE]

    @classmethod
    def load_student(cls, pipe, component: str, model_dir: Path, dtype: torch.dtype) -> None:
        """``load_lora_weights``, then a guidance-conditioned LoRA's w embedding (which plain diffusers lacks)."""
        pipe.load_lora_weights(str(model_dir))
        load_guidance_cond_proj(getattr(pipe, component), model_dir)

    def usage_code(self, pipeline: str, teacher: str, model_ref: str, scheduler: str, *,
                   fp16_variant: bool = False, call_kwargs: str = "") -> str:  # fmt: skip
        """A guidance-conditioned LoRA also needs its w embedding, which plain diffusers cannot attach (lcm_exp
        does)."""
        attach = extra_import = ""
        if self.cfg.guidance_conditioned:
            extra_import = "from lcm_exp.adapters.lora import load_guidance_cond_proj  # the trained w embedding\n"
            attach = (f"\nload_guidance_cond_proj(pipe.{self.component}, model_id)  # guidance_cond_proj.safetensors "
                      "(a local folder)")
        return f"""import torch
from diffusers import {pipeline}, {scheduler}
{extra_import}
model_id = "{model_ref}"
pipe = {pipeline}.from_pretrained("{teacher}")
pipe.load_lora_weights(model_id){attach}
pipe.scheduler = {scheduler}.from_pretrained(model_id, subfolder="scheduler")
pipe = pipe.to("cuda" if torch.cuda.is_available() else "cpu")
image = pipe("a photo of a cat", num_inference_steps={self.recommended_steps}, guidance_scale={self.recommended_guidance_scale}{call_kwargs}).images[0]"""
