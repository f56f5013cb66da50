"""One evaluation: every method x step count from the same noise and prompts, scored against the reference.

Reference = the teacher's own sampler of its schedule kind (baselines.py; DDPM: DDIM, trailing spacing; flow: Euler)
with ``reference_steps`` steps and CFG at w. Fidelity metrics (latent
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

from lcm_exp.evaluate import samplers
from lcm_exp.evaluate.baselines import baseline_methods
from lcm_exp.evaluate.metrics import latent_rmse, psnr_db
from lcm_exp.evaluate.runner import Runner, conditioning  # noqa: F401  (conditioning: part of this API)
from lcm_exp.evaluate.settings import LOWER_IS_BETTER, METHODS, REFERENCE, EvalSettings

log = logging.getLogger(__name__)

EVAL_VERSION = 1  # part of the teacher-cache key: bump when sampling code changes


@dataclass
class EvalResult:
    rows: list[dict[str, Any]]
    settings: EvalSettings
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    grid_images: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict, repr=False)
    latents: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict, repr=False)  # final latents, CPU
    schedule_kind: str = "ddpm"  # the teacher's (baselines.py; names the reference in the table)

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


@torch.no_grad()
def decode01(family, latents: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Decoded images in [0, 1], float32 on CPU, through the family's own decoding (SD3: its VAE's shift factor)."""
    out = []
    for i in range(0, latents.shape[0], batch):
        images = family.decode(latents[i : i + batch].to(family.vae.device))
        out.append((images.float() / 2 + 0.5).clamp(0, 1).cpu())
    return torch.cat(out)


