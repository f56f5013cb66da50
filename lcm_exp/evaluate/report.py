"""Report files of an evaluation: table.txt (the printed table), results.csv, summary.json, metrics.png, grid.png."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from lcm_exp.evaluate.baselines import REFERENCE as REFERENCE_SAMPLER
from lcm_exp.evaluate.settings import METHODS, METRICS, REFERENCE

_COLUMNS = [("latent_rmse", "latent RMSE", "{:.3f}"), ("psnr_db", "PSNR dB", "{:.1f}"),
            ("attr_acc", "attr acc", "{:.3f}"), ("fd", "FD", "{:.2f}"),
            ("clip_score", "CLIP", "{:.2f}"), ("fid", "FID", "{:.2f}")]  # fmt: skip


def format_table(result) -> str:
    """Fixed-width table of every row (methods x steps); metrics nobody computed are left out."""
    present = [c for c in _COLUMNS if any(r.get(c[0]) is not None for r in result.rows)]
    header = ["method", "steps", "NFE", *[c[1] for c in present]]
    lines = [header]
    for r in result.rows:
        cells = [r["label"], str(r["steps"]), str(r["nfe"])]
        cells += ["-" if r.get(k) is None else fmt.format(r[k]) for k, _, fmt in present]
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True)))
            for line in lines]  # fmt: skip
    text.insert(1, "-" * len(text[0]))
    s = result.settings
    reference = REFERENCE_SAMPLER[result.schedule_kind].header.format(n=s.reference_steps)
    head = (f"reference: {reference}, CFG w={s.w:g} (LCM convention; diffusers "
            f"guidance_scale={s.w + 1:g}); {s.num_samples} prompt/seed pairs, seed {s.seed}")  # fmt: skip
    return "\n".join([head, *text, *[f"note: {n}" for n in result.notes]])


def write_report(result, out_dir: Path, title: str = "") -> dict[str, str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"table": out_dir / "table.txt", "csv": out_dir / "results.csv", "summary": out_dir / "summary.json",
             "plot": out_dir / "metrics.png", "grid": out_dir / "grid.png"}  # fmt: skip
    files["table"].write_text(format_table(result) + "\n")
    keys: list[str] = []
    for row in result.rows:
        keys += [k for k in row if k not in keys]
    with files["csv"].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(result.rows)
    summary = {"title": title, "settings": asdict(result.settings), "notes": result.notes, "timings": result.timings,
               "rows": result.rows}  # fmt: skip
    try:
        summary["objective"] = {"name": result.settings.objective, "value": result.objective(),
                                "direction": result.objective_direction()}  # fmt: skip
    except (ValueError, KeyError) as err:
        summary["objective"] = {"name": result.settings.objective, "value": None, "error": str(err)}
    files["summary"].write_text(json.dumps(summary, indent=2))
    plot_metrics(result, files["plot"], title)
    picture_grid(result).save(files["grid"])
    return {k: str(v) for k, v in files.items()}


def plot_metrics(result, path: Path, title: str = "") -> None:
    """One panel per computed metric, metric vs steps (log2 axis) per method; the reference as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in METRICS if any(r.get(m) is not None for r in result.rows if r["method"] != REFERENCE)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 4.2), squeeze=False)
    names = dict((k, label) for k, label, _ in _COLUMNS)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for method in METHODS:
            rows = [r for r in result.rows if r["method"] == method and r.get(metric) is not None]
            if rows:  # labelled as its rows are (a student's name its exported scheduler)
                ax.plot(*zip(*[(r["steps"], r[metric]) for r in rows], strict=True), marker="o", label=rows[0]["label"])
        ref = [r.get(metric) for r in result.rows if r["method"] == REFERENCE]
        if ref and ref[0] is not None:
            ax.axhline(ref[0], color="black", linestyle="--", linewidth=1, label="reference")
        ax.set_xscale("log", base=2)
        if metric in ("latent_rmse", "fd", "fid"):  # spans orders of magnitude between 1 and 8 steps
            ax.set_yscale("log")
        ax.set_xticks(result.settings.steps, [str(s) for s in result.settings.steps])
        ax.set_xlabel("steps")
        ax.set_title(names[metric])
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def picture_grid(result, tile: int = 64, label_width: int = 300) -> Image.Image:
    """Rows: reference, then each method x steps; columns: the first ``grid_samples`` prompt/seed pairs."""
    rows = [(r["label"], r["steps"], result.grid_images[(r["method"], r["steps"])]) for r in result.rows
            if (r["method"], r["steps"]) in result.grid_images]  # fmt: skip
    cols = max(images.shape[0] for _, _, images in rows)
    grid = Image.new("RGB", (label_width + cols * tile, len(rows) * tile), "white")
    draw = ImageDraw.Draw(grid)
    for i, (label, steps, images) in enumerate(rows):
        draw.text((4, i * tile + tile // 2 - 12), f"{label}\n{steps} step{'s' if steps > 1 else ''}", fill="black")
        arr = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for j, a in enumerate(arr):
            tile_image = Image.fromarray(a).resize((tile, tile), Image.Resampling.NEAREST)
            grid.paste(tile_image, (label_width + j * tile, i * tile))
    return grid
