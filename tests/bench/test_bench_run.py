"""The harness end to end on the tiny offline teacher: both variants measured in one process, table written."""

from __future__ import annotations

import json

import pytest
import torch

from lcm_exp.bench.__main__ import parse_args, run


@pytest.mark.slow  # about 15 s on a quiet machine, up to a minute on the busy shared cores
def test_bench_compares_parity_and_optimised_in_one_process(cache_dir, tmp_path):
    threads = torch.get_num_threads()
    args = parse_args(
        [
            "--variants",
            "parity,optimised",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--cache-samples",
            "4",
            "--threads",
            "1",
            "--interleave",
            "--out",
            str(tmp_path / "bench.md"),
            "--",
            "model=tiny_sd15",
            "model.resolution=32",
            "trainer.batch_size=2",
            f"paths.cache_dir={cache_dir}",
        ]
    )
    try:
        results = run(args)
    finally:
        torch.set_num_threads(threads)
    assert [r.name for r in results] == ["parity", "optimised"] and all(r.error is None for r in results)
    parity, optimised = results
    # the reference's per-step VAE and text work and its two teacher passes show up as phases
    assert parity.phases_s["vae"] > 0 and parity.phases_s["teacher"] > 0 and parity.flops_per_step > 0
    # the cached variant runs no VAE encoder: fewer FLOPs per step at equal UNet work
    assert optimised.flops_per_step < parity.flops_per_step
    assert all(r.samples_per_s > 0 and r.peak_bytes > 0 for r in results)
    table = (tmp_path / "bench.md").read_text()
    assert "| parity |" in table and "| optimised |" in table and "student_bwd" in table
    meta = json.loads((tmp_path / "bench.json").read_text())["meta"]
    assert meta["batch_size"] == 2 and meta["resolution"] == 32 and meta["timing"].startswith("interleaved")
    assert all(r.extra["one_by_one_samples_per_s"] > 0 and len(r.extra["step_s"]) == 1 for r in results)
