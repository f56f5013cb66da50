"""Issue 14 item 8: a stop signal before the first step, a full disk during a checkpoint save, a corrupt RNG file
on resume, and SIGTERM under launcher=accelerate all end in a clear record and a resumable run dir."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file

from lcm_exp.launchers import accelerate_child
from lcm_exp.runlog.lock import RunDirBusy, RunLock
from lcm_exp.train.checkpoint import MARKER, complete_checkpoints, load_checkpoint, save_checkpoint
from tests.train.runner import FAST, ROOT, launch, metrics, record

QUICK = ["validation.at_end=false", "export.enabled=false"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def _start(run_dir, cache_dir, *args, fault=None):
    entry = ["tests/train/faults.py", fault] if fault else ["launch.py"]
    cmd = [sys.executable, *entry, "experiment=tiny", f"hydra.run.dir={run_dir}", f"paths.cache_dir={cache_dir}",
           *FAST, *QUICK, *args]  # fmt: skip
    return subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(predicate, proc, timeout=300):
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"ended early ({proc.returncode}):\n{proc.stdout.read()[-4000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out")
        time.sleep(0.05)


def _running(run_dir: Path) -> bool:
    return (run_dir / "run.json").is_file() and record(run_dir)["status"] == "running"


def test_sigterm_before_the_first_step_ends_preempted(tmp_path, cache_dir):
    proc = _start(tmp_path, cache_dir, "trainer.max_train_steps=2", fault="slow_teacher")
    _wait_for(lambda: _running(tmp_path), proc)  # recorded, teacher still loading
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, proc.stdout.read()[-3000:]
    rec = record(tmp_path)
    assert rec["status"] == "preempted" and "SIGTERM" in rec["error"]["message"]
    assert not (tmp_path / "metrics.jsonl").exists()
    RunLock(tmp_path).take_existing()  # released: the same command can run again


def test_a_full_disk_during_a_save_fails_the_run_with_the_reason_and_keeps_the_last_checkpoint(tmp_path, cache_dir):
    args = ["trainer.max_train_steps=3", "trainer.checkpointing_steps=1"]
    proc = _start(tmp_path, cache_dir, *args, fault="full_disk")
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode != 0
    rec = record(tmp_path)
    assert rec["status"] == "failed", out[-3000:]
    message = rec["error"]["message"]
    assert "No space left on device" in message and "checkpoint-2 could not be saved" in message
    assert "the last good checkpoint is checkpoint-1" in message
    root = tmp_path / "checkpoints"
    assert [c.name for c in complete_checkpoints(root)] == ["checkpoint-1"]
    assert not list(root.glob(".tmp-*"))  # the partial save is gone: its space went back to the run
    assert load_file(root / "checkpoint-1" / "ema.safetensors")  # intact
    launch(tmp_path, cache_dir, *QUICK, *args)  # space again: the same command resumes from checkpoint-1
    rec = record(tmp_path)
    assert rec["status"] == "completed" and rec["metrics"]["steps"] == 3
    assert [r["step"] for r in metrics(tmp_path)] == [1, 2, 3]


class _Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)


def test_a_corrupt_rng_file_on_resume_warns_naming_it(tmp_path, caplog):
    accelerator = Accelerator(cpu=True)
    model = accelerator.prepare(_Linear())
    ckpt = save_checkpoint(accelerator, tmp_path, 1, {"global_step": 1}, {}, None)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        load_checkpoint(accelerator, ckpt, {})
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    (ckpt / "random_states_0.pkl").write_bytes(b"garbage, not a pickle")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert load_checkpoint(accelerator, ckpt, {})["global_step"] == 1  # the run goes on
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and str(ckpt / "random_states_0.pkl") in warning[0]
    assert "continues with the RNG state of a fresh start" in warning[0] and "not bitwise" in warning[0]
    del model


FAKE_LAUNCHER = textwrap.dedent("""
    # accelerate launch's simple launcher: on SIGTERM it terminates its worker, kills it if it is still there a
    # moment later (accelerate waits 5 s; the fake worker's "checkpoint" takes longer than this one's grace), and
    # exits 143
    import signal, subprocess, sys, time
    worker = subprocess.Popen([sys.executable, "-c", sys.argv[1], "lcm_exp.launchers.worker", sys.argv[2]])
    def stop(signum, frame):
        worker.terminate()
        time.sleep(0.2)
        worker.kill()
        sys.exit(143)
    signal.signal(signal.SIGTERM, stop)
    while worker.poll() is None:
        time.sleep(0.05)
    sys.exit(worker.returncode)
""")
FAKE_WORKER = textwrap.dedent("""
    # a worker: on SIGTERM it checkpoints (here: a short sleep) and reports 'preempted', exit 0
    import json, pathlib, signal, sys, time
    run_dir = pathlib.Path(sys.argv[2])
    def stop(signum, frame):
        time.sleep(0.5)
        (run_dir / "result.json").write_text(json.dumps({"status": "preempted", "steps": 3}))
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    (run_dir / "ready").write_text("")
    time.sleep(60)
""")


def test_sigterm_reaches_the_workers_not_the_launcher(tmp_path, monkeypatch):
    """The parent hands the signal to the workers; the launcher is not signalled and exits 0 after them."""
    cmd = [sys.executable, "-c", FAKE_LAUNCHER, FAKE_WORKER, str(tmp_path)]
    monkeypatch.setattr(accelerate_child, "accelerate_command", lambda *a: (cmd, {}))

    def signal_parent():
        while not (tmp_path / "ready").exists():
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=signal_parent, daemon=True).start()
    launcher = SimpleNamespace()
    result, _ = accelerate_child.launch_workers(launcher, "no", tmp_path)
    assert result == {"status": "preempted", "steps": 3}


@pytest.mark.slow  # real `accelerate launch` workers (about 40 s)
def test_sigterm_with_launcher_accelerate_ends_preempted_exit_0_and_the_parent_holds_the_lock(tmp_path, cache_dir):
    secret_shard = tmp_path / "gated" / "shard.tar?token=lit3ral-secret"  # a literal secret: *** in config.yaml
    secret_shard.parent.mkdir()
    from lcm_exp.data.default_shards import ensure_synthetic_shards

    first = sorted(Path(ensure_synthetic_shards(cache_dir, 512).split("{")[0]).parent.glob("*.tar"))[0]
    secret_shard.write_bytes(first.read_bytes())
    args = ["launcher=accelerate", "trainer.max_train_steps=400", "trainer.checkpointing_steps=1000",
            f"data.shards='pipe:cat {secret_shard}'"]  # fmt: skip
    proc = _start(tmp_path, cache_dir, *args)
    _wait_for(lambda: (tmp_path / "metrics.jsonl").exists() and len(metrics(tmp_path)) >= 2, proc)
    assert "lit3ral-secret" not in (tmp_path / "config.yaml").read_text()  # the workers got it another way
    assert json.loads((tmp_path / ".run.lock").read_text())["pid"] == proc.pid  # the parent holds the dir
    with pytest.raises(RunDirBusy):
        RunLock(tmp_path).take_existing()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0, proc.stdout.read()[-3000:]
    rec = record(tmp_path)
    assert rec["status"] == "preempted" and 2 <= rec["metrics"]["steps"] < 400
    assert [c.name for c in complete_checkpoints(tmp_path / "checkpoints")] == [f"checkpoint-{rec['metrics']['steps']}"]
    assert (tmp_path / "checkpoints" / f"checkpoint-{rec['metrics']['steps']}" / MARKER).is_file()
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != "shard.tar?token=lit3ral-secret":
            assert b"lit3ral-secret" not in path.read_bytes(), path
