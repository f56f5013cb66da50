"""One benchmark session: a base config (Hydra overrides), several variants, one process, one report file."""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from pathlib import Path

import torch

from lcm_exp.bench.compose import REPO, compose_run_config
from lcm_exp.bench.flops import device_name
from lcm_exp.bench.memory import release_freed
from lcm_exp.bench.report import write
from lcm_exp.bench.runner import (
    BenchOptions,
    VariantResult,
    interleaved_timing,
    latent_cache_for,
    run_variant,
    set_throughput,
)
from lcm_exp.bench.variants import Variant, expand

log = logging.getLogger(__name__)
FIXED = ["validation.at_end=false", "logger=none"]


def preset_overrides(preset: str | None, overrides: list[str]) -> list[str]:
    """Model overrides that load a bench preset teacher (its family's tiny model group, its folder)."""
    if preset is None:
        return list(overrides)
    from lcm_exp.bench.teachers import ensure_preset_teacher

    cache = next(
        (o.split("=", 1)[1] for o in overrides if o.startswith("paths.cache_dir=")),
        os.environ.get("LCM_EXP_CACHE", str(REPO / ".cache")),
    )
    folder = ensure_preset_teacher(preset, cache)
    group = "model=tiny_sdxl" if preset == "sdxl" else "model=tiny_sd15"
    return [group, f"model.teacher={folder}", *overrides]


def make_accelerator(mixed_precision: str):
    """The session's Accelerator (accelerate keeps one precision per process)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    cpu = not torch.cuda.is_available()
    try:
        return Accelerator(mixed_precision=mixed_precision, cpu=cpu)
    except ValueError:  # an earlier one in this process chose another precision: the bench owns the process
        AcceleratorState._reset_state(True)
        return Accelerator(mixed_precision=mixed_precision, cpu=cpu)


def _failed(variant: Variant, batch_size: int, error: str) -> VariantResult:
    return VariantResult(
        variant.name, variant.overrides, batch_size, 0, 0.0, 0.0, None, {}, 0, 0, None, None, None, "", 0.0, error=error
    )


def run_bench(
    base: list[str],
    variant_names: list[str],
    opts: BenchOptions,
    out: Path,
    title: str = "",
    deadline: float | None = None,
    min_left_s: float = 0.0,
    accelerator=None,
    interleave: bool = False,
) -> list[VariantResult]:
    """Measure each variant in turn on ``base`` (overrides, preset already applied); rewrite ``out`` after each.

    ``deadline`` (time.monotonic) with ``min_left_s``: a variant is skipped when less time than that is left. A
    variant that fails (out of memory, a missing package) is recorded with its error and the session goes on.
    ``interleave``: after the one-by-one pass (which gives memory and FLOPs), time all variants again built side by
    side and stepped in turn; those timings replace the first pass's (for a shared, busy machine).
    """
    variants = expand(variant_names)
    base_cfg = compose_run_config([*base, *FIXED])
    tr = base_cfg.trainer
    accelerator = accelerator or make_accelerator(tr.mixed_precision)
    if tr.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    cache_shards, cache_s = None, 0.0
    if any(v.latent_cache for v in variants):
        cache_shards, cache_s = latent_cache_for(base_cfg, opts.cache_samples, accelerator.device)
    meta = {
        "device": device_name(accelerator.device),
        "torch": torch.__version__,
        "overrides": base,
        "batch_size": tr.batch_size,
        "resolution": base_cfg.model.resolution,
        "family": base_cfg.model.family,
        "mixed_precision": tr.mixed_precision,
        "adapter": base_cfg.adapter.name,
        "steps": opts.steps,
        "warmup": opts.warmup,
        "latent_cache_build_s": round(cache_s, 1),
        "command": " ".join(sys.argv),
    }
    header = title or (
        f"{meta['device']}; {meta['family']} {meta['adapter']}, batch {tr.batch_size}, "
        f"{meta['resolution']} px, mixed_precision={tr.mixed_precision}; median of {opts.steps} warm "
        "steps"
    )
    results: list[VariantResult] = []
    for variant in variants:
        if deadline is not None and deadline - time.monotonic() < min_left_s:
            results.append(_failed(variant, tr.batch_size, "skipped: time budget spent"))
            continue
        log.info("variant %s", variant.name)
        t0 = time.perf_counter()
        try:
            cfg = compose_run_config([*base, *FIXED, *variant.overrides])
            result = run_variant(cfg, variant, opts, accelerator, cache_shards)
        except Exception as err:  # noqa: BLE001 - one variant's failure (OOM, missing package) must not end it all
            log.error("variant %s failed:\n%s", variant.name, traceback.format_exc())
            first = str(err).splitlines()[0][:120] if str(err) else ""
            result = _failed(variant, tr.batch_size, f"{type(err).__name__}: {first}")
        if result.error:  # outside the except block: the traceback no longer holds the variant's tensors
            accelerator.free_memory()
            release_freed()
        result.extra["seconds"] = round(time.perf_counter() - t0, 1)
        results.append(result)
        log.info("%s: %.2f samples/s (%.0f s)", variant.name, result.samples_per_s, time.perf_counter() - t0)
        write(results, out, header=header, meta=meta)
    if interleave:
        _interleave(results, base, variants, opts, accelerator, cache_shards)
        meta["timing"] = "interleaved: all variants built side by side, one step of each in turn"
        write(results, out, header=header + " (steps interleaved across variants)", meta=meta)
    return results


def _interleave(results, base, variants, opts, accelerator, cache_shards) -> None:
    ok = [(r, v) for r, v in zip(results, variants, strict=True) if r.error is None]
    runs = [(compose_run_config([*base, *FIXED, *v.overrides]), v) for _, v in ok]
    timings = interleaved_timing(runs, opts, accelerator, cache_shards)
    for (result, variant), (cfg, _) in zip(ok, runs, strict=True):
        first_pass = result.samples_per_s
        fields = timings[variant.name]
        extra = {**result.extra, **fields.pop("extra"), "one_by_one_samples_per_s": round(first_pass, 3)}
        for key, value in fields.items():
            setattr(result, key, value)
        result.extra = extra
        set_throughput(result, cfg.trainer)
