"""Few-step images from a distilled student.

    python -m lcm_exp.generate <run dir or model dir> "a photo of a cat" ["another prompt" ...]
        [--steps 4] [--seeds 0 1 2] [--height H --width W] [--guidance-scale G | --w W] [--out DIR]
        [--teacher ID_OR_FOLDER] [--device cuda] [--dtype fp16] [--attention sdpa] [--vae-slicing] [--vae-tiling]

The teacher pipeline comes from the run record (``<run dir>/run.json``: teacher, revision, weight variant, VAE
override); for a model folder without a run record, from ``--teacher`` or the card's ``base_model``. The exported
student goes in (full: ``model/unet``, its fp16 variant when running in fp16; LoRA:
``pytorch_lora_weights.safetensors``) with the scheduler its objective exported to ``model/scheduler`` (LCD:
LCMScheduler; TCD, PCM: TCDScheduler, called with the objective's eta from the run record).

Guidance convention: diffusers' ``guidance_scale`` is the LCM paper's w + 1 (``--w 7`` == ``--guidance-scale 8``).
A full student embeds w (no CFG pass); a plain LoRA student runs at guidance_scale 1 (no CFG). The default is the
adapter's recommended value (full 8.0, LoRA 1.0). Writes one PNG per (prompt, seed), ``grid.png`` (rows: prompts,
columns: seeds) and ``generate.json`` (the settings) into ``--out`` (default ``<run dir>/samples``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import yaml
from PIL import Image

log = logging.getLogger(__name__)

LORA_FILE = "pytorch_lora_weights.safetensors"
COND_PROJ_FILE = "guidance_cond_proj.safetensors"  # a guidance-conditioned LoRA's w embedding (lcm_exp.adapters.lora)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class Student:
    """An exported student and the teacher it belongs to."""

    model_dir: Path
    run_dir: Path | None  # None for a bare model folder
    adapter: str  # full | lora
    teacher: str
    revision: str | None = None
    teacher_variant: str | None = None  # the teacher's weight files (e.g. "fp16"), as in training
    vae: str | None = None  # the VAE override used in training
    resolution: int | None = None
    w_range: tuple[float, float] | None = None  # trained LCM-paper w range
    vae_scale_factor: int | None = None  # image side / latent side, when known before the weights load
    embeds_w: bool = False  # full, or a guidance-conditioned LoRA: w is an input, no CFG pass
    call_kwargs: dict | None = None  # pipeline __call__ arguments the family needs (SD3: the trained T5 length)
    sampling: dict | None = None  # what each pipeline call passes for the objective (TCD: eta); from the record

    @property
    def recommended_guidance_scale(self) -> float:
        return recommended_guidance("full" if self.embeds_w else self.adapter)


def adapter_kind(model_dir: Path) -> str:
    from lcm_exp.models.registry import DENOISERS

    if any((model_dir / folder).is_dir() for folder in DENOISERS):
        return "full"
    if (model_dir / LORA_FILE).is_file():
        return "lora"
    raise FileNotFoundError(
        f"{model_dir}: neither unet/ (full student) nor {LORA_FILE} (LoRA student); pass a run dir or its model/ folder"
    )


def locate_student(path: str | Path, teacher: str | None = None) -> Student:
    """Read what the run record (or the model card) says about the exported student at ``path``."""
    path = Path(path).expanduser()
    model_dir = path / "model" if (path / "model").is_dir() else path
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{path}: no such run dir or model folder")
    student = Student(model_dir=model_dir, run_dir=None, adapter=adapter_kind(model_dir), teacher=teacher or "")
    student.embeds_w = student.adapter == "full" or (model_dir / COND_PROJ_FILE).is_file()
    record_path = model_dir.parent / "run.json"
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        config, facts = record.get("config") or {}, record.get("teacher") or {}
        student.run_dir = model_dir.parent
        student.revision, student.teacher_variant = facts.get("revision"), facts.get("variant")
        student.vae = facts.get("vae")
        student.vae_scale_factor = facts.get("vae_scale_factor")
        model = config.get("model") or {}
        student.resolution = model.get("resolution")
        if "family" in model:
            from types import SimpleNamespace

            from lcm_exp.models.registry import get_family

            student.call_kwargs = get_family(model["family"]).pipeline_call_kwargs(SimpleNamespace(**model))
        guidance = config.get("guidance") or {}
        if "w_min" in guidance:
            student.w_range = (guidance["w_min"], guidance["w_max"])
        if config.get("objective"):
            from lcm_exp.train.components import objective_from_config

            student.sampling = objective_from_config(config["objective"]).sampling_kwargs()
        if not teacher:
            student.teacher = facts.get("teacher") or ""
    if not student.teacher:
        student.teacher = card_base_model(model_dir) or ""
    if not student.teacher:
        raise ValueError(f"{model_dir}: no run record or card base_model names the teacher; pass --teacher")
    if student.vae_scale_factor is None:
        student.vae_scale_factor = local_vae_factor(student.vae or student.teacher, sub=not student.vae)
    return student


def local_vae_factor(source: str, sub: bool) -> int | None:
    """The VAE's downsampling factor from its config.json, when the VAE (or the teacher) is a local folder."""
    path = Path(source).expanduser() / ("vae" if sub else "") / "config.json"
    try:
        return 2 ** (len(json.loads(path.read_text())["block_out_channels"]) - 1)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def card_base_model(model_dir: Path) -> str | None:
    card = model_dir / "README.md"
    if not card.is_file():
        return None
    parts = card.read_text().split("---", 2)
    if len(parts) < 3 or parts[0].strip():
        return None
    meta = yaml.safe_load(parts[1]) or {}
    return meta.get("base_model") if isinstance(meta, dict) else None


