"""Markdown and JSON reports of benchmark results (one row per variant, speed-up against the first)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from lcm_exp.bench.runner import VariantResult

PHASES = (
    "data",
    "vae",
    "text",
    "teacher",
    "student_fwd",
    "student_bwd",
    "target",
    "objective",
    "ema",
    "optimizer",
    "sync",
)


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f}"


def _opt(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def markdown(results: list[VariantResult], header: str = "") -> str:
    ok = [r for r in results if r.error is None]
    base = ok[0] if ok else None
    lines = [header] if header else []
    cpu = base is not None and base.median_step_cpu_s is not None
    cpu_head = " CPU-s/step (median) | speed-up (CPU time) |" if cpu else ""
    lines += [
        "| variant | samples/s | speed-up | step ms (median) |" + cpu_head + " peak MiB | above start MiB "
        "| GFLOP/step | TFLOP/s | % of peak | loss |",
        "|---|---:|---:|---:|" + ("---:|---:|" if cpu else "") + "---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.error is not None:
            lines.append(f"| {r.name} | failed: {r.error} |" + "|" * (11 if cpu else 9))
            continue
        speedup = r.samples_per_s / base.samples_per_s if base else 1.0
        cpu_cols = ""
        if cpu and r.median_step_cpu_s:
            cpu_cols = f" {r.median_step_cpu_s:.2f} | {base.median_step_cpu_s / r.median_step_cpu_s:.2f}x |"
        lines.append(
            f"| {r.name} | {r.samples_per_s:.2f} | {speedup:.2f}x | {r.median_step_s * 1e3:.0f} |{cpu_cols} "
            f"{_mib(r.peak_bytes)} | {_mib(r.build_bytes)} "
            f"| {_opt(r.flops_per_step and r.flops_per_step / 1e9, ',.1f')} | {_opt(r.tflops, '.2f')} "
            f"| {_opt(r.peak_fraction and 100 * r.peak_fraction, '.1f')} | {r.loss:.4g} |"
        )
    phases = [p for p in PHASES if any(p in r.phases_s for r in ok)]
    phases += sorted({p for r in ok for p in r.phases_s} - set(phases))
    lines += [
        "",
        "Median milliseconds per phase:",
        "",
        "| variant | " + " | ".join(phases) + " |",
        "|---|" + "---:|" * len(phases),
    ]
    for r in ok:
        lines.append(f"| {r.name} | " + " | ".join(f"{r.phases_s.get(p, 0.0) * 1e3:.1f}" for p in phases) + " |")
    return "\n".join(lines) + "\n"


def write(results: list[VariantResult], out: Path, header: str = "", meta: dict | None = None) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown(results, header))
    payload = {"meta": meta or {}, "results": [dataclasses.asdict(r) for r in results]}
    out.with_suffix(".json").write_text(json.dumps(payload, indent=1))
