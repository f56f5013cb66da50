"""Issue 6 item 6: the SLURM preset's local twin (submitit_local) runs a 2-job sweep to completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.train.runner import ROOT


@pytest.mark.slow
def test_submitit_local_sweep_of_two_jobs_completes(tmp_path, cache_dir):
    cmd = [sys.executable, "launch.py", "-m", "experiment=tiny", "sweep=guidance_range", "hydra/launcher=slurm_local",
           "hydra.sweeper.guidance_pairs=[[3,9],[5,15]]", "sweep.name=local_twin", f"paths.log_dir={tmp_path}",
           f"paths.cache_dir={cache_dir}", "trainer.max_train_steps=2", "validation.at_end=false",
           "export.enabled=false"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    records = [json.loads(p.read_text()) for p in (tmp_path / "sweeps" / "local_twin").glob("*/run.json")]
    assert len(records) == 2 and all(r["status"] == "completed" for r in records)
    assert {(r["config"]["guidance"]["w_min"], r["config"]["guidance"]["w_max"]) for r in records} == {(3, 9), (5, 15)}
