"""Issue 9: preemption, kill during checkpoint saves, NaN policy, refusing a finished run dir, no pickles."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from lcm_exp.train.checkpoint import MARKER, complete_checkpoints, find_resume_checkpoint
from tests.train.runner import FAST, ROOT, launch, metrics, record

QUICK = ["validation.at_end=false", "export.enabled=false"]


def _start(run_dir, cache_dir, *overrides):
    cmd = [sys.executable, "launch.py", "experiment=tiny", f"hydra.run.dir={run_dir}", f"paths.cache_dir={cache_dir}", *FAST, *QUICK,
           *overrides]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(predicate, proc, timeout=300):
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"run ended early ({proc.returncode}):\n{proc.stdout.read()[-4000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out")
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_signal_checkpoints_marks_preempted_and_the_same_command_resumes(tmp_path, cache_dir, sig):
    args = ["trainer.max_train_steps=12", "trainer.checkpointing_steps=100"]
    proc = _start(tmp_path, cache_dir, *args)
    _wait_for(lambda: (tmp_path / "metrics.jsonl").exists() and len(metrics(tmp_path)) >= 2, proc)
    proc.send_signal(sig)
    assert proc.wait(timeout=120) == 0, proc.stdout.read()[-3000:]
    rec = record(tmp_path)
    assert rec["status"] == "preempted"
    stopped_at = rec["metrics"]["steps"]
    assert 2 <= stopped_at < 12
    assert [c.name for c in complete_checkpoints(tmp_path / "checkpoints")] == [f"checkpoint-{stopped_at}"]

    launch(tmp_path, cache_dir, *QUICK, *args)  # the same command
    rec = record(tmp_path)
    assert rec["status"] == "completed" and rec["metrics"]["steps"] == 12 and rec["attempts"] == 2
    assert [r["step"] for r in metrics(tmp_path)] == list(range(1, 13))


@pytest.mark.slow  # four launches; CI runs it after the default suite
def test_sigkill_during_saves_never_leaves_a_checkpoint_resume_cannot_load(tmp_path, cache_dir):
    args = ["trainer.max_train_steps=40", "trainer.checkpointing_steps=1", "trainer.checkpoints_total_limit=2"]
    root = tmp_path / "checkpoints"
    for attempt in range(3):
        proc = _start(tmp_path, cache_dir, *args)
        # kill while a checkpoint is being written (its temporary folder exists)
        _wait_for(lambda: root.exists() and any(p.name.startswith(".tmp-") for p in root.iterdir()), proc)
        time.sleep(0.01 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        latest = find_resume_checkpoint(root, "latest")
        if latest is not None:
            assert (latest / MARKER).exists() and (latest / "model.safetensors").exists()
            assert (latest / "optimizer.bin").exists() and (latest / "ema.safetensors").exists()
        assert record(tmp_path)["status"] == "running"  # killed: nothing could mark it
    launch(tmp_path, cache_dir, *QUICK, *args)  # resumes from whatever is complete and finishes
    rec = record(tmp_path)
    assert rec["status"] == "completed" and rec["metrics"]["steps"] == 40
    assert len(complete_checkpoints(root)) == 2


@pytest.mark.parametrize(("policy", "needle"), [("stop", "trainer.nonfinite=stop"),
                                                 ("skip", "non-finite steps in a row")])
def test_nonfinite_loss_policy_stops_with_diagnostics(tmp_path, cache_dir, policy, needle):
    # w = 1e38 overflows the teacher's guided prediction: every step is non-finite
    out = launch(tmp_path, cache_dir, *QUICK, "guidance.w_min=1e38", "guidance.w_max=1e38",
                 f"trainer.nonfinite={policy}", "trainer.max_consecutive_nonfinite=3", "trainer.max_train_steps=5",
                 check=False)  # fmt: skip
    assert out.returncode != 0
    rec = record(tmp_path)
    assert rec["status"] == "failed" and rec["error"]["type"] == "NonFiniteLoss"
    assert needle in rec["error"]["message"] and "start_timesteps" in rec["error"]["message"]
    assert not complete_checkpoints(tmp_path / "checkpoints")  # nothing bad was saved


def test_finished_run_dir_is_refused_unless_resumed_or_forced(tmp_path, cache_dir):
    launch(tmp_path, cache_dir, *QUICK, "trainer.max_train_steps=1")
    first = record(tmp_path)
    out = launch(tmp_path, cache_dir, *QUICK, "trainer.max_train_steps=1", check=False)
    assert out.returncode == 2 and "already holds a completed run" in out.stderr
    assert record(tmp_path) == first  # untouched
    launch(tmp_path, cache_dir, *QUICK, "trainer.max_train_steps=1", "force=true")
    assert record(tmp_path)["attempts"] == 1 and record(tmp_path)["start_time"] >= first["start_time"]


def test_checkpoints_hold_no_pickled_objects_of_ours(tmp_path, cache_dir):
    launch(tmp_path, cache_dir, *QUICK, "trainer.max_train_steps=1")
    ckpt = tmp_path / "checkpoints" / "checkpoint-1"
    assert (ckpt / "ema.safetensors").exists()
    assert not list(ckpt.glob("custom_checkpoint_*")), "custom objects would be unpickled on resume"
