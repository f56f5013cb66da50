"""Typed schemas of every config group.

Each YAML file in conf/ names its schema in its defaults list, so a typo in a key or a wrong type fails while
Hydra composes, before anything heavy is imported. Groups whose variants carry different knobs (adapter, loss,
model family) get one schema per variant; the root keeps them as ``Any`` so either variant can be chosen.
An enumerated field is declared with ``choice(default, ALLOWED)``: its allowed values live in ``choices.py`` and
``validate.py`` checks every such field. Cross-field rules (w_min <= w_max, ...) live in ``validate.py`` too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

from lcm_exp.config.choices import (
    ADAPTERS,
    ATTENTION_BACKENDS,
    AUTO_DTYPES,
    CAPTION_CHOICES,
    COND_PROJ_INITS,
    CROPS,
    DATA_CACHE_MODES,
    DATA_SOURCES,
    EMPTY_CAPTION_POLICIES,
    FAMILIES,
    FULL_EXPORT_WEIGHTS,
    INTERPOLATIONS,
    LAUNCHERS,
    LOGGER_MODES,
    LOGGERS,
    LORA_EXPORT_WEIGHTS,
    LORA_TARGETS,
    LOSSES,
    LR_SCHEDULERS,
    MIXED_PRECISION,
    NONFINITE_POLICIES,
    OBJECTIVES,
    ON_MISSING,
    OPTIMIZERS,
    SMALL_IMAGE_POLICIES,
    SOLVER_DTYPES,
    SWEEP_DIRECTIONS,
    UNCOND_MODES,
    choice,
)
from lcm_exp.evaluate.settings import EvalSettings

# ---------------------------------------------------------------- model (teacher) families


@dataclass
class ModelConfig:
    """A teacher: a hub id or a local folder in the diffusers layout, loaded by the family named in ``family``."""

    family: str = choice(MISSING, FAMILIES)  # which family class loads the teacher
    teacher: str = MISSING  # hub id or folder; the resolved config records the absolute path / id + revision
    revision: Optional[str] = None  # hub revision (branch, tag or commit) of the teacher
    variant: Optional[str] = None  # e.g. "fp16" weight files of the teacher
    vae: Optional[str] = None  # VAE override (hub id or folder), e.g. an fp16-safe SDXL VAE
    vae_dtype: str = choice("auto", AUTO_DTYPES)  # auto: perf.frozen_dtype, but fp32 for fp16 (SD VAEs overflow)
    resolution: int = 512  # training images are resized and cropped to this square size (px)
    uncond: str = choice("empty_prompt", UNCOND_MODES)  # unconditional branch: encode "" | zero embeddings
    attention: str = choice("sdpa", ATTENTION_BACKENDS)  # every UNet's and the VAE's kernel (xformers: needs CUDA)


@dataclass
class SDXLModelConfig(ModelConfig):
    uncond: str = choice("zeros", UNCOND_MODES)  # the reference SDXL scripts use zero prompt and pooled embeddings
    fixed_crop_and_size: bool = False  # time_ids: original = target, crop = 0 (reference --use_fix_crop_and_size)


@dataclass
class SD3ModelConfig(ModelConfig):
    """SD3 / SD3.5 (flow matching, transformer denoiser, CLIP-L + CLIP-G + T5)."""

    max_sequence_length: int = 256  # T5 tokens per prompt (StableDiffusion3Pipeline's default; inference uses it too)


# ---------------------------------------------------------------- adapters (how the student is made)


@dataclass
class FullAdapterConfig:
    """Student = a full copy of the teacher UNet plus a guidance-embedding input; target = its EMA."""

    name: str = choice("full", ADAPTERS)  # full: the whole UNet trains, with a w-embedding input
    time_cond_proj_dim: int = 256  # size of the w embedding the student takes (LCM's timestep_cond)
    cond_proj_init: str = choice("random", COND_PROJ_INITS)  # random (reference: student != teacher at step 0) | zero
    ema_decay: float = 0.95  # decay of the EMA target network (reference 0.95; the paper 0.999943)
    export_weights: str = choice("ema", FULL_EXPORT_WEIGHTS)  # which student lands in model/unet (reference: ema)


LORA_TARGET_MODULES = [
    "to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
    "conv1", "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj",
]  # fmt: skip


@dataclass
class LoraAdapterConfig:
    """PEFT LoRA on the teacher UNet itself; the teacher is that UNet with adapters disabled."""

    name: str = choice("lora", ADAPTERS)  # lora: PEFT adapters on the teacher network
    rank: int = 64  # LoRA rank r
    alpha: float = 64.0  # reference: alpha = rank (scale 1)
    dropout: float = 0.0  # dropout on the LoRA input
    # module names the adapters wrap (the reference's UNet list; SD3: attention)
    target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGET_MODULES))
    target: str = choice("student", LORA_TARGETS)  # student (stop-grad, reference) | ema (EMA of the adapter weights)
    ema_decay: float = 0.95  # read only when target=ema
    guidance_conditioned: bool = False  # train a cond_proj + w embedding too (the plain LoRA learns a w-averaged map)
    time_cond_proj_dim: int = 256  # read only when guidance_conditioned
    export_weights: str = choice("online", LORA_EXPORT_WEIGHTS)  # ema only with target=ema


# ---------------------------------------------------------------- losses


@dataclass
class L2LossConfig:
    name: str = choice("l2", LOSSES)  # mean squared error


@dataclass
class HuberLossConfig:
    name: str = choice("huber", LOSSES)  # pseudo-Huber with a constant c per element
    huber_c: float = 0.001  # constant per element (reference default)


@dataclass
class PseudoHuberLossConfig:
    name: str = choice("pseudo_huber", LOSSES)  # pseudo-Huber with c scaled by the sample size
    scale: float = 0.00054  # c = scale * sqrt(d), d = elements per sample (improved consistency training)


# ---------------------------------------------------------------- the rest


@dataclass
class GuidanceConfig:
    """LCM-paper convention: guided = (1 + w) * cond - w * uncond; diffusers' guidance_scale = w + 1.

    w ~ U[w_min, w_max] per sample; w_min == w_max trains one fixed w (the LCM-LoRA recipe).
    """

    w_min: float = 5.0  # lower end of w ~ U[w_min, w_max] (LCM convention; guidance_scale = w + 1)
    w_max: float = 15.0  # upper end of the w range


@dataclass
class ObjectiveConfig:
    """LCD (Latent Consistency Distillation): the student maps x_t to x0 under LCMScheduler's boundary scalings."""

    name: str = choice("lcd", OBJECTIVES)  # the consistency objective: what the student is trained to hit
    num_ddim_timesteps: int = 50  # N of the skipping-step DDIM grid (k = T // N)
    timestep_scaling_factor: float = 10.0  # boundary scalings; must match LCMScheduler for inference
    sigma_data: float = 0.5  # sigma_data of the boundary scalings (must match the inference scheduler)


