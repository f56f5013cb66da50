"""The model-family interface the training loop talks to, and the loading every family shares.

A family turns a teacher checkpoint (hub id or local folder, loaded the same way) into: the noise schedule, a
frozen teacher network (the *denoiser*: a UNet, a transformer), a VAE, and a text side that maps a data batch to
one ``Conditioning`` and its unconditional twin. It also knows its denoiser's call convention and how to make a
guidance-conditioned student from it. The loop, the objective and the adapters never ask which family they hold.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import torch
from diffusers import AutoencoderKL, DiffusionPipeline

from lcm_exp.conditioning import Conditioning
from lcm_exp.models.registry import FAMILIES, FAMILY_NAMES, get_family
from lcm_exp.models.teacher_files import MissingComponentError, component_class_name, is_local, read_model_index
from lcm_exp.objective import NoiseSchedule

__all__ = ["FAMILIES", "FAMILY_NAMES", "ModelFamily", "get_family", "guidance_call_kwargs", "resolve_dtype"]


_DTYPES = {
    "fp32": torch.float32, "float32": torch.float32, "no": torch.float32,
    "fp16": torch.float16, "float16": torch.float16,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
}  # fmt: skip
UNCOND_MODES = ("empty_prompt", "zeros")


def resolve_dtype(value: str | torch.dtype, key: str) -> torch.dtype:
    """A torch dtype from a config string (fp32/fp16/bf16, accelerate's "no", or the torch names)."""
    if isinstance(value, torch.dtype):
        return value
    if value not in _DTYPES:
        raise ValueError(f"{key}: unknown dtype {value!r}; valid: {', '.join(_DTYPES)}")
    return _DTYPES[value]


class ModelFamily(ABC):
    """A teacher and its text conditioning.

    Attributes after construction: ``schedule`` (the objective's NoiseSchedule of the teacher),
    ``scheduler_config`` (the teacher's scheduler config, which inference schedulers start from),
    ``tokenizers``/``text_encoders`` (frozen, eval, ``weight_dtype``), ``vae`` (frozen, eval, ``vae_dtype``),
    ``denoiser`` (the teacher network: frozen, eval, ``weight_dtype``). ``weight_dtype`` is the frozen networks'
    dtype (``perf.frozen_dtype``), not necessarily the student's.
    """

    name: ClassVar[str]
    pipeline_class: ClassVar[type[DiffusionPipeline]]
    text_components: ClassVar[tuple[tuple[str, str], ...]]  # (tokenizer, text encoder) subfolders, in order
    denoiser_component: ClassVar[str]  # the denoiser's subfolder ("unet", "transformer")

    def __init__(
        self, cfg: Any, device: str | torch.device | None = None, weight_dtype: str | torch.dtype | None = None
    ):
        """``cfg``: a model config (teacher, revision, variant, vae, vae_dtype, resolution, uncond, ...).

        ``device`` / ``weight_dtype`` default to ``cfg.device`` / ``cfg.weight_dtype`` when the config has them,
        else cpu / fp32; the loop usually passes them because they come from the accelerator, not the model.
        """
        self.cfg = cfg
        self.teacher = str(cfg.teacher)
        self.revision = cfg.revision
        self.device = torch.device(device if device is not None else getattr(cfg, "device", "cpu"))
        self.weight_dtype = resolve_dtype(
            weight_dtype if weight_dtype is not None else getattr(cfg, "weight_dtype", "fp32"), "weight_dtype"
        )
        # auto: the frozen networks' dtype, but fp32 instead of fp16 (SD VAEs overflow in fp16)
        auto = torch.float32 if self.weight_dtype == torch.float16 else self.weight_dtype
        self.vae_dtype = auto if cfg.vae_dtype == "auto" else resolve_dtype(cfg.vae_dtype, "model.vae_dtype")
        if cfg.uncond not in UNCOND_MODES:
            raise ValueError(f"model.uncond: {cfg.uncond!r} is not one of {', '.join(UNCOND_MODES)}")
        self.uncond_mode: str = cfg.uncond

        # The schedule first: cheap, and a wrong teacher fails before any weight loads.
        self.schedule, self.scheduler_config = self._load_schedule()

        self.model_index = read_model_index(self.teacher, self.revision)
        self.tokenizers = [self._load(tok) for tok, _ in self.text_components]
        self.text_encoders = self._load_text_encoders()
        self.vae: AutoencoderKL | None = _frozen(self._load_vae(), self.device)
        self.denoiser: torch.nn.Module = _frozen(self.load_denoiser(self.weight_dtype), self.device)
        self._empty = self._encode_prompts([""]) if self.uncond_mode == "empty_prompt" else None

    @abstractmethod
    def _load_schedule(self) -> tuple[NoiseSchedule, dict[str, Any]]:
        """(the teacher's NoiseSchedule, its scheduler config) from the teacher's scheduler folder."""

    # ------------------------------------------------------------------ loading

    def _load(self, component: str, cls: type | None = None, **kwargs: Any) -> Any:
        """``cls.from_pretrained(teacher, subfolder=component)``; cls defaults to the model_index.json entry."""
        if cls is None:
            library, class_name = component_class_name(self.teacher, self.model_index, component)
            cls = getattr(importlib.import_module(library), class_name)
        elif is_local(self.teacher) and not (Path(self.teacher).expanduser() / component).is_dir():
            raise MissingComponentError(f"teacher folder {self.teacher!r} has no {component!r} subfolder")
        try:
            return cls.from_pretrained(self.teacher, subfolder=component, revision=self.revision, **kwargs)
        except OSError as err:
            raise MissingComponentError(
                f"teacher {self.teacher!r} (revision {self.revision!r}): cannot load {component!r} "
                f"as {cls.__name__}: {err}"
            ) from err

    def _load_text_encoders(self) -> list[torch.nn.Module]:
        return [_frozen(self._load(enc, variant=self.cfg.variant), self.device, self.weight_dtype)
                for _, enc in self.text_components]  # fmt: skip

    def _load_vae(self) -> AutoencoderKL:
        """The teacher's VAE, or ``cfg.vae`` (a whole-repo VAE such as an fp16-safe SDXL VAE, no revision); its
        latent scaling and shift factors are kept, so a latent-cache run scales latents without the VAE."""
        if self.cfg.vae is None:
            vae = self._load("vae", AutoencoderKL, variant=self.cfg.variant, torch_dtype=self.vae_dtype)
        else:
            try:
                vae = AutoencoderKL.from_pretrained(str(self.cfg.vae), torch_dtype=self.vae_dtype)
            except OSError as err:
                raise MissingComponentError(f"model.vae: cannot load VAE override {self.cfg.vae!r}: {err}") from err
        self.latent_scale = vae.config.scaling_factor
        self.latent_shift = getattr(vae.config, "shift_factor", None)  # SD3's VAE has one, SD1.5/SDXL's none
        return vae

    @abstractmethod
    def load_denoiser(self, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
        """A fresh copy of the teacher network from the checkpoint, on CPU (e.g. the full adapter's fp32 student)."""

    @abstractmethod
    def denoiser_fn(self, network: torch.nn.Module) -> Callable[..., torch.Tensor]:
        """``network`` (the denoiser or a student of its class) as the objective calls it:
        (x_t, model time, Conditioning, w embedding or None) -> raw output."""

    @abstractmethod
    def guided_student(self, teacher: torch.nn.Module, embedding_dim: int, init: str) -> torch.nn.Module:
        """A float32 student of the teacher's architecture plus a w-embedding input of ``embedding_dim`` (LCD's
        full student), with the teacher's weights; ``init`` ("random" | "zero") initialises the new input."""

    def w_embedding_dim(self, network: torch.nn.Module) -> int | None:
        """The width of the w embedding ``network`` takes (a guided student's; ``denoiser_fn``'s w_emb), None for a
        network without one. UNets record it as ``time_cond_proj_dim`` in their config."""
        return getattr(network.config, "time_cond_proj_dim", None)

    def networks(self) -> list[torch.nn.Module]:
        """Every network the family holds (the teacher denoiser, the VAE, the text encoders): attention kernels and
        placement apply to all of them."""
        return [m for m in (self.denoiser, self.vae, *self.text_encoders) if m is not None]

    def release_encoders(self) -> None:
        """Drop the VAE and text encoders (a latent-cache run needs neither per step); ``encoders`` reloads them."""
        self.vae, self.text_encoders = None, []

    @contextmanager
    def encoders(self):
        """The VAE and text encoders loaded for the block (validation of a cached run), released again after
        when they were released before."""
        released = self.vae is None
        if released:
            self.text_encoders = self._load_text_encoders()
            self.vae = _frozen(self._load_vae(), self.device)
        try:
            yield self
        finally:
            if released:
                self.release_encoders()

    # ------------------------------------------------------------------ encoding

    @torch.no_grad()
    def encode_images(self, pixel_values: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Latents as the reference makes them: a sample of the VAE posterior (not its mean) times scaling_factor.

        The VAE runs in ``vae_dtype``; latents come back in float32 so the schedule math stays exact and the
        caller casts once for the denoisers.
        """
        posterior = self.vae.encode(pixel_values.to(self.device, self.vae_dtype)).latent_dist
        return self.scale_latents(posterior.sample(generator)).float()

    def scale_latents(self, sample: torch.Tensor) -> torch.Tensor:
        """A VAE posterior sample in the denoiser's latent space: (sample - shift_factor) * scaling_factor, the
        shift only where the VAE config has one (SD3); needs no VAE loaded (the latent cache calls it)."""
        if self.latent_shift is not None:
            sample = sample - self.latent_shift
        return sample * self.latent_scale

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from latents of the denoiser's space, decoded in the VAE's own dtype (the inverse of
        ``scale_latents``, as the pipelines decode)."""
        z = latents.to(self.vae.dtype) / self.latent_scale
        return self.vae.decode(z if self.latent_shift is None else z + self.latent_shift).sample

    def _tokenize(self, tokenizer: Any, captions: list[str]) -> torch.Tensor:
        ids = tokenizer(
            captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
            return_tensors="pt",
        ).input_ids  # fmt: skip
        return ids.to(self.device)

    @abstractmethod
    def _encode_prompts(self, captions: list[str]) -> Conditioning:
        """Prompt (and pooled) embeddings of the captions, without time_ids."""

    @torch.no_grad()
    def encode_text(self, batch: dict[str, Any]) -> Conditioning:
        """The conditional branch of a data batch (uses ``captions``, and the SDXL size keys)."""
        return self._encode_prompts(list(batch["captions"]))

    def unconditional(self, cond: Conditioning) -> Conditioning:
        """The unconditional twin of ``cond``: ``uncond=zeros`` zeroes prompt and pooled embeddings, ``empty_prompt``
        repeats the cached encoding of "" (computed once at init); time_ids are kept as they are."""
        n, like = len(cond), cond.prompt_embeds
        if self.uncond_mode == "zeros":
            pooled = None if cond.pooled_embeds is None else torch.zeros_like(cond.pooled_embeds)
            return Conditioning(torch.zeros_like(like), pooled, cond.time_ids)
        empty = self._empty.to(device=like.device, dtype=like.dtype)
        pooled = None if empty.pooled_embeds is None else empty.pooled_embeds.repeat(n, 1)
        return Conditioning(empty.prompt_embeds.repeat(n, 1, 1), pooled, cond.time_ids)

    # ------------------------------------------------------------------ inference

    def time_ids(self, batch: dict[str, Any], n: int) -> torch.Tensor | None:
        """Micro-conditioning of a batch (SDXL's size and crop ids); None for families without it."""
        return None

    @classmethod
    def pipeline_call_kwargs(cls, model_cfg: Any) -> dict[str, Any]:
        """Extra arguments of the pipeline's __call__ that make it encode prompts as training did with the model
        config ``model_cfg`` (SD3: the T5 length); {} when the pipeline's defaults already do."""
        return {}

    @abstractmethod
    def build_pipeline(self, denoiser: torch.nn.Module, scheduler: Any) -> DiffusionPipeline:
        """A diffusers pipeline from the in-memory components with the given denoiser and scheduler."""


def guidance_call_kwargs(network: torch.nn.Module, guidance_scale: float) -> dict[str, Any]:
    """How a pipeline hands ``network`` the guidance scale g: ``guidance_scale=g`` (CFG, or the w = g - 1 that an LCM
    UNet student's pipeline embeds), unless the network says otherwise (the guided SD3 student: no CFG, w in
    joint_attention_kwargs)."""
    custom = getattr(network, "pipeline_call_kwargs", None)
    return custom(guidance_scale) if custom is not None else {"guidance_scale": guidance_scale}


def _frozen(module: torch.nn.Module, device: torch.device, dtype: torch.dtype | None = None) -> Any:
    """Diffusers models get their dtype at load (``.to(dtype)`` on them warns about fp32-kept modules)."""
    module.requires_grad_(False)
    return module.to(device, dtype).eval()
