"""Harness pieces: phase clock, FLOP counting and peaks, memory, report, preset teachers."""

from __future__ import annotations

import json
import time

import pytest
import torch

from lcm_exp.bench.flops import count_flops, peak_tflops
from lcm_exp.bench.memory import PeakMemory
from lcm_exp.bench.report import markdown, write
from lcm_exp.bench.runner import VariantResult
from lcm_exp.bench.timing import WallClock, summarize


def test_wall_clock_attributes_time_to_the_phase_that_ran():
    clock = WallClock()
    for _ in range(3):
        clock.step_start()
        time.sleep(0.02)
        clock.mark("data")
        clock.mark("vae")  # nothing ran: ~0
        time.sleep(0.04)
        clock.mark("teacher")
        clock.step_end()
    steps = clock.finish()
    assert len(steps) == 3 and len(clock.cpu_s) == 3
    median, phases = summarize(steps)
    assert 0.02 <= phases["data"] < 0.2 and phases["vae"] < 0.01 and 0.04 <= phases["teacher"] < 0.3
    assert median == pytest.approx(sum(steps[1].values()), rel=1.0)
    assert all(c < 0.05 for c in clock.cpu_s)  # sleeping costs no CPU time


def test_summarize_takes_medians():
    median, phases = summarize([{"a": 1.0, "b": 1.0}, {"a": 3.0}, {"a": 2.0, "b": 5.0}])
    assert median == 3.0 and phases == {"a": 2.0, "b": 1.0}


def test_flop_count_of_a_matmul_and_the_peak_table():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    assert count_flops(lambda: a @ b) == 2 * 8 * 16 * 4
    lin = torch.nn.Linear(16, 4)
    x = torch.randn(8, 16, requires_grad=True)
    assert count_flops(lambda: lin(x).sum().backward()) == 3 * 2 * 8 * 16 * 4  # forward, grad input, grad weight
    assert peak_tflops("NVIDIA H100 80GB HBM3", "bf16", True) == 989.4
    assert peak_tflops("NVIDIA H100 PCIe", "bf16", True) == 756.0
    assert peak_tflops("NVIDIA H200", "no", True) == 494.7 and peak_tflops("NVIDIA H200", "no", False) == 66.9
    assert peak_tflops("CPU Intel Xeon, 2 threads", "no", True) is None


def test_cpu_peak_memory_sees_a_large_allocation():
    mem = PeakMemory(torch.device("cpu"))
    mem.reset()
    before = mem.current_bytes()
    big = torch.ones(64, 2**20)  # 256 MiB, touched
    del big
    assert mem.peak_bytes() - before >= 200 * 2**20
    if mem.resettable:
        mem.reset()
        assert mem.peak_bytes() - mem.current_bytes() < 100 * 2**20


def _result(name, sps, **kw):
    base = dict(
        name=name,
        overrides=(),
        batch_size=8,
        steps=4,
        samples_per_s=sps,
        median_step_s=8 / max(sps, 1e-9),
        median_step_cpu_s=16 / max(sps, 1e-9),
        phases_s={"teacher": 0.5, "vae": 0.25},
        peak_bytes=2**30,
        build_bytes=2**29,
        flops_per_step=10**12,
        tflops=1.0,
        peak_fraction=None,
        device="CPU",
        loss=0.1,
    )
    return VariantResult(**{**base, **kw})


def test_report_has_speedups_phases_and_failures(tmp_path):
    results = [
        _result("parity", 2.0),
        _result("optimised", 5.0, phases_s={"teacher": 0.25}),
        _result("huge", 0.0, error="out of memory"),
    ]
    text = markdown(results, "# title")
    assert text.startswith("# title")
    row = next(line for line in text.splitlines() if line.startswith("| optimised |"))
    assert "| 5.00 | 2.50x |" in row and "2.50x" in row.split("|")[6]  # wall and CPU-time speed-up
    assert "| huge | failed: out of memory |" in text
    phase_row = [line for line in text.splitlines() if line.startswith("| parity |")][-1]
    assert "500.0" in phase_row and "250.0" in phase_row
    write(results, tmp_path / "b.md", meta={"device": "CPU"})
    payload = json.loads((tmp_path / "b.json").read_text())
    assert payload["meta"]["device"] == "CPU" and payload["results"][1]["samples_per_s"] == 5.0


def test_preset_teacher_loads_through_the_real_family_with_reproducible_random_weights(tmp_path):
    from lcm_exp.bench.teachers import ensure_preset_teacher, preset_spec, random_init_family
    from lcm_exp.config.schema import ModelConfig
    from lcm_exp.models.sd15 import SD15Family

    folder = ensure_preset_teacher("cpu_small", tmp_path)
    assert ensure_preset_teacher("cpu_small", tmp_path) == folder
    assert not list(folder.rglob("*.safetensors"))  # configs only
    family = random_init_family(SD15Family)(ModelConfig(family="sd15", teacher=str(folder), resolution=32))
    assert tuple(family.denoiser.config.block_out_channels) == (64, 128, 256)
    assert 17e6 < sum(p.numel() for p in family.denoiser.parameters()) < 19e6
    fresh = family.load_denoiser()
    assert all(torch.equal(a, b) for a, b in zip(fresh.parameters(), family.denoiser.parameters(), strict=True))
    cond = family.encode_text({"captions": ["a red circle"]})
    assert cond.prompt_embeds.shape == (1, 77, 256)
    assert preset_spec("sdxl")["unet"]["cross_attention_dim"] == 2048
    with pytest.raises(ValueError, match="unknown bench teacher preset"):
        preset_spec("sd3")
