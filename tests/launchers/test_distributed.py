"""Issue 6: two CPU processes (DDP over gloo) through launcher=accelerate and through torchrun."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.train.runner import ROOT, launch, metrics, record

DDP = ["launcher=accelerate", "launcher.num_processes=2", "launcher.cpu=true"]
QUICK = ["validation.at_end=false"]


@pytest.mark.parametrize("adapter", ["full", pytest.param("lora", marks=pytest.mark.slow)])
def test_accelerate_launcher_trains_ddp_with_one_run_dir_and_a_log_per_rank(tmp_path, cache_dir, adapter):
    launch(tmp_path, cache_dir, *DDP, *QUICK, f"adapter={adapter}", "trainer.max_train_steps=3")
    rec = record(tmp_path)
    assert rec["status"] == "completed" and rec["metrics"]["ranks_in_sync"] is True
    assert "--num_processes 2" in rec["workers_command"] and "--multi_gpu" in rec["workers_command"]
    logs = {p.name: p.read_text() for p in (tmp_path / "rank_logs").glob("*.log")}
    assert set(logs) == {"rank0.log", "rank1.log"}
    assert "8 per process x 2 processes x 1 accumulation = 16 global" in logs["rank1.log"]
    assert (tmp_path / "model").is_dir() and [r["step"] for r in metrics(tmp_path)] == [1, 2, 3]


@pytest.mark.slow
def test_accelerate_launcher_resumes_across_processes(tmp_path, cache_dir):
    args = [*DDP, *QUICK, "trainer.checkpointing_steps=2", "export.enabled=false"]
    launch(tmp_path, cache_dir, *args, "trainer.max_train_steps=2")
    launch(tmp_path, cache_dir, *args, "trainer.max_train_steps=4", "trainer.resume_from_checkpoint=latest")
    rec = record(tmp_path)
    assert rec["status"] == "completed" and rec["metrics"]["steps"] == 4 and rec["metrics"]["ranks_in_sync"]
    assert [r["step"] for r in metrics(tmp_path)] == [1, 2, 3, 4]
    assert (tmp_path / "checkpoints/checkpoint-4/random_states_1.pkl").exists()  # rank 1's RNG state too


def test_failing_worker_surfaces_the_rank_log_tail(tmp_path, cache_dir):
    out = launch(tmp_path, cache_dir, *DDP, *QUICK, "guidance.w_min=1e38", "guidance.w_max=1e38",
                 "trainer.nonfinite=stop", "trainer.max_train_steps=2", check=False)  # fmt: skip
    assert out.returncode != 0
    rec = record(tmp_path)
    assert rec["status"] == "failed" and rec["error"]["type"] == "WorkerFailure"
    assert "tail of" in rec["error"]["message"] and "NonFiniteLoss" in rec["error"]["message"]


@pytest.mark.slow
def test_torchrun_ranks_agree_on_one_run_dir(tmp_path, cache_dir):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "true"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "launch.py", "experiment=tiny",
           f"paths.log_dir={tmp_path}", f"paths.cache_dir={cache_dir}", "name=ddp", "trainer.max_train_steps=2",
           *QUICK, "export.enabled=false"]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    run_dirs = list((tmp_path / "runs").iterdir())
    assert len(run_dirs) == 1
    run_dir = run_dirs[0]
    assert (run_dir / "launch.log").exists() and (run_dir / "launch_rank1.log").exists()
    rec = record(run_dir)
    assert rec["status"] == "completed" and rec["metrics"]["ranks_in_sync"] is True


def test_multirun_inside_a_distributed_launch_is_refused():
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "0"}
    out = subprocess.run([sys.executable, "launch.py", "-m", "experiment=tiny", "seed=1,2"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode != 0 and "launcher=accelerate" in out.stderr
