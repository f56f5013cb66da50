"""Evaluate a finished run directory, or the live student from inside the training loop.

A run dir holds ``config.yaml`` (the resolved run config, read back through the typed loader) and ``model/`` (the
export: the student in the adapter's format, ``scheduler/`` with the objective's inference scheduler). The teacher
is loaded through the same model family the run used, and the student the way its adapter says a user loads it.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch

from lcm_exp.evaluate.core import EvalResult, evaluate_student
from lcm_exp.evaluate.settings import EVAL_METRIC_PREFIX, METRICS, EvalSettings
from lcm_exp.train.export import load_exported_scheduler

log = logging.getLogger(__name__)

EVAL_DIR = "eval"


def settings_from(node: Any, **overrides: Any) -> EvalSettings:
    """EvalSettings from a mapping (e.g. the run config's ``evaluation`` node), then ``overrides`` (None = keep)."""
    values = dict(node or {})
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(EvalSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"evaluation: unknown key(s) {unknown}; valid: {sorted(known)}")
    return EvalSettings(**values)


def toy_judge(teacher: str) -> tuple[dict | None, Any]:
    """(toy world description, classifier) when the teacher is a toy teacher, else (None, None)."""
    from lcm_exp.toy.build import CLASSIFIER_DIR, read_toy_world

    world = read_toy_world(teacher)
    if world is None:
        return None, None
    from lcm_exp.toy.classifier import AttributeClassifier

    return world, AttributeClassifier.load(Path(teacher) / CLASSIFIER_DIR)


def make_undistilled(family, adapter_cfg: Any, seed: int) -> torch.nn.Module:
    """The student before distillation: teacher weights plus a w-embedding input drawn from ``seed`` (full adapter),
    or the teacher itself (a LoRA starts as the identity: its B matrices are zero)."""
    if adapter_cfg.name != "full":
        return family.denoiser
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        student = family.guided_student(family.load_denoiser(), adapter_cfg.time_cond_proj_dim,
                                        adapter_cfg.cond_proj_init)  # fmt: skip
    return student.to(family.device).eval().requires_grad_(False)


def load_student(family, adapter_name: str, model_dir: Path) -> torch.nn.Module:
    """The exported student as a user loads it: the teacher's pipeline, then the adapter's own loading (a LoRA file
    and, when guidance-conditioned, its w embedding; a full network folder)."""
    from lcm_exp.adapters import adapter_class

    pipe = family.build_pipeline(family.load_denoiser(family.weight_dtype).to(family.device),
                                 load_exported_scheduler(model_dir))  # fmt: skip
    try:
        adapter_class(adapter_name).load_student(pipe, family.denoiser_component, model_dir, family.weight_dtype)
    except OSError as err:  # diffusers' missing-file errors (EnvironmentError, FileNotFoundError)
        raise FileNotFoundError(f"{model_dir} holds no exported {adapter_name} student: {err}") from err
    return getattr(pipe, family.denoiser_component).eval().requires_grad_(False)


def evaluate_run(
    run_dir: str | Path,
    settings: EvalSettings | None = None,
    device: str | None = None,
    out_dir: str | Path | None = None,
) -> EvalResult:
    """Evaluate the exported student of ``run_dir``; report files go to ``<run dir>/eval/`` unless ``out_dir``."""
    from lcm_exp.config.typed import load_run_config
    from lcm_exp.models.registry import get_family

    run_dir = Path(run_dir)
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run dir: no config.yaml")
    cfg = load_run_config(config_file)
    if settings is None:
        settings = settings_from(dataclasses.asdict(cfg.evaluation))
    model_dir = run_dir / "model"
    if not (model_dir / "scheduler").is_dir():
        raise FileNotFoundError(f"{model_dir}/scheduler is missing: the run did not export a model")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    family = get_family(cfg.model.family)(cfg.model, device=device, weight_dtype="fp32")
    student = load_student(family, cfg.adapter.name, model_dir)
    world, classifier = toy_judge(family.teacher)
    return evaluate_student(
        family, student, load_exported_scheduler(model_dir), settings, sampling_kwargs=sampling_kwargs(cfg),
        undistilled=make_undistilled(family, cfg.adapter, settings.seed),
        toy_world=world, classifier=classifier, cache_dir=Path(cfg.paths.cache_dir) / "eval-cache",
        out_dir=Path(out_dir) if out_dir is not None else run_dir / EVAL_DIR,
        title=f"{cfg.name} seed {cfg.seed}: {run_dir.name}",
    )  # fmt: skip


def sampling_kwargs(cfg) -> dict[str, Any]:
    """What every sampling call of this run's student passes to its scheduler (the objective's: TCD's eta)."""
    from lcm_exp.train.components import objective_from_config

    return objective_from_config(cfg.objective).sampling_kwargs()


def run_metrics(result: EvalResult) -> dict[str, float]:
    """``eval_objective`` plus every computed number as ``eval:<metric>:<method>:<steps>``: run.json keeps them, so a
    sweep can rank its jobs by any of them (``sweep.objective=eval_objective``)."""
    out = {f"{EVAL_METRIC_PREFIX}_objective": result.objective()}
    for row in result.rows:
        for metric in METRICS:
            if row.get(metric) is not None:
                out[f"{EVAL_METRIC_PREFIX}:{metric}:{row['method']}:{row['steps']}"] = float(row[metric])
    return out


def evaluate_at_end(run_cfg, run_dir: Path) -> dict[str, Any]:
    """The closing evaluation of a finished run (``evaluation.at_end``): the exported student in ``run_dir``, its
    report in ``<run dir>/eval/``; returns the run metrics and ``eval_table``, the printed table's file."""
    result = evaluate_run(run_dir, run_cfg.evaluation)
    return {**run_metrics(result), "eval_table": result.files["table"]}


def evaluate_from_loop(cfg, family, adapter, run_dir: Path | None, settings: EvalSettings | None = None,
                       undistilled=None) -> EvalResult:  # fmt: skip
    """Evaluate the loop's current student (the adapter's inference network) with the run's own objects; its report
    goes to ``<run dir>/eval/`` (no files when ``run_dir`` is None).

    ``cfg``: the RunConfig; its ``evaluation`` field, when present, gives the settings. Full and LoRA students: the
    teacher rows run the adapter's teacher (a LoRA's shared network with its adapters disabled), and so does a LoRA's
    undistilled student. ``undistilled``: a ready one (the learning curve builds it once); else it is made here.
    """
    from lcm_exp.evaluate.samplers import Denoiser
    from lcm_exp.train.components import inference_scheduler

    if settings is None:
        node = getattr(cfg, "evaluation", None)
        settings = settings_from(dataclasses.asdict(node) if dataclasses.is_dataclass(node) else node)
    world, classifier = toy_judge(family.teacher)
    teacher_call = adapter.distill_models().teacher
    teacher = Denoiser(family, family.denoiser, call=lambda x, t, c, w_emb=None: teacher_call(x, t, c))
    if undistilled is None:
        undistilled = make_undistilled(family, cfg.adapter, settings.seed) if cfg.adapter.name == "full" else teacher
    with adapter.inference_denoiser() as net:
        was_training = net.training
        net.eval()
        try:
            return evaluate_student(
                family, net, inference_scheduler(cfg, family), settings, sampling_kwargs=sampling_kwargs(cfg),
                teacher=teacher, undistilled=undistilled, toy_world=world, classifier=classifier,
                cache_dir=Path(cfg.paths.cache_dir) / "eval-cache",
                out_dir=None if run_dir is None else Path(run_dir) / EVAL_DIR, title=f"{cfg.name} seed {cfg.seed}",
            )  # fmt: skip
        finally:
            net.train(was_training)