@dataclass
class TCDObjectiveConfig:
    """TCD (Trajectory Consistency Distillation): the student maps x_t to a drawn point x_s of the trajectory."""

    name: str = choice("tcd", OBJECTIVES)  # the consistency objective: what the student is trained to hit
    num_ddim_timesteps: int = 50  # N of the skipping-step DDIM grid (k = T // N); s is drawn on it
    gamma: float = 0.3  # sampling stochasticity, exported as TCDScheduler's eta (0: deterministic)


@dataclass
class PCMObjectiveConfig:
    """PCM (Phased Consistency Model): the student maps x_t to the lower edge of its phase."""

    name: str = choice("pcm", OBJECTIVES)  # the consistency objective: what the student is trained to hit
    num_ddim_timesteps: int = 40  # must be a multiple of phases (the sampler then lands on the phase edges)
    phases: int = 4  # K phases of the trajectory; K, 2K, ... sampling steps land on the phase edges


@dataclass
class FiltersConfig:
    """SDXL-style sample filters over the sample's json; null disables a filter."""

    min_original_size: Optional[int] = None  # original height and width must both reach it
    max_pwatermark: Optional[float] = None  # drop samples whose watermark probability exceeds this
    min_aesthetic: Optional[float] = None  # drop samples whose aesthetic score is below this
    on_missing: str = choice("keep", ON_MISSING)  # a sample whose json lacks a filter's key (diffusers #5743)
    # json keys read as the watermark probability, first present wins
    pwatermark_keys: list[str] = field(default_factory=lambda: ["pwatermark"])
    # json keys read as the aesthetic score, first present wins
    aesthetic_keys: list[str] = field(default_factory=lambda: ["aesthetic", "AESTHETIC_SCORE", "aesthetic_score"])


