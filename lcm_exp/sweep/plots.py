"""Sweep plots (matplotlib, no display): objective heatmaps over (w_min, w_max) and over huber_c, loss curves.

A heatmap cell shows the best objective among the completed jobs that share its coordinates (other swept keys
are folded in), "failed" where every such job failed, and stays empty where no job ran; the best cell is boxed.
Continuous searches (Optuna) give one value per job, too many for cells: they get scatter plots instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from pathlib import Path

GUIDANCE_PNG, HUBER_PNG, CURVES_PNG = "heatmap_guidance.png", "heatmap_huber_c.png", "loss_curves.png"
MAX_CELLS = 10  # distinct values per axis above which a heatmap turns into a scatter plot


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    """PNG bytes are deterministic for the same rows, so an unchanged plot is not rewritten."""
    import io

    from lcm_exp.sweep.files import write_if_changed

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    write_if_changed(path, buf.getvalue())


def _num(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _loss_variant(row) -> tuple:
    """Sort key + label of a row's loss: l2 first, then huber by c, then other losses by name."""
    name, c = row.params.get("loss"), _num(row.params.get("huber_c"))
    if name == "huber" and c is not None:
        return (1, c, f"huber c={c:g}")
    return (0 if name == "l2" else 2, 0.0, str(name))


def _grid(rows, row_key: Callable, col_key: Callable, direction: str):
    """{(r, c): best objective or None (all failed)} over the rows whose keys are both known."""
    better = min if direction == "minimize" else max
    cells: dict[tuple[Hashable, Hashable], float | None] = {}
    for row in rows:
        r, c = row_key(row), col_key(row)
        if r is None or c is None:
            continue
        value = row.objective if row.objective is not None and math.isfinite(row.objective) else None
        old = cells.get((r, c))
        cells[(r, c)] = value if old is None else (old if value is None else better(old, value))
    return cells


