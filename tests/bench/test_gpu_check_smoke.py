"""The prepared GPU check rehearsed on the CPU (--smoke: tiny teachers, one step per variant): the plan and the
results files work end to end before any device time is spent, writing each section as it ends."""

from __future__ import annotations

import json

import pytest
import torch

from lcm_exp.bench import gpu_check


@pytest.mark.slow
def test_gpu_check_smoke_writes_every_section(cache_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LCM_EXP_CACHE", str(cache_dir))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert gpu_check.main(["--out", str(tmp_path), "--smoke"]) == 0
    finally:
        torch.set_num_threads(threads)
    report = json.loads((tmp_path / "gpu_results.json").read_text())
    assert list(report["sections"]) == [s.name for s in gpu_check.PLAN]
    lora = report["sections"]["sd15_lora_512"]["results"]
    assert [r["name"] for r in lora] == ["default", "parity", "default+adapter=full"]
    assert not any(r["error"] for s in report["sections"].values() for r in s["results"])
    assert "| default+adapter=full |" in (tmp_path / "gpu_results.md").read_text()
    assert (tmp_path / "sdxl_lora_1024.md").is_file()  # each section's table lands as soon as it exists


def test_plan_covers_the_issue_within_the_lease():
    names = {s.name: s for s in gpu_check.PLAN}
    full, batches, sdxl = names["sd15_full_512"], names["sd15_full_512_batch"], names["sdxl_lora_1024"]
    assert full.variants == ["default", "parity"] and "model.resolution=512" in full.overrides
    assert [v.split("=")[-1] for v in batches.variants] == ["16", "32"]
    assert "model.resolution=1024" in sdxl.overrides and "trainer.batch_size=4" in sdxl.overrides
    assert sum(len(s.variants) * (s.steps + s.warmup) for s in gpu_check.PLAN) <= 60  # about 4 minutes on an H200
    tiny = gpu_check.smoke(sdxl)
    assert "model=tiny_sdxl" in tiny.overrides and "trainer.mixed_precision=no" in tiny.overrides