@dataclass
class DataConfig:
    """Image-text input: WebDataset shards, an image folder or a `datasets` dataset (``source``).

    The decoding fields mirror lcm_exp.data.spec.DataSpec (its docstring has the details) and apply to every source;
    shards/resampled/image_keys are WebDataset-only, path/split/columns belong to the other two.
    """

    source: str = choice("webdataset", DATA_SOURCES)  # where samples come from
    shards: Any = MISSING  # webdataset: str (brace range, pipe: command) or a list of them
    # imagefolder: the folder; hf_dataset: a save_to_disk folder, a local dataset folder, or a hub dataset name
    path: Optional[str] = None
    dataset_config: Optional[str] = None  # hf_dataset: the dataset's config name
    split: str = "train"  # hf_dataset
    image_column: str = "image"  # hf_dataset
    caption_column: Optional[str] = None  # imagefolder/hf_dataset: null = the first of caption_keys present
    resampled: bool = True  # infinite stream of shards drawn with replacement; false: seeded finite epochs
    shuffle_buffer: int = 1000  # samples held for shuffling (0 or 1: the stream's order)
    num_workers: int = 4  # DataLoader worker processes (0: decode in the training process)
    persistent_workers: bool = False  # keep workers alive between epochs
    # sample members read as the image, first present wins
    image_keys: list[str] = field(default_factory=lambda: ["jpg", "jpeg", "png", "webp"])
    image_interpolation: str = choice("bilinear", INTERPOLATIONS)  # resize filter
    crop: str = choice("random", CROPS)  # square crop after resizing the shorter side
    random_flip: bool = False  # horizontal flip with probability 0.5
    small_image: str = choice("upscale", SMALL_IMAGE_POLICIES)  # images smaller than the resolution
    max_image_pixels: int = 8192 * 8192  # larger images are refused as decompression bombs
    # sample members (or columns) read as the caption, first present wins
    caption_keys: list[str] = field(default_factory=lambda: ["txt", "text", "caption"])
    # field of the sample's json holding the caption, when no caption member exists
    caption_json_field: Optional[str] = "caption"
    caption_choice: str = choice("first", CAPTION_CHOICES)  # when a caption is a list
    # keep (train on it) or skip a sample whose caption is empty
    empty_caption: str = choice("keep", EMPTY_CAPTION_POLICIES)
    # candidate (height, width) keys of the ORIGINAL size in the json; else the decoded image's size
    size_json_keys: list[list[str]] = field(
        default_factory=lambda: [["original_height", "original_width"], ["height", "width"]]
    )
    filters: FiltersConfig = field(default_factory=FiltersConfig)
    max_consecutive_skips: int = 1000  # a worker raises after this many drops in a row (dead data)
    stall_timeout_s: float = 120.0  # a shard that sends no byte for this long (a hung pipe:) stops the run, naming it
    max_skip_fraction: float = 0.5  # the run stops when more of the samples seen so far were bad
    # auto: a latent cache shared by every run of the same data and teacher, made where the data repeats (lcm_exp/
    # train/shared_cache.py) | never: encode every step | always: cache any local data
    cache: str = choice("auto", DATA_CACHE_MODES)
    cache_max_samples: int = 100_000  # auto caches at most this many samples


