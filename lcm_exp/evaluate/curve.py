"""Learning curves: the live student evaluated every ``evaluation.every_n_steps`` optimizer steps during training.

Consistency distillation can get worse as training goes on (users of LCD report it); the final table alone cannot
show that. Each evaluation runs the run's own evaluation settings (toy teacher: the full table's metrics; a real
teacher: latent RMSE and PSNR to the reference, plus CLIP/FID only from local weights, never downloaded) on the
student's rows (the undistilled student does not change during training; it stays in the final table). The teacher
rows are computed once and then read from the evaluation cache.

Every point goes to ``metrics.jsonl`` as a row with ``"eval": true``; ``eval_curve.png`` in the run dir is redrawn
after each; the best ``eval_objective`` and its step become the run metrics ``eval_objective_best`` and
``eval_objective_best_step`` (a sweep objective). With ``evaluation.export_best`` each new best student is exported
into ``<run dir>/best/`` (``model/`` as the final export, ``config.yaml``, ``best.json``), so
``python -m lcm_exp.evaluate <run dir>/best`` and ``python -m lcm_exp.generate <run dir>/best --teacher ...`` use it.
The evaluation draws from its own seeded generators inside a forked RNG, so training is bitwise the same with or
without curves.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path

import torch

from lcm_exp.evaluate.settings import EVAL_METRIC_PREFIX, LOWER_IS_BETTER, METHODS, METRICS, EvalSettings

log = logging.getLogger(__name__)

BEST_DIR = "best"
CURVE_PLOT = "eval_curve.png"
CURVE_METHODS = ("student", "student_det")  # the rows that change while training


def learning_curve_hook(run, run_dir: Path, metrics, step: int) -> LearningCurve | None:
    """The loop's hook factory (lcm_exp.train.hooks) when ``evaluation.every_n_steps`` asks for a learning curve."""
    if not getattr(run.cfg.evaluation, "every_n_steps", 0):
        return None
    return LearningCurve(run.cfg, run.family, run.adapter, run.accelerator, run_dir, metrics, step)


class LearningCurve:
    """The in-loop hook: ``after_update(step)`` after each optimizer update, ``finish(step)`` at the end (returns the
    run metrics). ``metrics``: the session's MetricsFile (None off the main process)."""

    def __init__(self, cfg, family, adapter, accelerator, run_dir: Path, metrics=None, start_step: int = 0):
        self.cfg, self.family, self.adapter, self.accelerator = cfg, family, adapter, accelerator
        self.run_dir, self.metrics = Path(run_dir), metrics
        node = dataclasses.asdict(cfg.evaluation) if dataclasses.is_dataclass(cfg.evaluation) else dict(cfg.evaluation)
        self.every = int(node.get("every_n_steps", 0))
        self.export_best = bool(node.get("export_best", False))
        self.metric, self.method, _ = EvalSettings(**node).parse_objective()
        methods = [m for m in node.get("methods") or METHODS if m in (*CURVE_METHODS, self.method)]
        self.settings = EvalSettings(**{**node, "methods": methods})
        self.points: list[dict] = [row for row in _eval_rows(self.run_dir) if row["step"] <= start_step]  # resume
        self.best: dict | None = None
        for row in self.points:
            self._consider(row)

    @property
    def enabled(self) -> bool:
        return self.every > 0

    def after_update(self, step: int) -> None:
        if self.enabled and step % self.every == 0:
            self.evaluate(step)

    def finish(self, step: int) -> dict:
        """The last point (when the schedule did not land on the final step) and the run metrics."""
        if not self.enabled:
            return {}
        if not self.points or self.points[-1]["step"] != step:
            self.evaluate(step)
        if self.best is None:
            return {}
        return {f"{EVAL_METRIC_PREFIX}_objective_best": self.best[f"{EVAL_METRIC_PREFIX}_objective"],
                f"{EVAL_METRIC_PREFIX}_objective_best_step": self.best["step"]}  # fmt: skip

    def evaluate(self, step: int) -> dict | None:
        """One point, on the main process (the others wait)."""
        acc = self.accelerator
        row = None
        if acc.is_main_process:
            from lcm_exp.evaluate.run import evaluate_from_loop

            devices = [acc.device] if acc.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                result = evaluate_from_loop(self.cfg, self.family, self.adapter, None, self.settings)
            row = {"step": step, "eval": True, f"{EVAL_METRIC_PREFIX}_objective": result.objective()}
            for r in result.rows:
                row |= {f"{m}:{r['method']}:{r['steps']}": float(r[m]) for m in METRICS if r.get(m) is not None}
            self.points.append(row)
            if self.metrics is not None:
                self.metrics.write(row)
            acc.log({f"eval/{k.replace(':', '/')}": v for k, v in row.items() if k not in ("step", "eval")}, step=step)
            if self._consider(row) and self.export_best:
                self._export_best(row)
            plot_curve(self.points, self.run_dir / CURVE_PLOT, self.metric, self.method)
            value = row[f"{EVAL_METRIC_PREFIX}_objective"]
            log.info("eval at step %d: %s = %.4f", step, self.settings.objective, value)
        acc.wait_for_everyone()
        return row

    def _consider(self, row: dict) -> bool:
        """Whether ``row`` is the new best (ties keep the earlier step)."""
        key = f"{EVAL_METRIC_PREFIX}_objective"
        value, best = row[key], None if self.best is None else self.best[key]
        better = best is None or (value < best if LOWER_IS_BETTER[self.metric] else value > best)
        if better:
            self.best = row
        return better

    def _export_best(self, row: dict) -> None:
        """<run dir>/best/: the student as the final export writes it, the run's config and the step, atomically."""
        from lcm_exp.train.export import export_model

        tmp, final = self.run_dir / ".best.tmp", self.run_dir / BEST_DIR
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        export_model(self.cfg, self.family, self.adapter, tmp)
        if (self.run_dir / "config.yaml").is_file():
            shutil.copy(self.run_dir / "config.yaml", tmp / "config.yaml")
        (tmp / "best.json").write_text(json.dumps({"objective": self.settings.objective, **row}, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)


def _eval_rows(run_dir: Path) -> list[dict]:
    from lcm_exp.runlog.metrics import read_metrics

    return [row for row in read_metrics(run_dir) if row.get("eval")]


def plot_curve(points: list[dict], path: Path, metric: str, method: str) -> None:
    """One panel per metric, x = training step; a line per (student sampler, step count); the objective's method
    in full colour, others faded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for p in points for k in p if k.count(":") == 2})
    metrics = [m for m in METRICS if any(k.startswith(f"{m}:") for k in keys)]
    if not metrics:
        return
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 4.0), squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=True):
        for key in (k for k in keys if k.startswith(f"{m}:")):
            _, meth, steps = key.split(":")
            pts = [(p["step"], p[key]) for p in points if key in p]
            ax.plot(*zip(*pts, strict=True), marker="o", markersize=3, alpha=1.0 if meth == method else 0.35,
                    label=f"{meth} {steps} step{'s' * (steps != '1')}")  # fmt: skip
        ax.set_title(m + (" (objective)" if m == metric else ""))
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
