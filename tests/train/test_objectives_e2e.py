"""The three objectives train through launch.py with full and LoRA students on the tiny SD1.5 and SDXL teachers
(the toy teacher: tests/evaluate/test_curve.py); the export names the objective's scheduler, validation ran with it.
The whole matrix is slow; one TCD and one PCM run stay in the default suite."""

from __future__ import annotations

import json

import pytest

from tests.train.runner import launch, record

OBJECTIVES = {"lcd": [], "tcd": ["objective=tcd", "objective.gamma=0.5"],
              "pcm": ["objective=pcm", "objective.phases=2", "objective.num_ddim_timesteps=10"]}  # fmt: skip
FAST_CASES = {("tcd", "full", "tiny_sd15"), ("pcm", "lora", "tiny_sdxl")}
CASES = [pytest.param(o, a, m, marks=() if (o, a, m) in FAST_CASES else pytest.mark.slow)
         for o in OBJECTIVES for a in ("full", "lora") for m in ("tiny_sd15", "tiny_sdxl")]  # fmt: skip


@pytest.mark.parametrize(("objective", "adapter", "model"), CASES)
def test_objective_trains_and_exports_its_scheduler(tmp_path, cache_dir, objective, adapter, model):
    launch(tmp_path, cache_dir, f"model={model}", f"adapter={adapter}", *OBJECTIVES[objective],
           "trainer.max_train_steps=2", "trainer.batch_size=2")  # fmt: skip
    rec = record(tmp_path)
    assert rec["status"] == "completed" and rec["config"]["objective"]["name"] == objective
    scheduler = json.loads((tmp_path / "model" / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["_class_name"] == ("LCMScheduler" if objective == "lcd" else "TCDScheduler")
    assert scheduler["original_inference_steps"] == rec["config"]["objective"]["num_ddim_timesteps"]
    assert list((tmp_path / "validation").glob("step-*/1-steps.png"))