def recommended_guidance(adapter: str) -> float:
    if adapter == "full":
        from lcm_exp.adapters.full import FullAdapter

        return FullAdapter.recommended_guidance_scale
    from lcm_exp.adapters.lora import LoraAdapter

    return LoraAdapter.recommended_guidance_scale


def resolve_guidance(student: Student, guidance_scale: float | None = None, w: float | None = None) -> float:
    """diffusers guidance_scale from either convention (w + 1), else the student's recommended value; a chosen w
    outside the trained range warns."""
    if guidance_scale is not None and w is not None:
        raise ValueError("give guidance_scale (diffusers, = w + 1) or w (LCM paper), not both")
    chosen = w + 1.0 if w is not None else guidance_scale
    scale = chosen if chosen is not None else student.recommended_guidance_scale
    if chosen is None or not student.w_range:
        return scale
    lo, hi = student.w_range
    if student.embeds_w and not lo <= scale - 1 <= hi:
        log.warning("w = guidance_scale - 1 = %g is outside the trained range [%g, %g] (guidance.w_min..w_max of "
                    "the run): expect washed-out or broken images", scale - 1, lo, hi)  # fmt: skip
    elif not student.embeds_w and scale != 1.0:
        log.warning("this LoRA student has no w input (it learned the guided map for w in [%g, %g]): "
                    "guidance_scale %g adds classifier-free guidance on top of it; 1.0 is its recommended value",
                    lo, hi, scale)  # fmt: skip
    return scale


def load_pipeline(student: Student, *, device: str = "cpu", dtype: torch.dtype = torch.float32,
                  attention: str = "sdpa", vae_slicing: bool = False, vae_tiling: bool = False):  # fmt: skip
    """The teacher's pipeline with the student in it and the student's exported scheduler (LCMScheduler,
    FlowMatchLCMScheduler, ...)."""
    from diffusers import AutoencoderKL, DiffusionPipeline

    from lcm_exp.adapters.full import saved_network_class
    from lcm_exp.adapters.lora import LoraAdapter
    from lcm_exp.models.attention import set_attention_backend
    from lcm_exp.models.registry import DENOISERS
    from lcm_exp.train.export import load_exported_scheduler

    components = {}
    if student.adapter == "full":
        denoiser = next(c for c in DENOISERS if (student.model_dir / c).is_dir())  # unet | transformer
        fp16_file = student.model_dir / denoiser / "diffusion_pytorch_model.fp16.safetensors"
        variant = "fp16" if dtype == torch.float16 and fp16_file.is_file() else None
        components[denoiser] = saved_network_class(student.model_dir / denoiser).from_pretrained(
            student.model_dir, subfolder=denoiser, variant=variant, torch_dtype=dtype
        )
    if student.vae:
        components["vae"] = AutoencoderKL.from_pretrained(student.vae, torch_dtype=dtype)
    pipe = DiffusionPipeline.from_pretrained(
        student.teacher, revision=student.revision, variant=student.teacher_variant, torch_dtype=dtype, **components
    )
    denoiser = next(c for c in DENOISERS if getattr(pipe, c, None) is not None)  # unet | transformer
    if student.adapter == "lora":  # also attaches a guidance-conditioned LoRA's w embedding
        LoraAdapter.load_student(pipe, denoiser, student.model_dir, dtype)
    pipe.scheduler = load_exported_scheduler(student.model_dir)
    set_attention_backend(attention, [getattr(pipe, denoiser), pipe.vae])
    pipe.vae.use_slicing, pipe.vae.use_tiling = vae_slicing, vae_tiling
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


@torch.no_grad()
def generate_images(pipe, prompts: Sequence[str], seeds: Sequence[int], *, steps: int, guidance_scale: float,
                    height: int | None = None, width: int | None = None,
                    call_kwargs: dict | None = None,
                    sampling: dict | None = None) -> list[list[Image.Image]]:  # fmt: skip
    """images[prompt][seed]; each image from its own CPU-seeded generator, so it does not depend on the device or on
    which other prompts and seeds are in the call. ``sampling``: extra pipeline arguments of the objective (eta)."""
    from lcm_exp.models.family import guidance_call_kwargs
    from lcm_exp.models.registry import DENOISERS

    denoiser = next(getattr(pipe, c) for c in DENOISERS if getattr(pipe, c, None) is not None)
    call_kwargs = {**(call_kwargs or {}), **guidance_call_kwargs(denoiser, guidance_scale), **(sampling or {})}
    return [
        [
            pipe(
                prompt,
                num_inference_steps=steps,
                height=height,
                width=width,
                generator=seeded_generator(seed),
                **call_kwargs,
            ).images[0]  # fmt: skip
            for seed in seeds
        ]
        for prompt in prompts
    ]


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator, and the global RNG seeded alike: StableDiffusion3Pipeline steps its scheduler without the
    generator, so FlowMatchLCMScheduler's re-noising draws from the global one (else images change run to run)."""
    torch.manual_seed(seed)
    return torch.Generator("cpu").manual_seed(seed)


