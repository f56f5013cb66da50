"""Sweep summary: one row per job dir (overrides, status, objective, final loss, steps, time), as CSV and Markdown,
plus heatmaps over (w_min, w_max) and over huber_c and the overlaid loss curves (``plots``).

Everything is read back from the job dirs (run.json, metrics.jsonl, Hydra's .hydra/ files), so the same summary
comes out at the end of a multirun, halfway through one, or long after (``python -m lcm_exp.sweep.summarize``).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lcm_exp.runlog.metrics import read_metrics
from lcm_exp.sweep.files import write_if_changed
from lcm_exp.sweep.identity import is_bookkeeping, override_key
from lcm_exp.sweep.job import read_record
from lcm_exp.sweep.objective import ObjectiveError, job_metrics, select_objective

CSV_NAME, MD_NAME = "summary.csv", "summary.md"
COLUMNS = ["job", "status", "objective", "final_loss", "tail_loss", "steps", "time_s", "seed", "w_min", "w_max",
           "loss", "huber_c", "overrides", "error", "run_dir"]  # fmt: skip


@dataclass
class Row:
    job: str
    run_dir: Path
    num: int
    status: str
    overrides: list[str]  # the job's overrides minus sweep bookkeeping; ``varying``: those that differ across jobs
    params: dict  # w_min, w_max, loss, huber_c of the composed config
    metrics: dict[str, float] = field(default_factory=dict)
    objective: float | None = None
    objective_note: str = ""
    seed: int | None = None
    error: str = ""
    curve: list[tuple[int, float]] = field(default_factory=list)
    varying: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """Short legend text: the varying overrides with only the last part of each key."""
        return " ".join(f"{override_key(o).split('.')[-1]}={o.split('=', 1)[1]}" for o in self.varying) or self.job


def _yaml(path: Path):
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def _params(config: dict | None) -> dict:
    config = config or {}
    guidance, loss = config.get("guidance") or {}, config.get("loss") or {}
    return {"w_min": guidance.get("w_min"), "w_max": guidance.get("w_max"), "loss": loss.get("name"),
            "huber_c": loss.get("huber_c")}  # fmt: skip


def _is_job_dir(path: Path) -> bool:
    has_job_files = (path / ".hydra").is_dir() or (path / "run.json").is_file()
    return path.is_dir() and not path.name.startswith(".") and has_job_files


def read_row(run_dir: Path, objective: str) -> Row:
    record = read_record(run_dir)
    hydra = _yaml(run_dir / ".hydra" / "hydra.yaml") or {}
    overrides = record.get("overrides") or _yaml(run_dir / ".hydra" / "overrides.yaml") or []
    num = ((hydra.get("hydra") or {}).get("job") or {}).get("num")
    row = Row(
        job=run_dir.name,
        run_dir=run_dir,
        num=num if isinstance(num, int) else 1 << 30,
        status=record.get("status", "missing"),
        overrides=[o for o in overrides if not is_bookkeeping(override_key(o))],  # as given: swept keys in order
        params=_params(record.get("config") or _yaml(run_dir / ".hydra" / "config.yaml")),
        seed=record.get("seed"),
    )
    error = record.get("error")
    if error:
        message = " ".join(str(error.get("message") or "").split())
        row.error = f"{error.get('type')}: {message[:300]}"
    row.curve = [(int(r["step"]), float(r["loss"])) for r in read_metrics(run_dir) if "loss" in r and "step" in r]
    if row.status == "completed":
        row.metrics = job_metrics(run_dir, record)
        try:
            row.objective = select_objective(row.metrics, objective)
        except ObjectiveError as err:
            row.objective_note = str(err)
    return row


def collect(sweep_dir: Path, objective: str) -> list[Row]:
    rows = [read_row(p, objective) for p in sorted(Path(sweep_dir).iterdir()) if _is_job_dir(p)]
    rows.sort(key=lambda r: (r.num, r.job))
    by_key = [{override_key(o): o for o in r.overrides} for r in rows]
    keys = {k for d in by_key for k in d}
    varying = {k for k in keys if len({d.get(k) for d in by_key}) > 1}
    for r in rows:
        r.varying = [o for o in r.overrides if override_key(o) in varying]
    return rows


def best_row(rows: list[Row], direction: str) -> Row | None:
    scored = [r for r in rows if r.objective is not None and math.isfinite(r.objective)]
    if not scored:
        return None
    pick = min if direction == "minimize" else max
    return pick(scored, key=lambda r: r.objective)


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def to_csv(rows: list[Row]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({
            "job": r.job, "status": r.status, "objective": r.objective, "final_loss": r.metrics.get("final_loss"),
            "tail_loss": r.metrics.get("tail_loss"), "steps": r.metrics.get("steps"), "time_s": r.metrics.get("time_s"),
            "seed": r.seed, **r.params, "overrides": " ".join(r.overrides), "error": r.error, "run_dir": str(r.run_dir),
        })  # fmt: skip
    return buf.getvalue()


def to_markdown(rows: list[Row], sweep_dir: Path, objective: str, direction: str, plots: list[str]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    best = best_row(rows, direction)
    common = sorted({o for r in rows for o in r.overrides} - {o for r in rows for o in r.varying})
    lines = [
        f"# Sweep `{sweep_dir.name}`",
        "",
        f"{len(rows)} jobs: "
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        + f" · objective `{objective}` ({direction})"
        + (f" · best: `{best.label}` = {_fmt(best.objective)}" if best else ""),
    ]
    if common:
        lines += ["", "Common overrides: " + " ".join(f"`{o}`" for o in common)]
    lines += ["", "| # | overrides | status | objective | final loss | steps | time (s) |", "|---" * 7 + "|"]
    for i, r in enumerate(rows):
        obj = _fmt(r.objective) + (" ★" if r is best else "")
        steps = r.metrics.get("steps")
        lines.append(
            f"| {i} | {' '.join(f'`{o}`' for o in r.varying) or '-'} | {r.status} | {obj} | "
            f"{_fmt(r.metrics.get('final_loss'))} | {'' if steps is None else int(steps)} | "
            f"{_fmt(r.metrics.get('time_s'))} |"
        )
    problems = [r for r in rows if r.error or r.objective_note or r.status not in ("completed",)]
    if problems:
        lines += ["", "Not completed or without objective:", ""]
        lines += [f"- `{r.job}` ({r.status}): {r.error or r.objective_note or 'no run record'} (see `{r.job}/run.json`)"
                  for r in problems]  # fmt: skip
    if plots:
        lines += [""] + [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def write_summary(sweep_dir: Path, objective: str = "final_loss", direction: str = "minimize") -> dict[str, Path]:
    """Write summary.csv, summary.md and the plots into ``sweep_dir``; {} when it holds no job dir yet."""
    from lcm_exp.sweep import plots

    sweep_dir = Path(sweep_dir)
    rows = collect(sweep_dir, objective) if sweep_dir.is_dir() else []
    if not rows:
        return {}
    written = plots.write_plots(rows, sweep_dir, objective, direction)
    out = {"csv": sweep_dir / CSV_NAME, "markdown": sweep_dir / MD_NAME, **written}
    write_if_changed(out["csv"], to_csv(rows))
    markdown = to_markdown(rows, sweep_dir, objective, direction, [p.name for p in written.values()])
    write_if_changed(out["markdown"], markdown)
    return out
