"""The optuna preset (optional extra): trials return the objective, w_max is drawn >= w_min, a summary is written."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="optional extra: pip install -e '.[optuna]'")
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_two_trials(tmp_path, cache_dir):
    sweep_dir = tmp_path / "optuna"
    cmd = [sys.executable, "launch.py", "-m", "experiment=tiny", "sweep=optuna", "hydra.sweeper.n_trials=2", "trainer.max_train_steps=2",
           "trainer.batch_size=2", "validation.at_end=false", "export.enabled=false", f"hydra.sweep.dir={sweep_dir}",
           f"paths.cache_dir={cache_dir}"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert "Best value:" in out.stdout and (sweep_dir / "optuna.db").is_file()
    with open(sweep_dir / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and all(r["status"] == "completed" for r in rows)
    assert all(float(r["w_min"]) <= float(r["w_max"]) for r in rows)
    assert all(1e-4 <= float(r["huber_c"]) <= 1e-1 for r in rows)