def _heatmap(cells, row_labels, col_labels, title, xlabel, ylabel, direction, path: Path) -> Path:
    import numpy as np

    plt = _pyplot()
    rows, cols = sorted({k[0] for k in cells}), sorted({k[1] for k in cells})
    data = np.full((len(rows), len(cols)), np.nan)
    for (r, c), v in cells.items():
        if v is not None:
            data[rows.index(r), cols.index(c)] = v
    fig, ax = plt.subplots(figsize=(1.3 * len(cols) + 2.8, 0.7 * len(rows) + 2.0))
    cmap = plt.get_cmap("viridis_r" if direction == "minimize" else "viridis").with_extremes(bad="#eeeeee")
    image = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, aspect="auto", origin="lower")
    finite = data[np.isfinite(data)]
    best = None
    if finite.size:
        target = finite.min() if direction == "minimize" else finite.max()
        best = tuple(np.argwhere(data == target)[0])
        fig.colorbar(image, ax=ax, fraction=0.05)
    for (r, c), v in cells.items():
        i, j = rows.index(r), cols.index(c)
        shade = None if v is None else image.cmap(image.norm(v))
        dark = shade is not None and 0.299 * shade[0] + 0.587 * shade[1] + 0.114 * shade[2] < 0.5
        ax.text(j, i, "failed" if v is None else f"{v:.4g}", ha="center", va="center", fontsize=8,
                color="#b00020" if v is None else ("white" if dark else "black"))  # fmt: skip
    if best is not None:
        i, j = best
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2.5, ec="red"))
    ax.set_xticks(range(len(cols)), [col_labels(c) for c in cols], rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), [row_labels(r) for r in rows])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def _scatter(points, title, xlabel, ylabel, direction, path: Path, logx: bool = False, baseline=None) -> Path:
    """points: (x, y, objective or None); failed jobs as red crosses, the best one circled."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    done = [(x, y, v) for x, y, v in points if v is not None and math.isfinite(v)]
    failed = [(x, y) for x, y, v in points if v is None or not math.isfinite(v)]
    if done:
        xs, ys, vs = zip(*done, strict=False)
        sc = ax.scatter(xs, ys, c=vs, cmap="viridis_r" if direction == "minimize" else "viridis", s=40)
        fig.colorbar(sc, ax=ax, fraction=0.05)
        pick = min if direction == "minimize" else max
        bx, by, _ = pick(done, key=lambda p: p[2])
        ax.scatter([bx], [by], s=160, facecolors="none", edgecolors="red", lw=2)
    if failed:
        ax.scatter(*zip(*failed, strict=False), marker="x", color="#b00020", label="failed")
        ax.legend(fontsize=8)
    if baseline is not None:
        ax.axhline(baseline[1], ls="--", color="gray", label=baseline[0])
        ax.legend(fontsize=8)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def guidance_heatmap(rows, path: Path, objective: str, direction: str) -> Path | None:
    cells = _grid(rows, lambda r: _num(r.params.get("w_min")), lambda r: _num(r.params.get("w_max")), direction)
    if len(cells) < 2:
        return None
    if max(len({k[0] for k in cells}), len({k[1] for k in cells})) > MAX_CELLS:
        points = [(_num(r.params.get("w_max")), _num(r.params.get("w_min")), r.objective) for r in rows
                  if _num(r.params.get("w_min")) is not None and _num(r.params.get("w_max")) is not None]  # fmt: skip
        return _scatter(points, f"{objective} over (w_min, w_max)", "w_max", "w_min", direction, path)
    return _heatmap(cells, lambda v: f"{v:g}", lambda v: f"{v:g}", f"{objective} over (w_min, w_max)", "w_max",
                    "w_min", direction, path)  # fmt: skip


def huber_heatmap(rows, path: Path, objective: str, direction: str) -> Path | None:
    variants = {_loss_variant(r) for r in rows}
    if len(variants) < 2:
        return None

    def pair(row):
        w = (_num(row.params.get("w_min")), _num(row.params.get("w_max")))
        return None if None in w else w

    if len(variants) > MAX_CELLS:
        huber = [r for r in rows if _loss_variant(r)[0] == 1]
        points = [(_num(r.params.get("huber_c")), r.objective, r.objective) for r in huber if r.objective is not None]
        l2 = [r.objective for r in rows if r.params.get("loss") == "l2" and r.objective is not None]
        return _scatter(
            points,
            f"{objective} over huber_c (completed jobs)",
            "huber_c",
            objective,
            direction,
            path,
            logx=True,
            baseline=("l2 (best)", min(l2) if direction == "minimize" else max(l2)) if l2 else None,
        )
    by_pair = len({pair(r) for r in rows}) > 1
    cells = _grid(rows, pair if by_pair else (lambda r: (0,)), _loss_variant, direction)
    return _heatmap(cells, lambda p: f"w in [{p[0]:g}, {p[1]:g}]" if by_pair else "all jobs", lambda v: v[2],
                    f"{objective} over the loss (huber_c)", "loss", "guidance range" if by_pair else "", direction,
                    path)  # fmt: skip


def loss_curves(rows, path: Path) -> Path | None:
    curves = [r for r in rows if r.curve]
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for r in curves:
        steps, losses = zip(*r.curve, strict=False)
        failed = r.status != "completed"
        ax.plot(steps, losses, ls="--" if failed else "-", marker="o" if len(steps) < 12 else None, ms=3,
                label=r.label + (f" ({r.status})" if failed else ""))  # fmt: skip
    if all(v > 0 for r in curves for _, v in r.curve):
        ax.set_yscale("log")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("training loss per job")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def write_plots(rows, out_dir: Path, objective: str, direction: str) -> dict[str, Path]:
    """Write the plots that apply to these rows; remove stale ones that no longer do."""
    makers = {
        GUIDANCE_PNG: lambda p: guidance_heatmap(rows, p, objective, direction),
        HUBER_PNG: lambda p: huber_heatmap(rows, p, objective, direction),
        CURVES_PNG: lambda p: loss_curves(rows, p),
    }
    made = {}
    for name, make in makers.items():
        path = make(out_dir / name)
        if path is None:
            (out_dir / name).unlink(missing_ok=True)
        else:
            made[Path(name).stem] = path
    return made
