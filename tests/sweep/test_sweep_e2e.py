"""Issue 5 item 8, end to end on the tiny teacher: python launch.py -m ... as a user runs it.

One 4-job guidance-pair sweep with a job that fails at run time (w = 1e38 overflows the guided teacher output, so
the loss is non-finite and trainer.max_consecutive_nonfinite=1 stops it), then reruns of the same command:
completed jobs are skipped, an interrupted one resumes, stop_on_failure stops, a wrong objective name is
explained; and a run dir re-runs from its record with the identical loss sequence.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lcm_exp.sweep.identity import derive_seed, identity_overrides

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TINY = ["trainer.max_train_steps=3", "trainer.batch_size=2", "trainer.log_every_n_steps=1",
        "trainer.checkpointing_steps=2", "validation.at_end=false", "export.enabled=false",
        "trainer.max_consecutive_nonfinite=1"]  # fmt: skip
PAIRS = "hydra.sweeper.guidance_pairs=[[2,3],[1e38,1e38],[2,6],[5,6]]"  # valid, but fails at its first step
FAILED = "guidance.w_min=1e+38,guidance.w_max=1e+38"
COMPLETED = [f"guidance.w_min={a},guidance.w_max={b}" for a, b in [(2, 3), (2, 6), (5, 6)]]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}


def _run(*args: str) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=1200)
    out.text = out.stdout + out.stderr
    return out


def _sweep(sweep_dir: Path, cache_dir: str, *extra: str) -> subprocess.CompletedProcess:
    return _run("launch.py", "-m", "experiment=tiny", "sweep=guidance_range", "sweep.name=e2e", PAIRS, *TINY,
                f"hydra.sweep.dir={sweep_dir}", f"paths.cache_dir={cache_dir}", *extra)  # fmt: skip


def _record(job: Path) -> dict:
    return json.loads((job / "run.json").read_text())


def _losses(job: Path) -> list[tuple[int, float]]:
    rows = [json.loads(ln) for ln in (job / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows]


@pytest.fixture(scope="module")
def first(tmp_path_factory, cache_dir):
    sweep_dir = tmp_path_factory.mktemp("sweeps") / "e2e"
    return sweep_dir, _sweep(sweep_dir, cache_dir)


def test_four_jobs_one_failed_summary_and_plots(first):
    sweep_dir, out = first
    assert out.returncode == 1, out.text[-3000:]
    assert f"1 of 4 jobs failed ({FAILED})" in out.text
    with open(sweep_dir / "summary.csv") as fh:
        rows = {r["job"]: r for r in csv.DictReader(fh)}
    assert len(rows) == 4
    assert [rows[j]["status"] for j in COMPLETED] == ["completed"] * 3 and rows[FAILED]["status"] == "failed"
    assert all(float(rows[j]["objective"]) == float(rows[j]["final_loss"]) > 0 for j in COMPLETED)
    assert [int(rows[j]["steps"]) for j in COMPLETED] == [3, 3, 3]
    for name in ("summary.md", "heatmap_guidance.png", "loss_curves.png"):
        assert (sweep_dir / name).stat().st_size > 0

    failed = sweep_dir / FAILED
    record = _record(failed)
    assert record["status"] == "failed" and "non-finite steps in a row" in record["error"]["message"]
    assert "Traceback" in record["error"]["traceback"] and "NonFiniteLoss" in record["error"]["traceback"]
    log = (failed / "launch.log").read_text()
    assert "job failed" in log and "Traceback" in log and "non-finite steps in a row" in log


def test_job_seeds_derive_from_the_sweep_seed_and_overrides(first):
    sweep_dir, _ = first
    seeds = []
    for job in COMPLETED:
        record = _record(sweep_dir / job)
        assert record["seed"] == derive_seed(0, identity_overrides(record["overrides"]))
        assert record["config"]["seed"] == record["seed"] and record["config"]["sweep"]["base_seed"] == 0
        seeds.append(record["seed"])
    assert len(set(seeds)) == 3


def test_no_job_was_launched_with_w_min_above_w_max(first):
    sweep_dir, _ = first
    jobs = [p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()]
    assert len(jobs) == 4
    for job in jobs:
        guidance = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())["guidance"]
        assert guidance["w_min"] <= guidance["w_max"]
    # a grid over both keys: the inverted corners are announced and never reach the launcher
    out = _run("launch.py", "-m", "experiment=tiny", "guidance.w_min=1,5,9", "guidance.w_max=3,9",
               "hydra.sweeper.dry_run=true")
    assert out.returncode == 0, out.text[-3000:]
    launched = [ln.split(": ", 1)[1].split() for ln in out.stdout.splitlines() if "  #" in ln]
    pairs = [tuple(float(o.split("=")[1]) for o in job if o.startswith("guidance.")) for job in launched]
    assert pairs == [(1, 3), (1, 9), (5, 9), (9, 9)]
    assert "not launched (w_min > w_max): guidance.w_min=9 guidance.w_max=3" in out.stdout


def test_rerun_skips_the_completed_jobs(first, cache_dir):
    sweep_dir, _ = first
    before = {j: (_record(sweep_dir / j), _losses(sweep_dir / j)) for j in COMPLETED}
    out = _sweep(sweep_dir, cache_dir)
    assert out.returncode == 1 and f"1 of 4 jobs failed ({FAILED})" in out.text
    assert out.text.count("completed earlier (force=true redoes it)") == 3
    assert "lcm_exp.train.loop" not in out.text  # nothing trained
    for job, (record, losses) in before.items():
        assert _record(sweep_dir / job) == record and _losses(sweep_dir / job) == losses


def test_stop_on_failure_launches_nothing_after_the_failed_job(first, cache_dir):
    sweep_dir, _ = first
    out = _sweep(sweep_dir, cache_dir, "hydra.sweeper.stop_on_failure=true")
    assert out.returncode == 1
    assert "stopping at the first failure (hydra.sweeper.stop_on_failure=true): 2 jobs not launched" in out.text
    assert "1 of 2 jobs failed" in out.text


def test_wrong_objective_name_lists_the_available_metrics(first, cache_dir):
    sweep_dir, _ = first
    out = _sweep(sweep_dir, cache_dir, "sweep.objective=fidelity")
    assert re.search(r"sweep.objective='fidelity' is not a metric of this run; available: [a-z_, ]*final_loss, "
                     r"[a-z_, ]*tail_loss", out.text)  # fmt: skip
    assert all(_record(sweep_dir / j)["status"] == "completed" for j in COMPLETED)  # training results stay


def test_interrupted_job_resumes_from_its_last_checkpoint(first, cache_dir):
    sweep_dir, _ = first
    job = sweep_dir / COMPLETED[1]
    losses = _losses(job)
    record = _record(job)
    record["status"] = "running"  # as if killed after the step-2 checkpoint
    (job / "run.json").write_text(json.dumps(record))
    shutil.rmtree(job / "checkpoints" / "checkpoint-3")
    out = _sweep(sweep_dir, cache_dir)
    assert "resuming it" in out.text and "resumed from" in (job / "launch.log").read_text()
    after = _record(job)
    assert after["status"] == "completed" and after["attempts"] == 2
    assert _losses(job) == losses  # steps 1-2 kept, step 3 redone identically


def test_reproduce_a_run_dir_gives_the_same_losses_and_flags_the_commit(first, tmp_path):
    sweep_dir, _ = first
    run_dir = tmp_path / "recorded"
    shutil.copytree(sweep_dir / COMPLETED[0], run_dir)
    record = _record(run_dir)
    record["git"]["commit"] = "0" * 40  # as if recorded at another commit
    (run_dir / "run.json").write_text(json.dumps(record))
    out = _run("-m", "lcm_exp.reproduce", str(run_dir), "--out", str(tmp_path / "again"))
    assert out.returncode == 0, out.text[-3000:]
    assert f"git commit differs: recorded {'0' * 40}" in out.text
    assert "loss sequence identical to the original (3 logged steps)" in out.text
    assert _losses(tmp_path / "again") == _losses(run_dir)
    again = _record(tmp_path / "again")
    assert again["seed"] == record["seed"] and again["status"] == "completed"