def _cache_key(family, runner: Runner, settings: EvalSettings, judged_by: dict) -> str:
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
        "teacher_methods": runner.teacher_methods(),
        "judges": {**judged_by, "clip": settings.clip_model, "fid": settings.fid_model, "grid": settings.grid_samples},
    }  # fmt: skip
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _teacher_part(runner: Runner, settings: EvalSettings, path: Path | None, make_scorer) -> tuple[dict, dict, dict]:
    """(latents, rows, grid images) of the reference and the teacher baselines, from ``path`` when cached."""
    if path is not None and path.is_file():
        log.info("evaluation: teacher rows from cache %s", path)
        cached = torch.load(path, weights_only=True)  # tensors, dicts, lists, tuples, strings: nothing to unpickle
        return cached["latents"], cached["rows"], cached["grid"]
    latents: dict = {(REFERENCE, settings.reference_steps): runner.teacher(REFERENCE, settings.reference_steps)}
    for method in runner.teacher_methods():
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
    scheduler,
    settings: EvalSettings | None = None,
    *,
    sampling_kwargs: dict[str, Any] | None = None,
    teacher: samplers.Denoiser | None = None,
    undistilled: torch.nn.Module | samplers.Denoiser | None = None,
    toy_world: dict | None = None,
    classifier=None,
    cache_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    title: str = "",
) -> EvalResult:
    """Evaluate ``student`` (the family's denoiser class; when it takes a w embedding, ``family.w_embedding_dim``,
    it embeds w, else it runs without guidance) against the teacher of ``family``; writes the report files into
    ``out_dir`` when given.

    ``scheduler``: the student's exported inference scheduler (LCMScheduler, TCDScheduler, FlowMatchLCMScheduler) and
    ``sampling_kwargs`` what every call passes to its ``step`` (the objective's: TCD's eta). ``teacher``: the
    teacher as the samplers run it (default: the family's network; a LoRA student's teacher is that network with
    its adapters disabled). ``undistilled``: the student before distillation (teacher weights + fresh cond_proj);
    its rows are skipped when None. ``toy_world`` + ``classifier``: the toy judge (attribute accuracy, FD).
    """
    settings = settings or EvalSettings()
    t0 = time.perf_counter()
    notes: list[str] = []
    samples = build_sample_set(family, settings, toy_world)
    sampling = samplers.StudentSampling(scheduler, dict(sampling_kwargs or {}))
    runner = Runner(family, samples, settings, sampling, teacher or samplers.Denoiser(family, family.denoiser))
    if not runner.teacher_methods() and set(settings.methods) & set(baseline_methods()):  # e.g. an older run config
        notes.append(f"methods {settings.methods} name no baseline of this {runner.kind} teacher "
                     f"({', '.join(runner.baselines)}): its few-step rows are skipped")  # fmt: skip
    scorers: list[_Scorer] = []

    def make_scorer(ref_latents: torch.Tensor) -> _Scorer:
        if not scorers:
            scorers.append(_Scorer(family, settings, samples, ref_latents, toy_world, classifier, notes, runner))
        return scorers[0]

    judged_by = {"toy": toy_world is not None and classifier is not None}
    path = None
    if cache_dir is not None and settings.cache_teacher:
        path = Path(cache_dir) / f"teacher-{_cache_key(family, runner, settings, judged_by)}.pt"
    latents, rows, grid = _teacher_part(runner, settings, path, make_scorer)
    scorer = make_scorer(latents[(REFERENCE, settings.reference_steps)])
    timings = {"teacher_s": round(time.perf_counter() - t0, 1)}

    t1 = time.perf_counter()
    nets = {"student": student, "student_det": student, "undistilled": undistilled}
    if undistilled is None and "undistilled" in settings.methods:
        notes.append("undistilled student not given: its rows are skipped")
    for method, net in nets.items():
        variant = sampling.sampler(deterministic=method == "student_det")
        if method not in settings.methods or net is None:
            continue
        if variant is None:
            notes.append(f"{method}: {sampling.name} has no deterministic variant; its rows are skipped")
            continue
        label, sampler = variant
        label = f"{'undistilled student' if method == 'undistilled' else 'student'}, {label}"
        denoiser = net if isinstance(net, samplers.Denoiser) else samplers.Denoiser(family, net)
        for steps in settings.steps:
            latents[(method, steps)] = runner.student(denoiser, sampler, steps)
            rows[(method, steps)], grid[(method, steps)] = scorer(method, steps, latents[(method, steps)], label)
    timings["student_s"] = round(time.perf_counter() - t1, 1)
    timings["total_s"] = round(time.perf_counter() - t0, 1)
    order = [(REFERENCE, settings.reference_steps)]
    order += [(m, s) for m in METHODS if m in settings.methods for s in settings.steps if (m, s) in rows]
    rows = [rows[k] for k in order]
    result = EvalResult(rows, settings, notes, timings, grid_images=grid, latents=latents, schedule_kind=runner.kind)
    if out_dir is not None:
        from lcm_exp.evaluate.report import write_report

        result.files = write_report(result, Path(out_dir), title=title)
    return result


class _Scorer:
    """Scores one (method, steps) result: fidelity against the reference, then every configured judge."""

    def __init__(self, family, settings, samples, ref_latents, toy_world, classifier, notes: list[str], runner: Runner):
        from lcm_exp.evaluate.judges import ClipScoreJudge, FidJudge, ToyJudge

        self.family, self.settings, self.ref_latents, self.runner = family, settings, ref_latents, runner
        self.ref_images = decode01(family, ref_latents)
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

    def __call__(self, method: str, steps: int, z: torch.Tensor, label: str | None = None) -> tuple[dict, torch.Tensor]:
        is_ref = method == REFERENCE
        images = self.ref_images if is_ref else decode01(self.family, z)
        row: dict[str, Any] = {
            "method": method,
            "label": self.runner.reference_label(steps) if is_ref else label or METHODS[method],
            "steps": steps,
            "nfe": self.runner.nfe(method, steps),
            "latent_rmse": None if is_ref else float(latent_rmse(z, self.ref_latents).mean()),
            "psnr_db": None if is_ref else float(psnr_db(images, self.ref_images).mean()),
        }
        for judge in self.judges:
            row.update(judge(images))
        return row, images[: self.settings.grid_samples]