def save_images(images: list[list[Image.Image]], out_dir: Path, seeds: Sequence[int], settings: dict) -> list[Path]:
    from lcm_exp.train.validation import image_grid

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for p, row in enumerate(images):
        for seed, image in zip(seeds, row, strict=True):
            paths.append(out_dir / f"p{p:02d}_s{seed}.png")
            image.save(paths[-1])
    image_grid([im for row in images for im in row], cols=len(seeds)).save(out_dir / "grid.png")
    (out_dir / "generate.json").write_text(json.dumps(settings, indent=2, default=str))
    return paths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lcm_exp.generate", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("path", type=Path, help="a run dir or an exported model folder (<run dir>/model)")
    parser.add_argument("prompts", nargs="+", help="one or more prompts")
    parser.add_argument("--steps", type=int, default=4, help="inference steps (LCM: 2-8; default 4)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--height", type=int, help="default: the training resolution (else the pipeline's default)")
    parser.add_argument("--width", type=int, help="default: the training resolution (else the pipeline's default)")
    guidance = parser.add_mutually_exclusive_group()
    guidance.add_argument("--guidance-scale", type=float, help="diffusers convention, = w + 1 (default: the adapter's)")
    guidance.add_argument("--w", type=float, help="LCM-paper guidance w (= guidance_scale - 1)")
    parser.add_argument("--teacher", help="teacher hub id or folder (default: from the run record or the model card)")
    parser.add_argument("--out", type=Path, help="output folder (default: <run dir>/samples, else ./samples)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), help="default: fp16 on CUDA, fp32 elsewhere")
    parser.add_argument("--attention", choices=["sdpa", "xformers", "classic"], default="sdpa")
    parser.add_argument("--vae-slicing", action="store_true", help="decode one image at a time (less memory)")
    parser.add_argument("--vae-tiling", action="store_true", help="decode large images tile by tile (less memory)")
    return parser


def fail(message: str) -> None:
    """A user error: one line, exit code 2 (no traceback, no usage text)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def check_device(name: str) -> None:
    import torch

    try:
        torch.empty(0, device=name)
    except (RuntimeError, AssertionError, ValueError) as err:
        fail(f"--device {name}: not usable on this machine ({' '.join(str(err).split())})")


def check_size(flag: str, value: int | None, factor: int | None) -> None:
    if value is None:
        return
    if value <= 0:
        fail(f"{flag} {value}: must be a positive number of pixels")
    if factor and value % factor:
        nearest = max(factor, value - value % factor)
        fail(f"{flag} {value}: must be a multiple of the VAE factor {factor} (e.g. {nearest})")


def main(argv: Sequence[str] | None = None) -> list[Path]:
    from lcm_exp.runlog.logs import quiet_third_party

    quiet_third_party()  # before the run record's family is looked up (its import prints transformers' notes)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.steps < 1:
        fail(f"--steps {args.steps}: must be >= 1")
    try:
        student = locate_student(args.path, args.teacher)
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    check_device(args.device)
    for flag, value in (("--height", args.height), ("--width", args.width)):
        check_size(flag, value, student.vae_scale_factor)
    guidance_scale = resolve_guidance(student, args.guidance_scale, args.w)
    dtype_name = args.dtype or ("fp16" if str(args.device).startswith("cuda") else "fp32")
    pipe = load_pipeline(student, device=args.device, dtype=DTYPES[dtype_name], attention=args.attention,
                         vae_slicing=args.vae_slicing, vae_tiling=args.vae_tiling)  # fmt: skip
    for flag, value in (("--height", args.height), ("--width", args.width)):
        check_size(flag, value, pipe.vae_scale_factor)  # a hub teacher's factor is known only now
    height, width = args.height or student.resolution, args.width or student.resolution
    images = generate_images(pipe, args.prompts, args.seeds, steps=args.steps, guidance_scale=guidance_scale,
                             height=height, width=width, call_kwargs=student.call_kwargs,
                             sampling=student.sampling)  # fmt: skip
    out = args.out or ((student.run_dir or Path.cwd()) / "samples")
    settings = {"student": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(student).items()},
                "prompts": args.prompts, "seeds": args.seeds, "steps": args.steps, "guidance_scale": guidance_scale,
                "w": guidance_scale - 1.0, "height": height, "width": width, "dtype": dtype_name}  # fmt: skip
    paths = save_images(images, out, args.seeds, settings)
    print(out / "grid.png")
    return paths


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    main()
