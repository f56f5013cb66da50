"""Evaluation at the end of training (evaluation.at_end): through the real launcher, its numbers become run
metrics a sweep can rank by, and the default job is the toy world with it turned on."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from lcm_exp.config.errors import ConfigError
from lcm_exp.config.validate import validate_config
from lcm_exp.toy.shards import ensure_toy_shards
from tests.config.compose import CONF, compose_config

ROOT = CONF.parent
SMALL_EVAL = ["evaluation.num_samples=4", "evaluation.steps=[1,2]", "evaluation.reference_steps=3",
              "evaluation.batch_size=4"]  # fmt: skip


def test_toy_run_ends_with_the_evaluation_table_and_its_metrics(tiny_toy_teacher, cache_dir, tmp_path):
    shards = ensure_toy_shards(cache_dir, 32)
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "launch.py", "experiment=toy", f"model.teacher={tiny_toy_teacher}",
           f"data.shards='{shards}'", f"paths.cache_dir={cache_dir}", f"hydra.run.dir={run_dir}",
           "trainer.max_train_steps=2", "trainer.batch_size=2", "validation.at_end=false", *SMALL_EVAL]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]
    assert "teacher DDIM trailing + CFG (fair baseline)" in out.stdout  # the table is printed
    assert "eval:latent_rmse" not in out.stdout  # ... instead of its numbers one by one
    metrics = json.loads((run_dir / "run.json").read_text())["metrics"]
    one, two = metrics["eval:latent_rmse:student:1"], metrics["eval:latent_rmse:student:2"]
    assert metrics["eval_objective"] == pytest.approx((one + two) / 2)  # default objective latent_rmse:student:1,2
    assert metrics["eval:latent_rmse:ddim_trailing:2"] > 0 and "eval:attr_acc:undistilled:1" in metrics
    assert (run_dir / "eval" / "table.txt").read_text() in out.stdout


def test_the_default_job_is_the_toy_quickstart_with_evaluation():
    out = subprocess.run([sys.executable, "launch.py", "--cfg", "job"], cwd=ROOT, capture_output=True, text=True,
                         check=True)  # fmt: skip
    job = OmegaConf.create(out.stdout)
    assert job.name == "quickstart" and job.evaluation.at_end is True
    assert job.model.resolution == 32 and "toy_teacher" in OmegaConf.to_container(job.model)["teacher"]
    assert job.objective.num_ddim_timesteps == 10  # the toy preset's grid


@pytest.mark.parametrize(
    ("overrides", "message"),
    [(["evaluation.steps=[0]"], "evaluation.steps=[0]"),
     (["evaluation.objective=fid:nope:1"], "unknown method 'nope'"),
     (["evaluation.at_end=true", "export.enabled=false"], "needs export.enabled=true"),
     (["sweep.objective=eval_objective"], "set evaluation.at_end=true"),
     (["evaluation.at_end=true", "evaluation.objective=latent_rmse:student:3"], "steps [3] are not in steps"),
     (["evaluation.at_end=true", "evaluation.methods=[student]", "evaluation.objective=fd:undistilled:1"],
      "is not in methods")],
)
def test_bad_evaluation_settings_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate_config(compose_config(overrides))


def test_an_objective_the_evaluation_cannot_compute_fails_before_training(cache_dir, tmp_path):
    """attr_acc needs the toy classifier: on the tiny random teacher the run is refused before it starts."""
    out = subprocess.run(
        [sys.executable, "launch.py", "experiment=tiny", f"paths.cache_dir={cache_dir}", f"hydra.run.dir={tmp_path}",
         "evaluation.at_end=true", "evaluation.objective=attr_acc:student:1"],
        cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr[-3000:]
    assert "metric 'attr_acc' needs a toy-world teacher" in out.stderr
    assert not (tmp_path / "run.json").exists()  # refused before the run was recorded