@dataclass
class OptimConfig:
    name: str = choice("adamw", OPTIMIZERS)  # AdamW, or bitsandbytes' 8-bit AdamW
    lr: float = 1e-6  # learning rate
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # AdamW betas
    weight_decay: float = 1e-2  # AdamW weight decay
    eps: float = 1e-8  # AdamW epsilon
    max_grad_norm: float = 1.0  # gradient norm clipping
    lr_scheduler: str = choice("constant", LR_SCHEDULERS)  # diffusers.optimization schedulers
    lr_warmup_steps: int = 500  # linear warm-up steps of the LR schedule
    scale_lr: bool = False  # lr *= global batch size (per-process batch x processes x accumulation)


@dataclass
class TrainerConfig:
    max_train_steps: int = 1000  # optimizer steps to train
    batch_size: int = 8  # per process
    gradient_accumulation_steps: int = 1  # micro-batches per optimizer step
    mixed_precision: str = choice("no", MIXED_PRECISION)  # teacher and target run in this dtype too
    gradient_checkpointing: bool = False  # recompute the student's activations in the backward (less memory)
    allow_tf32: bool = True  # TF32 matmuls on CUDA
    checkpointing_steps: int = 500  # save a checkpoint every this many steps (and at the end)
    checkpoints_total_limit: Optional[int] = None  # keep only the newest this many checkpoints (null: all)
    resume_from_checkpoint: Optional[str] = None  # latest | a checkpoint folder
    log_every_n_steps: int = 10  # metrics.jsonl / tracker row every this many steps
    nonfinite: str = choice("skip", NONFINITE_POLICIES)  # a NaN/inf loss: skip the step (counted) | stop
    max_consecutive_nonfinite: int = 5  # with skip: abort after this many bad steps in a row


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
    at_end: bool = True  # validation images after the last step
    prompts: list[str] = field(default_factory=lambda: list(REFERENCE_VALIDATION_PROMPTS))  # validation prompts
    seeds: list[int] = field(default_factory=lambda: [0])  # one image per prompt and seed
    num_inference_steps: list[int] = field(default_factory=lambda: [1, 2, 4, 8])  # a grid per step count
    guidance_scale: Optional[float] = None  # diffusers convention (w + 1); null: adapter's recommended value
    vae_slicing: bool = False  # decode validation images one at a time (less memory)
    vae_tiling: bool = False  # decode large validation images tile by tile (less memory, may show seams)


@dataclass
class ExportConfig:
    enabled: bool = True  # write <run dir>/model/ at the end
    fp16_variant: bool = False  # full adapter: also write unet/diffusion_pytorch_model.fp16.safetensors
    push_to_hub: bool = False  # upload model/ (weights, scheduler, card; never checkpoints) after training
    hub_model_id: Optional[str] = None  # "user/name" or "name"; the token comes from HF_TOKEN or `hf auth login`
    private: bool = True  # visibility of a Hub repo the upload creates


@dataclass
class LoggerConfig:
    name: str = choice("none", LOGGERS)  # tracker (writes under <run dir>/logs/)
    project: str = "lcm_exp"  # tracker project name
    mode: str = choice("offline", LOGGER_MODES)  # wandb mode


@dataclass
class InlineLauncherConfig:
    """Train in the Hydra process itself (also what each rank does under `accelerate launch launch.py`)."""

    name: str = choice("inline", LAUNCHERS)  # train in this process


@dataclass
class AccelerateLauncherConfig:
    """Hydra composes once; the job starts its workers as a child `accelerate launch` reading the run dir."""

    name: str = choice("accelerate", LAUNCHERS)  # a child `accelerate launch` runs the workers
    num_processes: int = 1  # per machine (GPUs per node)
    num_machines: int = 1  # machines (nodes)
    machine_rank: int = 0  # this machine's rank (multi-node)
    main_process_ip: Optional[str] = None  # rank-0 machine's address (multi-node)
    main_process_port: Optional[int] = None  # null: a free port
    dynamo_backend: str = "no"  # accelerate's --dynamo_backend (e.g. inductor)
    config_file: Optional[str] = None  # an accelerate config (FSDP / DeepSpeed); its settings win
    cpu: Optional[bool] = None  # null: CPU when no GPU is visible (DDP over gloo)


