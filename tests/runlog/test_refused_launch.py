"""Issue 14 item 2: a refused launch changes nothing on disk (file list, contents, modification times).

Hydra used to write ``.hydra/`` and open the job log before the task could refuse the dir; now Hydra writes
neither (hydra.output_subdir=null, a console-only job_logging) and the task writes both once it owns the dir.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lcm_exp.task import discard_if_new
from tests.config.compose import compose_config
from tests.train.runner import ROOT, launch, record

QUICK = ["validation.at_end=false", "export.enabled=false"]


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry under ``folder``: (size, mtime_ns, bytes) for files, mtime_ns for dirs."""
    out = {}
    for path in sorted(folder.rglob("*")):
        stat = path.stat()
        out[str(path.relative_to(folder))] = (stat.st_mtime_ns,) if path.is_dir() else (
            stat.st_size, stat.st_mtime_ns, path.read_bytes())  # fmt: skip
    return out


def test_hydra_writes_nothing_into_the_run_dir_itself():
    hydra = compose_config(return_hydra_config=True).hydra
    assert hydra.output_subdir is None
    assert all("filename" not in handler for handler in hydra.job_logging.handlers.values())


def test_a_refused_relaunch_leaves_a_finished_run_dir_byte_identical(tmp_path, cache_dir):
    launch(tmp_path, cache_dir, *QUICK, "trainer.max_train_steps=1")
    before = snapshot(tmp_path)
    assert {".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", "launch.log"} <= set(before)
    time.sleep(0.05)  # a rewrite would show in the mtimes
    out = launch(tmp_path, cache_dir, *QUICK, "trainer.max_train_steps=2", "seed=5", check=False)
    assert out.returncode == 2 and "already holds a completed run" in out.stderr
    assert snapshot(tmp_path) == before
    assert "seed=5" not in (tmp_path / ".hydra" / "overrides.yaml").read_text()


def test_a_refused_launch_leaves_no_run_dir_behind(tmp_path):
    out = subprocess.run([sys.executable, "launch.py", "experiment=tiny", f"paths.log_dir={tmp_path}",
                          "trainer.max_train_steps=0"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)  # fmt: skip
    assert out.returncode == 2 and "trainer.max_train_steps" in out.stderr
    assert list(tmp_path.rglob("*")) == [tmp_path / "runs"]  # Hydra's run dir was removed again, not its parent


def test_only_an_empty_dir_made_by_this_launch_is_removed(tmp_path):
    made_before = tmp_path / "mine"
    made_before.mkdir()
    discard_if_new(made_before, started=time.time() + 60)  # the user's own empty dir, made before the launch
    assert made_before.is_dir()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    discard_if_new(busy, started=time.time() - 60)
    assert busy.is_dir()
    discard_if_new(made_before, started=time.time() - 60)
    assert not made_before.exists()


@pytest.mark.slow  # a two-job named sweep and its rerun (about 40 s)
def test_a_rerun_of_a_finished_named_sweep_changes_nothing(tmp_path, cache_dir):
    sweep_dir = tmp_path / "sweep"
    command = [sys.executable, "launch.py", "-m", "experiment=tiny", "sweep=huber_c", "hydra.sweeper.variants=null",
               "loss.huber_c=0.001,0.01", f"hydra.sweep.dir={sweep_dir}", f"paths.cache_dir={cache_dir}",
               "trainer.max_train_steps=1", *QUICK]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    first = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    jobs = [p for p in sweep_dir.iterdir() if (p / "run.json").is_file()]
    assert len(jobs) == 2 and all(record(j)["status"] == "completed" for j in jobs)
    before = snapshot(sweep_dir)
    time.sleep(0.05)
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.count("completed earlier") == 2, again.stdout[-3000:]
    assert snapshot(sweep_dir) == before  # job dirs, summary, plots, multirun.yaml: all as they were
