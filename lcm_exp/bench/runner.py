"""Build one variant exactly as a training run is built, time warm steps of its training step, free everything.

The run comes from ``lcm_exp.train.build.build_run`` (what ``train()`` calls) and the timed step is its
``TrainStep`` (what the loop steps), with phase marks; only the teacher's weights differ (seeded random, see
``bench/teachers.py``), which changes no cost.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import logging
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lcm_exp.bench.flops import count_flops, device_name, peak_tflops
from lcm_exp.bench.memory import PeakMemory, release_freed
from lcm_exp.bench.timing import make_clock, summarize
from lcm_exp.bench.variants import Variant

log = logging.getLogger(__name__)


@dataclass
class BenchOptions:
    steps: int = 10  # timed steps
    warmup: int = 3  # untimed steps after the FLOP-counting step
    cache_samples: int = 256  # samples written to the bench's latent cache
    count_flops: bool = True


@dataclass
class VariantResult:
    name: str
    overrides: tuple[str, ...]
    batch_size: int
    steps: int
    samples_per_s: float  # timed steps' samples over their wall time
    median_step_s: float
    median_step_cpu_s: float | None  # CPU: the process's CPU seconds per step (robust to other people's load)
    phases_s: dict[str, float]  # median seconds per phase
    peak_bytes: int
    build_bytes: int  # peak minus the memory in use before the variant was built
    flops_per_step: int | None
    tflops: float | None  # achieved: flops_per_step / median step time
    peak_fraction: float | None
    device: str
    loss: float  # the last timed step's loss: a sanity look (finite, plausible size), not a comparison
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def family_class(cfg):
    from lcm_exp.bench.teachers import random_init_family
    from lcm_exp.models.registry import get_family

    return random_init_family(get_family(cfg.model.family))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def latent_cache_for(cfg, samples: int, device: torch.device) -> tuple[str, float]:
    """The bench's latent cache of the run's data and teacher (built once, reused by later runs), and the seconds
    spent building it now (0 when reused)."""
    from lcm_exp.data.cache_latents import build_cache
    from lcm_exp.models.precision import frozen_dtype
    from lcm_exp.data.latent_cache import META_FILE, shards_spec

    key = json.dumps(
        [
            cfg.model.teacher,
            cfg.model.resolution,
            cfg.model.vae_dtype,
            str(cfg.data.shards),
            cfg.data.crop,
            cfg.data.random_flip,
            cfg.data.image_interpolation,
            cfg.seed,
            cfg.trainer.mixed_precision,
            samples,
        ]
    )
    folder = Path(cfg.paths.cache_dir) / f"bench-latents-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if (folder / META_FILE).is_file():
        return shards_spec(folder), 0.0
    t0 = time.perf_counter()
    frozen = frozen_dtype(cfg.perf.frozen_dtype, cfg.trainer.mixed_precision, device)
    family = family_class(cfg)(cfg.model, device=device, weight_dtype=frozen)
    _, spec = build_cache(
        cfg, folder, batch_size=cfg.trainer.batch_size, max_samples=samples, overwrite=True, family=family
    )
    del family
    release_freed()
    return spec, time.perf_counter() - t0


@dataclass
class Built:
    """A variant's run and its batch stream (dropped together when the variant is done)."""

    run: Any  # lcm_exp.train.build.Run
    stream: Iterator[dict[str, Any]]


def assemble(cfg, accelerator, cache_shards: str | None = None) -> Built:
    """The run ``launch.py`` would build for ``cfg`` (a RunConfig): ``lcm_exp.train.build.build_run`` itself, with
    the bench's random-weight family; ``cache_shards`` is the latent cache to read when ``data.source`` is
    latent_cache (default: ``data.shards`` itself)."""
    from lcm_exp.train.build import build_run

    if cfg.data.source == "latent_cache" and cache_shards is not None:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, shards=cache_shards))
    run = build_run(cfg, accelerator, family_cls=family_class(cfg))
    return Built(run, run.batches())


def _warm(built, cfg, opts: BenchOptions, count: bool) -> int | None:
    """One FLOP-counted eager step (when ``count``), torch.compile if switched on (as the loop does after
    building), then the warm-up steps."""
    from lcm_exp.perf.switches import compile_networks

    step, batches = built.run.step, built.stream
    flops = count_flops(lambda: step(next(batches))) if count else None
    if cfg.perf.compile:
        compile_networks(built.run.networks)
    for _ in range(opts.warmup):
        step(next(batches))
    return flops


