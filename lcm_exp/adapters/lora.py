"""LoRA student: PEFT adapters on a base network that holds the teacher's weights.

When the student's base runs in the frozen networks' dtype (mixed precision, or fp32 throughout), there is one copy
of the weights: the adapters go onto the family's teacher network, and the teacher passes run through a plain view
of it made before the adapters were added (the same weight tensors, none of PEFT's per-layer wrappers, which cost
as much as the convolutions on a GPU). When the frozen dtype is lower than the student's (bf16 teacher, fp32 LoRA
training on a CPU with fast bf16), the base is a second copy in the student's dtype.

The target is the student under stop-grad (reference) or, with ``target: ema``, a second adapter holding the EMA
of the trained one. When the frozen dtype is lower than the student's, the target pass runs a plain copy in the
frozen dtype with the adapter merged into its weights (W + scale * B A, refreshed after each update): the same
function as the student under stop-grad, without the adapter's extra convolutions and fp32 weights. A
guidance-conditioned LoRA (UNet teachers) also trains the LCM student's w-embedding input,
``time_embedding.cond_proj``.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import load_file, save_file

from lcm_exp.adapters.base import DEFAULT_OPTIONS, AdapterOptions, StudentAdapter
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


def shared_view(network: torch.nn.Module) -> torch.nn.Module:
    """A second module tree over the same parameter and buffer tensors (no weight memory): PEFT later wraps the
    layers of ``network`` in place, this view keeps the plain ones."""
    memo = {id(t): t for t in [*network.parameters(), *network.buffers()]}
    return copy.deepcopy(network, memo)


class MergedCopy:
    """A plain copy of the teacher in its (frozen) dtype whose adapted layers hold W + scale * B A of one adapter of
    the student: the student's function under stop-grad at the cost of a plain forward. Refreshed lazily, so the
    weights a resume loads are picked up by the first step."""

    def __init__(self, student: torch.nn.Module, teacher: torch.nn.Module, adapter: str):
        from peft.tuners.lora import LoraLayer

        self.module = copy.deepcopy(teacher).requires_grad_(False).eval()
        self.adapter, self.stale = adapter, True
        self._layers = [(layer, self.module.get_submodule(name)) for name, layer in student.named_modules()
                        if isinstance(layer, LoraLayer)]  # fmt: skip
        self._cond_proj = getattr(getattr(student, "time_embedding", None), "cond_proj", None)
        if self._cond_proj is not None:  # a guidance-conditioned LoRA: its trained w embedding, copied on refresh
            dtype = next(self.module.parameters()).dtype
            self.module.time_embedding.cond_proj = copy.deepcopy(self._cond_proj).to(dtype).requires_grad_(False)

    @torch.no_grad()
    def refresh_if_stale(self) -> None:
        if not self.stale:
            return
        for layer, plain in self._layers:
            plain.weight.copy_(layer.get_base_layer().weight.float() + _delta(layer, self.adapter))
        if self._cond_proj is not None:
            self.module.time_embedding.cond_proj.weight.copy_(self._cond_proj.weight)
        self.stale = False


def _delta(layer, adapter: str) -> torch.Tensor:
    """scale * B A as one matmul (PEFT's own get_delta_weight runs a convolution per conv layer, 5-10x slower on a
    CPU); LoRA's B is 1x1 for convolutions, so B A is the merged kernel. Anything else: PEFT's own."""
    base = layer.get_base_layer()
    if layer.use_dora.get(adapter) or getattr(base, "groups", 1) != 1 or getattr(layer, "fan_in_fan_out", False):
        return layer.get_delta_weight(adapter).float()
    a, b = layer.lora_A[adapter].weight, layer.lora_B[adapter].weight
    return (b.flatten(1).float() @ a.flatten(1).float()).view(base.weight.shape) * layer.scaling[adapter]


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

    target_is_student = True

    def __init__(self, cfg, family, options: AdapterOptions = DEFAULT_OPTIONS):
        self.cfg, self.component = cfg, family.denoiser_component
        self._call = family.denoiser_fn
        if next(family.denoiser.parameters()).dtype == options.compute_dtype:
            self.net = family.denoiser  # one copy of the weights: the base and (through a plain view) the teacher
            self.teacher = shared_view(self.net)
        else:
            self.net = family.load_denoiser(options.compute_dtype).to(family.device)
            self.teacher = family.denoiser
        self.net.requires_grad_(False)
        merged_target = options.frozen_dtype != options.compute_dtype
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
        target_adapter = EMA_ADAPTER if self.ema else TRAINED
        self.target_copy = MergedCopy(self.net, self.teacher, target_adapter) if merged_target else None

    def _adapter_params(self, name: str) -> list[torch.nn.Parameter]:
        return [p for n, p in self.net.named_parameters() if f".{name}." in n and "lora_" in n]

    @property
    def trainable_module(self):
        return self.net

    def bind(self, prepared):
        self._prepared = prepared

    def networks(self) -> list[torch.nn.Module]:
        """The student (adapters on its base), the plain teacher and, in a lower frozen dtype, the merged target."""
        return [self.net, self.teacher, *([self.target_copy.module] if self.target_copy else [])]

    def distill_models(self) -> DistillModels:
        if self.target_copy is not None:
            self.target_copy.refresh_if_stale()
            target = self._call(self.target_copy.module)
        else:
            call = self._call(self.net)

            def target(x, t, c, w):
                with _active_adapter(self.net, EMA_ADAPTER) if self.ema else nullcontext():
                    return call(x, t, c, w)

        return DistillModels(student=self._call(self._prepared), teacher=self._call(self.teacher), target=target,
                             guidance_embedding_dim=self.guidance_embedding_dim)  # fmt: skip

    def after_optimizer_step(self):
        if self.ema is not None:
            self.ema.update()
        if self.target_copy is not None:
            self.target_copy.stale = True

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
image = pipe("a photo of a cat", num_inference_steps={self.recommended_steps}, guidance_scale={self.recommended_guidance_scale}{call_kwargs}).images[0]"""  # noqa: E501  (the user's snippet, one line)