@dataclass
class PathsConfig:
    cache_dir: str = MISSING  # tiny teachers, generated shards
    log_dir: str = MISSING  # parent of run and multirun dirs
    output_dir: str = MISSING  # this run's directory


@dataclass
class PerfConfig:
    """Speed and memory switches that leave the LCD math unchanged; every default is the optimised setting.

    conf/perf/reference_parity.yaml reproduces the per-step work of the public diffusers LCD scripts (lcd-facts
    section 2), for benchmarks. Measured effects: docs/performance.md (``python -m lcm_exp.bench``).
    """

    teacher_single_pass: bool = True  # cond + uncond as one 2B teacher call (reference: two calls)
    no_grad_first: bool = True  # teacher and target run before the student forward (reference: student first)
    # dtype of the networks that take no gradient (teacher, text encoders, the target's copy; the VAE with
    # model.vae_dtype=auto): auto = the mixed-precision dtype, or in full precision bf16 where the device runs bf16
    # matmuls fast (lcm_exp/perf/precision.py) | fp32 (reference) | bf16 | fp16
    frozen_dtype: str = choice("auto", AUTO_DTYPES)
    reference_autocast: bool = False  # the reference's dtype-less torch.autocast around its teacher (and LoRA target)
    ema_foreach: bool = True  # fused foreach EMA (reference: a Python loop over the tensors)
    solver_dtype: str = choice("fp32", SOLVER_DTYPES)  # the DDIM-step table (reference: fp64, promotes z_prev)
    host_side_sampling: bool = False  # w and its embedding made on the CPU and copied (reference)
    sync_every_step: bool = False  # read the loss back to the host every step (reference); else at log intervals
    fused_optimizer: bool = True  # fused AdamW where torch has the kernel (CUDA, CPU); false: torch's default (ref.)
    channels_last: bool = False  # UNets in channels_last memory format (opt-in: a GPU win, none measured on CPU)
    compile: bool = False  # torch.compile the UNets (minutes of warm-up; pays off on long GPU runs)
    cudnn_benchmark: bool = True  # cuDNN picks the fastest kernel per conv shape (training shapes are fixed; CUDA)


@dataclass
class SweepConfig:
    """What one job knows about the sweep it belongs to (lcm_exp/sweep); sweep-level knobs are hydra.sweeper.*."""

    name: Optional[str] = None  # named sweep: dir <log_dir>/sweeps/<name>; a rerun skips done jobs, resumes others
    objective: str = "final_loss"  # metric each job returns to the sweeper (a wrong name lists the available ones)
    direction: str = choice("minimize", SWEEP_DIRECTIONS)  # which objective the summary calls best
    derive_seeds: bool = True  # job seed = hash(seed, job overrides); false: every job trains with `seed`
    base_seed: Optional[int] = None  # set by the job: the sweep seed its own seed was derived from
    overrides: list[str] = field(default_factory=list)  # set by the job: the overrides that identify it


@dataclass
class RunConfig:
    model: Any = MISSING
    adapter: Any = MISSING
    loss: Any = MISSING
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    objective: Any = MISSING  # ObjectiveConfig | TCDObjectiveConfig | PCMObjectiveConfig (conf/objective/)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    evaluation: EvalSettings = field(default_factory=EvalSettings)  # few-step fidelity vs teacher baselines
    export: ExportConfig = field(default_factory=ExportConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    launcher: Any = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig)
    perf: PerfConfig = field(default_factory=PerfConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    seed: int = 0  # the run's seed: model init, data order, noise
    name: str = "lcd"  # run name, part of the run dir and the tracker run name
    force: bool = False  # run even if the run dir already holds a finished run (it is replaced)
