"""Typed schemas of every config group.

Each YAML file in conf/ names its schema in its defaults list, so a typo in a key or a wrong type fails while
Hydra composes, before anything heavy is imported. Groups whose variants carry different knobs (adapter, loss,
model family) get one schema per variant; the root keeps them as ``Any`` so either variant can be chosen.
Cross-field rules (w_min <= w_max, ...) live in ``validate.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

# ---------------------------------------------------------------- model (teacher) families


@dataclass
class ModelConfig:
    """A teacher: a hub id or a local folder in the diffusers layout, loaded by the family named in ``family``."""

    family: str = MISSING  # key of lcm_exp.models.FAMILIES (sd15 | sdxl)
    teacher: str = MISSING  # hub id or folder; the resolved config records the absolute path / id + revision
    revision: Optional[str] = None
    variant: Optional[str] = None  # e.g. "fp16" weight files of the teacher
    vae: Optional[str] = None  # VAE override (hub id or folder), e.g. an fp16-safe SDXL VAE
    vae_dtype: str = "fp32"  # fp32 | fp16 | bf16
    resolution: int = 512
    uncond: str = "empty_prompt"  # unconditional branch: empty_prompt (encode "") | zeros


@dataclass
class SDXLModelConfig(ModelConfig):
    uncond: str = "zeros"  # the reference SDXL scripts use zero prompt and pooled embeddings
    fixed_crop_and_size: bool = False  # time_ids with original = target and crop = 0 (reference --use_fix_crop_and_size)


# ---------------------------------------------------------------- adapters (how the student is made)


@dataclass
class FullAdapterConfig:
    """Student = a full copy of the teacher UNet plus a guidance-embedding input; target = its EMA."""

    name: str = "full"
    time_cond_proj_dim: int = 256
    cond_proj_init: str = "random"  # random (reference: student != teacher at step 0) | zero (student == teacher)
    ema_decay: float = 0.95
    export_weights: str = "ema"  # which student lands in model/unet: ema (reference) | online


LORA_TARGET_MODULES = [
    "to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
    "conv1", "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj",
]  # fmt: skip


@dataclass
class LoraAdapterConfig:
    """PEFT LoRA on the teacher UNet itself; the teacher is that UNet with adapters disabled."""

    name: str = "lora"
    rank: int = 64
    alpha: float = 64.0  # reference: alpha = rank (scale 1)
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGET_MODULES))
    target: str = "student"  # student (stop-grad, reference) | ema (EMA of the adapter weights)
    ema_decay: float = 0.95  # read only when target=ema
    guidance_conditioned: bool = False  # train a cond_proj + w embedding too (the plain LoRA learns a w-averaged map)
    time_cond_proj_dim: int = 256  # read only when guidance_conditioned
    export_weights: str = "online"  # online | ema (only with target=ema)


# ---------------------------------------------------------------- losses


@dataclass
class L2LossConfig:
    name: str = "l2"


@dataclass
class HuberLossConfig:
    name: str = "huber"
    huber_c: float = 0.001  # constant per element (reference default)


@dataclass
class PseudoHuberLossConfig:
    name: str = "pseudo_huber"
    scale: float = 0.00054  # c = scale * sqrt(d), d = elements per sample (improved consistency training)


# ---------------------------------------------------------------- the rest


@dataclass
class GuidanceConfig:
    """LCM-paper convention: guided = (1 + w) * cond - w * uncond; diffusers' guidance_scale = w + 1.

    w ~ U[w_min, w_max] per sample; w_min == w_max trains one fixed w (the LCM-LoRA recipe).
    """

    w_min: float = 5.0
    w_max: float = 15.0


@dataclass
class ObjectiveConfig:
    num_ddim_timesteps: int = 50  # N of the skipping-step DDIM grid (k = T // N)
    timestep_scaling_factor: float = 10.0  # boundary scalings; must match LCMScheduler for inference
    sigma_data: float = 0.5


@dataclass
class FiltersConfig:
    """SDXL-style sample filters over the sample's json; null disables a filter."""

    min_original_size: Optional[int] = None  # original height and width must both reach it
    max_pwatermark: Optional[float] = None
    min_aesthetic: Optional[float] = None
    on_missing: str = "keep"  # keep | drop a sample whose json lacks the key a filter reads (diffusers #5743)
    pwatermark_keys: list[str] = field(default_factory=lambda: ["pwatermark"])
    aesthetic_keys: list[str] = field(default_factory=lambda: ["aesthetic", "AESTHETIC_SCORE", "aesthetic_score"])


