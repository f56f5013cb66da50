"""One evaluation: every method x step count from the same noise and prompts, scored against the reference.

Reference = the teacher's DDIM with ``reference_steps`` steps, trailing spacing, CFG at w. Fidelity metrics (latent
RMSE, decoded PSNR) say how close a few-step sampler lands to that trajectory's end; distribution metrics (toy
attribute accuracy and Frechet distance, or CLIP score / FID with user weights) say whether the images are good
even where they land elsewhere. Rows that do not depend on the student (reference and teacher baselines) can be
cached on disk, so evaluating another student of the same teacher costs only the student's own sampling.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import DDIMScheduler, LCMScheduler

from lcm_exp.evaluate import samplers
from lcm_exp.evaluate.metrics import latent_rmse, psnr_db
from lcm_exp.evaluate.settings import LOWER_IS_BETTER, METHODS, REFERENCE, EvalSettings

log = logging.getLogger(__name__)

EVAL_VERSION = 1  # part of the teacher-cache key: bump when sampling code changes
TEACHER_METHODS = ("ddim_trailing", "ddim_leading", "teacher_nocfg")
REFERENCE_LABEL = "teacher DDIM-{n} trailing + CFG (reference)"


@dataclass
class EvalResult:
    rows: list[dict[str, Any]]
    settings: EvalSettings
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    grid_images: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict, repr=False)
    latents: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict, repr=False)  # final latents, CPU

    def value(self, metric: str, method: str, steps: int) -> float | None:
        for row in self.rows:
            if row["method"] == method and row["steps"] == steps:
                return row.get(metric)
        raise KeyError(f"no evaluation row for method={method!r} steps={steps}")

    def objective(self) -> float:
        """The settings' objective: mean of metric over the listed steps of one method (a sweep minimises it when
        lower is better; see ``objective_direction``)."""
        metric, method, steps = self.settings.parse_objective()
        values = [self.value(metric, method, s) for s in steps]
        if any(v is None for v in values):
            raise ValueError(
                f"objective {self.settings.objective!r}: metric {metric!r} was not computed ({self.notes})"
            )
        return float(sum(values) / len(values))

    def objective_direction(self) -> str:
        metric, _, _ = self.settings.parse_objective()
        return "minimize" if LOWER_IS_BETTER[metric] else "maximize"


@dataclass
class SampleSet:
    captions: list[str]
    noise: torch.Tensor  # (n, C, h, w) float32, CPU
    seeds: list[int]  # per-sample seed of the LCM re-noising generators
    attributes: torch.Tensor | None = None  # toy world: (n, 4) expected attributes
    real_images: torch.Tensor | None = None  # toy world: caption-matched renders in [-1, 1]
    more_real_images: torch.Tensor | None = None  # toy world: a second independent render (the FD floor)


def build_sample_set(family, settings: EvalSettings, toy_world: dict | None) -> SampleSet:
    """Prompts and initial noise, a pure function of the settings (and the toy world when there is one)."""
    n, seed = settings.num_samples, settings.seed
    attributes = real = more_real = None
    if toy_world is not None and settings.prompts is None:
        from lcm_exp.toy.world import caption, render, sample_attributes

        generator = torch.Generator().manual_seed(seed)
        attributes = sample_attributes(n, generator)
        captions = [caption(a) for a in attributes]
        real = render(attributes, torch.Generator().manual_seed(seed + 1))
        more_real = render(attributes, torch.Generator().manual_seed(seed + 2))
    else:
        from lcm_exp.config.schema import REFERENCE_VALIDATION_PROMPTS

        prompts = list(settings.prompts or REFERENCE_VALIDATION_PROMPTS)
        captions = [prompts[i % len(prompts)] for i in range(n)]
    factor = 2 ** (len(family.vae.config.block_out_channels) - 1)
    side = family.cfg.resolution // factor
    channels = family.denoiser.config.in_channels
    noise = torch.stack([
        torch.randn(channels, side, side, generator=torch.Generator().manual_seed(seed * 1_000_003 + i))
        for i in range(n)
    ])  # fmt: skip
    seeds = [seed * 1_000_003 + 500_000 + i for i in range(n)]
    return SampleSet(captions, noise, seeds, attributes, real, more_real)


def conditioning(family, captions: list[str]):
    """Cond and uncond for prompts at the model resolution (SDXL: original = target size, no crop)."""
    n, res = len(captions), family.cfg.resolution
    batch = {"captions": captions, "original_size": torch.full((n, 2), res), "crop_top_left": torch.zeros(n, 2)}
    cond = family.encode_text(batch)
    return cond, family.unconditional(cond)


@torch.no_grad()
def decode01(vae, latents: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Decoded images in [0, 1], float32 on CPU."""
    out = []
    for i in range(0, latents.shape[0], batch):
        z = latents[i : i + batch].to(vae.device, vae.dtype) / vae.config.scaling_factor
        out.append((vae.decode(z).sample.float() / 2 + 0.5).clamp(0, 1).cpu())
    return torch.cat(out)