def _timed_step(built, clock, device: torch.device):
    """One timed step, data fetch included: (host seconds, StepOutput). On CUDA the clock's events time it."""
    t0 = time.perf_counter()
    clock.step_start()
    batch = next(built.stream)
    clock.mark("data")
    result = built.run.step(batch)
    clock.step_end()
    return time.perf_counter() - t0, result.out


def _timing(per_step: list[dict[str, float]], cpu_s: list[float], wall: float, steps: int, batch: int) -> dict:
    median, phases = summarize(per_step)
    return {
        "samples_per_s": batch * steps / wall,
        "median_step_s": median,
        "median_step_cpu_s": statistics.median(cpu_s) if cpu_s else None,
        "phases_s": phases,
        "extra": {
            "step_s": [round(sum(s.values()), 4) for s in per_step],
            "wall_s": round(wall, 3),
            "step_cpu_s": [round(c, 3) for c in cpu_s],
        },
    }


def _release(accelerator) -> None:
    accelerator.free_memory()
    gc.collect()
    release_freed()


def run_variant(cfg, variant: Variant, opts: BenchOptions, accelerator, cache_shards: str | None) -> VariantResult:
    """Measure one variant; ``cfg`` is the composed RunConfig with the variant's overrides applied."""
    tr, device = cfg.trainer, accelerator.device
    memory = PeakMemory(device)
    memory.reset()
    before = memory.current_bytes()
    built = assemble(cfg, accelerator, cache_shards)
    release_freed()
    flops = _warm(built, cfg, opts, opts.count_flops)
    _sync(device)
    memory.reset(release=False)
    clock = make_clock(device)
    built.run.step.clock = clock
    t0 = time.perf_counter()
    for _ in range(opts.steps):
        _, out = _timed_step(built, clock, device)
    _sync(device)
    wall = time.perf_counter() - t0
    timing = _timing(clock.finish(), clock.cpu_s, wall, opts.steps, tr.batch_size)
    peak = memory.peak_bytes()
    loss = float(out.loss.detach())
    out = built = None  # drop the variant's models before the next one is built
    _release(accelerator)
    result = VariantResult(
        name=variant.name,
        overrides=variant.overrides,
        batch_size=tr.batch_size,
        steps=opts.steps,
        peak_bytes=peak,
        build_bytes=peak - before,
        flops_per_step=flops,
        tflops=None,
        peak_fraction=None,
        device=device_name(device),
        loss=loss,
        **timing,
    )
    set_throughput(result, tr)
    return result


def set_throughput(result: VariantResult, trainer) -> None:
    """Achieved TFLOP/s (FLOPs per step over the median step) and the fraction of the card's dense peak."""
    if not result.flops_per_step or not result.median_step_s:
        return
    result.tflops = result.flops_per_step / result.median_step_s / 1e12
    peak = peak_tflops(result.device, trainer.mixed_precision, trainer.allow_tf32)
    result.peak_fraction = result.tflops / peak if peak else None


def interleaved_timing(runs: list[tuple[Any, Variant]], opts: BenchOptions, accelerator, cache_shards) -> dict:
    """All variants built at once and stepped in turn (the order rotating every round), so load that other
    people put on a shared machine falls on every variant alike. Returns name -> timing fields."""
    device = accelerator.device
    built = {v.name: assemble(cfg, accelerator, cache_shards) for cfg, v in runs}
    for cfg, v in runs:
        _warm(built[v.name], cfg, opts, count=False)
    clocks = {name: make_clock(device) for name in built}
    walls = {name: 0.0 for name in built}
    for name, b in built.items():
        b.run.step.clock = clocks[name]
    names = list(built)
    for i in range(opts.steps):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            seconds, _ = _timed_step(built[name], clocks[name], device)
            _sync(device)
            walls[name] += seconds
    batch = {v.name: cfg.trainer.batch_size for cfg, v in runs}
    out = {n: _timing(clocks[n].finish(), clocks[n].cpu_s, walls[n], opts.steps, batch[n]) for n in names}
    built = None
    _release(accelerator)
    return out