@dataclass
class DataConfig:
    """Image-text WebDataset input; the fields mirror lcm_exp.data.spec.DataSpec (its docstring has the details)."""

    source: str = "webdataset"
    shards: Any = MISSING  # str (brace range, pipe: command) or a list of them
    resampled: bool = True  # infinite stream of shards drawn with replacement; false: seeded finite epochs
    shuffle_buffer: int = 1000
    num_workers: int = 4
    persistent_workers: bool = False
    image_keys: list[str] = field(default_factory=lambda: ["jpg", "jpeg", "png", "webp"])
    image_interpolation: str = "bilinear"  # bilinear | bicubic | lanczos
    crop: str = "random"  # random | center
    random_flip: bool = False
    small_image: str = "upscale"  # upscale | skip images smaller than the resolution
    max_image_pixels: int = 8192 * 8192  # larger images are refused as decompression bombs
    caption_keys: list[str] = field(default_factory=lambda: ["txt", "text", "caption"])
    caption_json_field: Optional[str] = "caption"
    caption_choice: str = "first"  # first | random, when a caption is a list
    empty_caption: str = "keep"  # keep | skip
    size_json_keys: list[list[str]] = field(
        default_factory=lambda: [["original_height", "original_width"], ["height", "width"]]
    )  # candidate (height, width) keys of the ORIGINAL size in the json; else the decoded image's size
    filters: FiltersConfig = field(default_factory=FiltersConfig)
    max_consecutive_skips: int = 1000  # a worker raises after this many drops in a row (dead data)
    max_skip_fraction: float = 0.5  # the run stops when more of the samples seen so far were bad


@dataclass
class OptimConfig:
    name: str = "adamw"  # adamw | adamw8bit
    lr: float = 1e-6
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 1e-2
    eps: float = 1e-8
    max_grad_norm: float = 1.0
    lr_scheduler: str = "constant"  # any diffusers.optimization scheduler name
    lr_warmup_steps: int = 500
    scale_lr: bool = False  # lr *= global batch size (per-process batch x processes x accumulation)


@dataclass
class TrainerConfig:
    max_train_steps: int = 1000
    batch_size: int = 8  # per process
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "no"  # no | fp16 | bf16; teacher and target run in this dtype too
    gradient_checkpointing: bool = False
    allow_tf32: bool = True
    checkpointing_steps: int = 500
    checkpoints_total_limit: Optional[int] = None
    resume_from_checkpoint: Optional[str] = None  # latest | a checkpoint folder
    log_every_n_steps: int = 10


REFERENCE_VALIDATION_PROMPTS = [
    "portrait photo of a girl, photograph, highly detailed face, depth of field, moody light, golden hour, style by"
    " Dan Winters, Russell James, Steve McCurry, centered, extremely detailed, Nikon D850, award winning photography",
    "Self-portrait oil painting, a beautiful cyborg with golden hair, 8k",
    "Astronaut in a jungle, cold color palette, muted colors, detailed, 8k",
    "A photo of beautiful mountain with realistic sunset and blue lake, highly detailed, masterpiece",
]


@dataclass
class ValidationConfig:
    every_n_steps: int = 500  # 0 disables in-run validation (it still runs at the end unless at_end is false)
    at_end: bool = True
    prompts: list[str] = field(default_factory=lambda: list(REFERENCE_VALIDATION_PROMPTS))
    seeds: list[int] = field(default_factory=lambda: [0])
    num_inference_steps: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    guidance_scale: Optional[float] = None  # diffusers convention (w + 1); null: adapter's recommended value


@dataclass
class ExportConfig:
    enabled: bool = True


@dataclass
class LoggerConfig:
    name: str = "none"  # none | tensorboard | wandb
    project: str = "lcm_exp"
    mode: str = "offline"  # wandb mode: online | offline | disabled


@dataclass
class LauncherConfig:
    name: str = "inline"


@dataclass
class PathsConfig:
    cache_dir: str = MISSING  # tiny teachers, generated shards
    log_dir: str = MISSING  # parent of run and multirun dirs
    output_dir: str = MISSING  # this run's directory


@dataclass
class RunConfig:
    model: Any = MISSING
    adapter: Any = MISSING
    loss: Any = MISSING
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 0
    name: str = "lcd"  # run name, part of the run dir and the tracker run name
