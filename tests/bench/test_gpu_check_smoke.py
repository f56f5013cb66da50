"""The prepared GPU check rehearsed on the CPU (--smoke: tiny teachers, one step per variant): the plan, the
equal-math check and the results files work end to end before any device time is spent."""

from __future__ import annotations

import json

import pytest
import torch

from lcm_exp.bench import gpu_check


@pytest.mark.slow
def test_gpu_check_smoke_writes_results(cache_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LCM_EXP_CACHE", str(cache_dir))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert gpu_check.main(["--out", str(tmp_path), "--smoke", "--sections", "sd15_lora_512"]) == 0
    finally:
        torch.set_num_threads(threads)
    text = (tmp_path / "gpu_results.md").read_text()
    assert "## sd15_lora_512" in text and "| parity |" in text and "| optimised |" in text
    report = json.loads((tmp_path / "gpu_results.json").read_text())
    assert report["equal_math"]["loss relative difference"] < 1e-5
    results = report["sections"]["sd15_lora_512"]["results"]
    assert [r["name"] for r in results] == ["parity", "optimised"] and not any(r["error"] for r in results)


def test_plan_covers_the_issue_and_smoke_keeps_its_variants():
    names = {s.name: s for s in gpu_check.PLAN}
    assert {"sd15_full_512", "sd15_lora_512", "sdxl_lora_1024"} <= names.keys()
    sdxl = names["sdxl_lora_1024"]
    assert (
        sdxl.preset == "sdxl" and "model.resolution=1024" in sdxl.overrides and "trainer.batch_size=4" in sdxl.overrides
    )
    assert "optimised+optim=adamw8bit" in sdxl.variants and "trainer.gradient_checkpointing=true" in sdxl.overrides
    assert all(s.extra for s in gpu_check.PLAN if "compile" in s.name or "switches" in s.name)
    tiny = gpu_check.smoke(names["sd15_full_512_compile"])
    assert tiny.variants == [] and tiny.preset is None
    tiny = gpu_check.smoke(sdxl)
    assert "model=tiny_sdxl" in tiny.overrides and "trainer.mixed_precision=no" in tiny.overrides
