"""Compare several objectives (or any groups of runs) on one teacher: mean ± std over each group's runs.

    python -m lcm_exp.evaluate.compare LCD=<run>,<run>,<run> TCD=<run>,... [--out DIR]

Reads each run's ``eval/results.csv`` (the evaluation at the end) and its learning curve (``metrics.jsonl`` rows with
``"eval": true``). Writes ``DIR/table.md``: every student row of every group (mean ± std over its runs), then the
teacher's rows once (they do not depend on the student); ``DIR/latent_rmse.md``, ``DIR/fd.md``: one metric as
student sampler x step count; and ``DIR/curves.png``: latent RMSE of each group's student
at each step count along training (mean over its runs that have a curve, a band for min..max).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

from lcm_exp.evaluate.claims import read_rows

STUDENT_METHODS = ("student", "student_det", "undistilled")
COLUMNS = [("latent_rmse", "latent RMSE", "{:.3f}"), ("psnr_db", "PSNR dB", "{:.1f}"),
           ("attr_acc", "attr acc", "{:.3f}"), ("fd", "FD", "{:.0f}")]  # fmt: skip


def _cell(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    if len(values) == 1 or len(set(values)) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.mean(values))} ± {fmt.format(statistics.stdev(values))}"


def comparison_table(groups: dict[str, list[Path]]) -> str:
    """Markdown: the groups' student rows (mean ± std), then the teacher's rows of the first run."""
    lines = ["| objective | method | steps | NFE | " + " | ".join(c[1] for c in COLUMNS) + " |",
             "|---" * (4 + len(COLUMNS)) + "|"]  # fmt: skip
    first: list[dict] = []
    for name, runs in groups.items():
        rows = [read_rows(r) for r in runs]
        first = first or rows[0]
        keys = [(r["method"], r["steps"], r["label"], r["nfe"]) for r in rows[0] if r["method"] in STUDENT_METHODS]
        for method, steps, label, nfe in keys:
            same = [[x for x in run if x["method"] == method and x["steps"] == steps] for run in rows]
            cells = [_cell([float(x[0][k]) for x in same if x and x[0].get(k) not in (None, "")], f)
                     for k, _, f in COLUMNS]
            lines.append(f"| {name} | {label} | {steps} | {nfe} | " + " | ".join(cells) + " |")
    for r in first:
        if r["method"] not in STUDENT_METHODS:
            cells = [_cell([float(r[k])] if r.get(k) not in (None, "") else [], f) for k, _, f in COLUMNS]
            lines.append(f"| teacher | {r['label']} | {r['steps']} | {r['nfe']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pivot_table(groups: dict[str, list[Path]], metric: str = "latent_rmse") -> str:
    """Markdown: one line per (group, student sampler) and per teacher method, one column per step count."""
    fmt = dict((k, f) for k, _, f in COLUMNS)[metric]
    first = read_rows(next(iter(groups.values()))[0])
    steps = sorted({int(r["steps"]) for r in first if r["method"] != "reference"})
    lines = ["| method | " + " | ".join(f"{n} step{'s' * (n > 1)}" for n in steps) + " |",
             "|---" * (len(steps) + 1) + "|"]  # fmt: skip

    def line(name, rows_per_run, method):
        cells = []
        for n in steps:
            values = [float(x[metric]) for rows in rows_per_run for x in rows
                      if x["method"] == method and int(x["steps"]) == n and x.get(metric) not in (None, "")]
            cells.append(_cell(values, fmt))
        label = next(x["label"] for x in rows_per_run[0] if x["method"] == method)
        return f"| {name}{label} | " + " | ".join(cells) + " |"

    for name, runs in groups.items():
        rows = [read_rows(r) for r in runs]
        for m in (m for m in STUDENT_METHODS[:2] if any(x["method"] == m for x in rows[0])):
            new = line(f"{name} ({len(runs)} run{'s' * (len(runs) > 1)}): ", rows, m)
            if m == "student" or new.split(" | ", 1)[1] != lines[-1].split(" | ", 1)[1]:  # drop a duplicate
                lines.append(new)  # (the deterministic variant of a student that samples deterministically)
    methods = dict.fromkeys(r["method"] for r in first if r["method"] not in (*STUDENT_METHODS[:2], "reference"))
    lines += [line("", [first], m) for m in methods]
    return "\n".join(lines)


def _curve(run: Path, key: str) -> dict[int, float]:
    from lcm_exp.runlog.metrics import read_metrics

    return {row["step"]: row[key] for row in read_metrics(run) if row.get("eval") and key in row}


def plot_curves(groups: dict[str, list[Path]], path: Path, steps: Sequence[int] = (1, 2, 4, 8)) -> None:
    """One panel per sampling step count: each group's student latent RMSE along training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(steps), figsize=(4.2 * len(steps), 3.8), squeeze=False)
    for ax, n in zip(axes[0], steps, strict=True):
        for name, runs in groups.items():
            curves = [c for c in (_curve(r, f"latent_rmse:student:{n}") for r in runs) if c]  # runs with a curve
            xs = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
            if not xs:
                continue
            mean = [statistics.mean(c[x] for c in curves) for x in xs]
            ax.plot(xs, mean, marker="o", markersize=3, label=name)
            ax.fill_between(xs, [min(c[x] for c in curves) for x in xs], [max(c[x] for c in curves) for x in xs],
                            alpha=0.15)  # fmt: skip
        ax.set_title(f"student latent RMSE, {n} step{'s' * (n > 1)}")
        ax.set_xlabel("training step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lcm_exp.evaluate.compare", description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="+", help="NAME=<run dir>,<run dir>,...")
    parser.add_argument("--out", type=Path, default=Path("compare"), help="folder for table.md and curves.png")
    args = parser.parse_args(argv)
    groups = {}
    for spec in args.groups:
        name, sep, runs = spec.partition("=")
        if not sep or not runs:
            parser.error(f"{spec!r}: expected NAME=<run dir>,<run dir>,...")
        groups[name] = [Path(r) for r in runs.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    table = comparison_table(groups)
    (args.out / "table.md").write_text(table + "\n")
    for metric in ("latent_rmse", "fd"):
        (args.out / f"{metric}.md").write_text(pivot_table(groups, metric) + "\n")
    plot_curves(groups, args.out / "curves.png")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
