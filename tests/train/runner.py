"""Run launch.py as a user would (a subprocess), in a given run dir, with the session's shared cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.config.compose import with_tiny

ROOT = Path(__file__).resolve().parents[2]
FAST = ["trainer.log_every_n_steps=1", "validation.num_inference_steps=[1]", "validation.seeds=[0]"]


def launch(run_dir: Path, cache_dir: str, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "launch.py", f"hydra.run.dir={run_dir}", f"paths.cache_dir={cache_dir}",
           *with_tiny([*FAST, *overrides])]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    if check and out.returncode != 0:
        raise AssertionError(f"launch failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-6000:]}")
    return out


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def record(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "run.json").read_text())
