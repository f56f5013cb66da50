"""Issue 14 item 3: a live run holds its run dir; a second launch is refused naming it; a killed run's lock is
taken over. Two real processes each time (the kernel's flock is per open file, so one process cannot show it)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from lcm_exp.runlog.lock import LOCK_FILE, RunDirBusy, RunLock
from tests.runlog.test_refused_launch import QUICK, snapshot
from tests.train.runner import FAST, ROOT, launch, record

HOLD = "import sys, time; from lcm_exp.runlog.lock import RunLock; RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(120)"  # noqa: E501


def _holder(run_dir):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_live_holder_refuses_others_and_a_killed_ones_lock_is_taken_over(tmp_path):
    holder = _holder(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(RunDirBusy) as refused:
        RunLock(tmp_path).take_existing()
    message = str(refused.value)
    assert f"pid {holder.pid} on {socket.gethostname()}" in message and "\n" not in message
    assert snapshot(tmp_path) == before  # refusing wrote nothing, not even to the lock file
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    lock = RunLock(tmp_path)
    assert lock.take_existing()["pid"] == holder.pid  # the dead holder, for the takeover message
    lock.acquire()
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    lock.release()


def test_the_heartbeat_is_refreshed(tmp_path):
    lock = RunLock(tmp_path, heartbeat_s=0.05)
    lock.acquire()
    first = json.loads((tmp_path / LOCK_FILE).read_text())["heartbeat_unix"]
    time.sleep(0.3)
    assert json.loads((tmp_path / LOCK_FILE).read_text())["heartbeat_unix"] > first
    lock.release()


def _start(run_dir, cache_dir, *fault):
    entry = ["tests/train/faults.py", *fault] if fault else ["launch.py"]
    cmd = [sys.executable, *entry, "experiment=tiny", f"hydra.run.dir={run_dir}", f"paths.cache_dir={cache_dir}",
           *FAST, *QUICK, "trainer.max_train_steps=2"]  # fmt: skip
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip


def _wait_for(predicate, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow  # three launches (about 20 s); the two-process lock test above is the fast one
def test_a_second_launch_into_a_live_run_dir_is_refused_and_a_killed_run_is_taken_over(tmp_path, cache_dir):
    live = _start(tmp_path, cache_dir, "slow_teacher")  # holds the dir while its teacher "loads" for a minute
    _wait_for(lambda: (tmp_path / "run.json").is_file() and record(tmp_path)["status"] == "running", live)
    before = snapshot(tmp_path)
    second = launch(tmp_path, cache_dir, *QUICK, "trainer.max_train_steps=2", check=False)
    assert second.returncode == 2
    refusal = second.stderr.strip().splitlines()
    assert len(refusal) == 1 and f"in use by a live run (pid {live.pid} on " in refusal[0], second.stderr
    assert snapshot(tmp_path) == before  # the live run's dir is untouched by the refused launch
    live.send_signal(signal.SIGKILL)  # a crash: nothing marks the run, the kernel drops the lock
    live.wait()
    assert record(tmp_path)["status"] == "running"
    third = launch(tmp_path, cache_dir, *QUICK, "trainer.max_train_steps=2")
    assert "taking over from a run that died without ending" in third.stdout
    assert f"pid {live.pid}" in third.stdout
    assert record(tmp_path)["status"] == "completed" and record(tmp_path)["attempts"] == 2
