"""Run launch.py as a user would (a subprocess), in a given run dir, with the session's shared cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

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


TIMING = {"samples_per_s"}  # the only metrics that may differ between two runs of the same steps


def checkpoint_state(checkpoint: Path):
    model = load_file(checkpoint / "model.safetensors")
    ema = load_file(checkpoint / "ema.safetensors") if (checkpoint / "ema.safetensors").exists() else {}
    optim = torch.load(checkpoint / "optimizer.bin", weights_only=True)
    return model, ema, optim


def assert_equal_state(a, b, path="state"):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_equal_state(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_equal_state(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def straight_and_resumed(tmp_path: Path, cache_dir: str, args: list[str]) -> tuple[Path, Path]:
    """4 steps straight, and 2 steps + a resume to 4 (``args`` must checkpoint at step 2): the checkpoint-4 states
    and the metrics rows (but timing) are asserted bitwise equal. Returns both run dirs."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    launch(straight, cache_dir, *args, "trainer.max_train_steps=4")
    launch(resumed, cache_dir, *args, "trainer.max_train_steps=2")
    launch(resumed, cache_dir, *args, "trainer.max_train_steps=4", "trainer.resume_from_checkpoint=latest")
    assert_equal_state(checkpoint_state(straight / "checkpoints/checkpoint-4"),
                       checkpoint_state(resumed / "checkpoints/checkpoint-4"))  # fmt: skip
    drop = lambda rows: [{k: v for k, v in r.items() if k not in TIMING} for r in rows]  # noqa: E731
    assert drop(metrics(straight)) == drop(metrics(resumed))
    return straight, resumed