def _teacher_scheduler_config(family) -> dict:
    """The teacher's own scheduler_config.json (SD: PNDM with steps_offset 1, set_alpha_to_one false), so the
    DDIM baselines are what ``DDIMScheduler.from_config(pipe.scheduler.config)`` gives a diffusers user. The
    caller forces clip_sample=False: SD's files say so, and DDIM's default (true) would clip latents to [-1, 1]."""
    from lcm_exp.models.teacher_files import read_json

    return read_json(family.teacher, "scheduler_config.json", family.revision, subfolder="scheduler")


def _nfe(method: str, steps: int, w: float) -> int:
    """UNet evaluations per sample: guided teacher steps cost two (cond + uncond); the student embeds w."""
    if method in ("ddim_trailing", "ddim_leading", REFERENCE) and w > 0:
        return 2 * steps
    return steps


class _Runner:
    """Runs the samplers over the sample set in batches."""

    def __init__(self, family, samples: SampleSet, settings: EvalSettings, lcm: LCMScheduler):
        self.family, self.samples, self.settings, self.lcm = family, samples, settings, lcm
        self.device = family.device
        self.cond, self.uncond = conditioning(family, samples.captions)
        self.ddim = {
            spacing: DDIMScheduler.from_config(_teacher_scheduler_config(family), timestep_spacing=spacing,
                                               clip_sample=False)
            for spacing in ("trailing", "leading")
        }

    def _batched(self, fn) -> torch.Tensor:
        out, bs = [], self.settings.batch_size
        for i in range(0, self.samples.noise.shape[0], bs):
            sl = slice(i, i + bs)
            x = self.samples.noise[sl].to(self.device)
            out.append(fn(x, sl).float().cpu())
        return torch.cat(out)

    def teacher(self, method: str, steps: int) -> torch.Tensor:
        net, w = samplers.Denoiser(self.family, self.family.denoiser), self.settings.w
        scheduler = self.ddim["leading" if method == "ddim_leading" else "trailing"]
        guidance = 0.0 if method == "teacher_nocfg" else w
        return self._batched(lambda x, sl: samplers.ddim_sample(net, scheduler, x, steps, self.cond[sl],
                                                                 self.uncond[sl], guidance))  # fmt: skip

    def student(self, network, deterministic: bool, steps: int) -> torch.Tensor:
        net, w = samplers.Denoiser(self.family, network), self.settings.w

        def run(x, sl):
            if deterministic:
                return samplers.lcm_deterministic_sample(net, self.lcm, x, steps, self.cond[sl], w)
            gens = [torch.Generator().manual_seed(s) for s in self.samples.seeds[sl]]
            return samplers.lcm_sample(net, self.lcm, x, steps, self.cond[sl], w, gens)

        return self._batched(run)


def _cache_key(family, settings: EvalSettings, judged_by: dict) -> str:
    teacher = Path(family.teacher).expanduser()
    weights = teacher / family.denoiser_component / "diffusion_pytorch_model.safetensors"
    stamp = [weights.stat().st_size, weights.stat().st_mtime_ns] if weights.is_file() else None
    key = {
        "version": EVAL_VERSION,
        "teacher": str(teacher.resolve()) if teacher.exists() else family.teacher,
        "revision": family.revision,
        "unet_stamp": stamp,
        "vae": family.cfg.vae,
        "uncond": family.uncond_mode,
        "resolution": family.cfg.resolution,
        "device": family.device.type,
        "dtype": str(family.denoiser.dtype),
        "settings": {k: v for k, v in asdict(settings).items() if k in
                     ("steps", "w", "reference_steps", "num_samples", "seed", "prompts", "batch_size")},
        "teacher_methods": [m for m in TEACHER_METHODS if m in settings.methods],
        "judges": {**judged_by, "clip": settings.clip_model, "fid": settings.fid_model, "grid": settings.grid_samples},
    }  # fmt: skip
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _teacher_part(runner: _Runner, settings: EvalSettings, path: Path | None, make_scorer) -> tuple[dict, dict, dict]:
    """(latents, rows, grid images) of the reference and the teacher baselines, from ``path`` when cached."""
    if path is not None and path.is_file():
        log.info("evaluation: teacher rows from cache %s", path)
        cached = torch.load(path, weights_only=True)  # tensors, dicts, lists, tuples, strings: nothing to unpickle
        return cached["latents"], cached["rows"], cached["grid"]
    latents: dict = {(REFERENCE, settings.reference_steps): runner.teacher("ddim_trailing", settings.reference_steps)}
    for method in [m for m in TEACHER_METHODS if m in settings.methods]:
        for steps in settings.steps:
            latents[(method, steps)] = runner.teacher(method, steps)
    scorer = make_scorer(latents[(REFERENCE, settings.reference_steps)])
    rows, grid = {}, {}
    for key, z in latents.items():
        rows[key], grid[key] = scorer(*key, z)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"latents": latents, "rows": rows, "grid": grid}, tmp)
        tmp.replace(path)
    return latents, rows, grid


