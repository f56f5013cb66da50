"""A short toy distillation through the real launcher improves the student's 1-step fidelity over the undistilled
student. Slow: it needs the trained toy teacher (built on first use, about 10 minutes on 2 quiet cores; set
LCM_EXP_CACHE to a persistent cache to reuse it) and runs 300 LCD steps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_short_distillation_beats_the_undistilled_student(cache_dir, tmp_path):
    from lcm_exp.evaluate.run import evaluate_run
    from lcm_exp.evaluate.settings import EvalSettings
    from lcm_exp.toy.build import ensure_toy_teacher
    from lcm_exp.toy.shards import ensure_toy_shards

    teacher = ensure_toy_teacher(cache_dir)
    shards = ensure_toy_shards(cache_dir, 1024)
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable, str(ROOT / "launch.py"), "experiment=toy", f"model.teacher={teacher}", f"data.shards='{shards}'",
        f"paths.cache_dir={cache_dir}", f"hydra.run.dir={run_dir}", "trainer.max_train_steps=300",
        "trainer.checkpointing_steps=300", "validation.at_end=false",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, timeout=3600)

    settings = EvalSettings(steps=[1], num_samples=32, reference_steps=20, methods=["student", "undistilled"])
    result = evaluate_run(run_dir, settings, device="cpu")
    student = result.value("latent_rmse", "student", 1)
    undistilled = result.value("latent_rmse", "undistilled", 1)
    assert student < 0.9 * undistilled, (student, undistilled)
    assert result.value("psnr_db", "student", 1) > result.value("psnr_db", "undistilled", 1)