def evaluate_student(
    family,
    student: torch.nn.Module,
    lcm_scheduler: LCMScheduler,
    settings: EvalSettings | None = None,
    *,
    undistilled: torch.nn.Module | None = None,
    toy_world: dict | None = None,
    classifier=None,
    cache_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    title: str = "",
) -> EvalResult:
    """Evaluate ``student`` (a UNet; with ``time_cond_proj_dim`` it embeds w, else it runs without guidance)
    against the teacher of ``family``; writes the report files into ``out_dir`` when given.

    ``lcm_scheduler``: the student's inference scheduler (its ``original_inference_steps`` is the training grid N).
    ``undistilled``: the student before distillation (teacher weights + fresh cond_proj); its rows are skipped when
    None. ``toy_world`` + ``classifier``: the toy judge (attribute accuracy, FD); else those metrics are skipped.
    """
    settings = settings or EvalSettings()
    t0 = time.perf_counter()
    notes: list[str] = []
    samples = build_sample_set(family, settings, toy_world)
    runner = _Runner(family, samples, settings, lcm_scheduler)
    scorers: list[_Scorer] = []

    def make_scorer(ref_latents: torch.Tensor) -> _Scorer:
        if not scorers:
            scorers.append(_Scorer(family, settings, samples, ref_latents, toy_world, classifier, notes))
        return scorers[0]

    judged_by = {"toy": toy_world is not None and classifier is not None}
    path = None
    if cache_dir is not None and settings.cache_teacher:
        path = Path(cache_dir) / f"teacher-{_cache_key(family, settings, judged_by)}.pt"
    latents, rows, grid = _teacher_part(runner, settings, path, make_scorer)
    scorer = make_scorer(latents[(REFERENCE, settings.reference_steps)])
    timings = {"teacher_s": round(time.perf_counter() - t0, 1)}

    t1 = time.perf_counter()
    student_models = {"student": (student, False), "student_det": (student, True)}
    if undistilled is not None:
        student_models["undistilled"] = (undistilled, False)
    elif "undistilled" in settings.methods:
        notes.append("undistilled student not given: its rows are skipped")
    for method, (unet, deterministic) in student_models.items():
        if method in settings.methods:
            for steps in settings.steps:
                latents[(method, steps)] = runner.student(unet, deterministic, steps)
                rows[(method, steps)], grid[(method, steps)] = scorer(method, steps, latents[(method, steps)])
    timings["student_s"] = round(time.perf_counter() - t1, 1)
    timings["total_s"] = round(time.perf_counter() - t0, 1)
    order = [(REFERENCE, settings.reference_steps)]
    order += [(m, s) for m in METHODS if m in settings.methods for s in settings.steps if (m, s) in rows]
    rows = [rows[k] for k in order]
    result = EvalResult(rows, settings, notes, timings, grid_images=grid, latents=latents)
    if out_dir is not None:
        from lcm_exp.evaluate.report import write_report

        result.files = write_report(result, Path(out_dir), title=title)
    return result


class _Scorer:
    """Scores one (method, steps) result: fidelity against the reference, then every configured judge."""

    def __init__(self, family, settings, samples, ref_latents, toy_world, classifier, notes: list[str]):
        from lcm_exp.evaluate.judges import ClipScoreJudge, FidJudge, ToyJudge

        self.family, self.settings, self.ref_latents = family, settings, ref_latents
        self.ref_images = decode01(family.vae, ref_latents)
        self.judges = []
        if toy_world is not None and classifier is not None and samples.attributes is not None:
            toy = ToyJudge(classifier, samples.attributes, samples.real_images)
            self.judges.append(toy)
            floor = toy((samples.more_real_images + 1) / 2)
            notes.append(f"toy FD floor (a second real render of the same prompts): {floor['fd']:.1f}; "
                         f"its attribute accuracy: {floor['attr_acc']:.3f}")  # fmt: skip
        else:
            notes.append("attribute accuracy / FD skipped: not a toy-world teacher (no toy classifier)")
        if settings.clip_model:
            self.judges.append(ClipScoreJudge(settings.clip_model, samples.captions, family.device))
        else:
            notes.append("CLIP score skipped: no evaluation clip_model (a local CLIPModel folder) was given")
        if settings.fid_model:
            self.judges.append(FidJudge(settings.fid_model, self.ref_images, family.device))
            notes.append("FID is measured against the teacher's reference samples (no real-image set)")
        else:
            notes.append("FID skipped: no evaluation fid_model (a local TorchScript feature extractor) was given")

    def __call__(self, method: str, steps: int, z: torch.Tensor) -> tuple[dict[str, Any], torch.Tensor]:
        is_ref = method == REFERENCE
        images = self.ref_images if is_ref else decode01(self.family.vae, z)
        row: dict[str, Any] = {
            "method": method,
            "label": REFERENCE_LABEL.format(n=steps) if is_ref else METHODS[method],
            "steps": steps,
            "nfe": _nfe(method, steps, self.settings.w),
            "latent_rmse": None if is_ref else float(latent_rmse(z, self.ref_latents).mean()),
            "psnr_db": None if is_ref else float(psnr_db(images, self.ref_images).mean()),
        }
        for judge in self.judges:
            row.update(judge(images))
        return row, images[: self.settings.grid_samples]
