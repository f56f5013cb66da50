"""Every sweep preset and launcher preset composes; the dry run shows which jobs a preset launches."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from tests.config.compose import CONF, compose_config

PRESETS = sorted(p.stem for p in (CONF / "sweep").glob("*.yaml"))
HAS_OPTUNA = importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None


@pytest.mark.parametrize("preset", PRESETS)
def test_sweep_preset_composes(preset):
    if preset == "optuna" and not HAS_OPTUNA:
        pytest.skip("optional extra: pip install -e '.[optuna]'")
    cfg = compose_config([f"sweep={preset}"], return_hydra_config=True)
    if preset == "default":
        assert cfg.sweep.name is None and cfg.hydra.sweeper._target_.endswith("LcmSweeper")
    else:
        assert cfg.sweep.name == preset
        assert OmegaConf.to_container(cfg.hydra.sweep)["dir"] == "${paths.log_dir}/sweeps/${sweep.name}"


def test_pair_presets_pair_guidance():
    cfg = compose_config(["sweep=guidance_x_huber_c"], return_hydra_config=True)
    assert [list(p) for p in cfg.hydra.sweeper.guidance_pairs] == [[2, 6], [3, 9], [5, 15]]
    assert cfg.hydra.sweeper.params["loss.huber_c"] == "0.0001,0.001,0.01,0.1" and cfg.loss.name == "huber"


@pytest.mark.parametrize(("launcher", "target"), [("slurm", "SlurmLauncher"), ("slurm_local", "LocalLauncher")])
def test_launcher_presets_compose(launcher, target):
    cfg = compose_config(["sweep=guidance_range", f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(target) and cfg.hydra.launcher.timeout_min == 240


def test_dry_run_of_the_huber_preset_lists_l2_and_the_log_range():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "launch.py", "-m", "experiment=tiny", "sweep=huber_c",
                          "hydra.sweeper.dry_run=true"],
                         cwd=CONF.parent, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    jobs = [ln.split("  #", 1)[1].split(":", 1)[0] for ln in out.stdout.splitlines() if "  #" in ln]
    c = ["0.0001", "0.0003", "0.001", "0.003", "0.01", "0.03", "0.1"]
    assert jobs == ["0 loss=l2", *[f"{i + 1} loss=huber,loss.huber_c={v}" for i, v in enumerate(c)]]


def test_dry_run_of_the_objectives_preset_runs_each_objective_on_the_same_three_seeds():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "launch.py", "-m", "sweep=objectives", "hydra.sweeper.dry_run=true"],
                         cwd=CONF.parent, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    jobs = {ln.split("  #", 1)[1].split(" ", 1)[1].split(":", 1)[0] for ln in out.stdout.splitlines() if "  #" in ln}
    variants = ["objective=lcd,objective.num_ddim_timesteps=10", "objective=tcd,objective.num_ddim_timesteps=10",
                "objective=pcm,objective.phases=2,objective.num_ddim_timesteps=10",
                "objective=pcm,objective.phases=4,objective.num_ddim_timesteps=8"]  # fmt: skip
    assert jobs == {f"seed={seed},{v}" for seed in (0, 1, 2) for v in variants}
    cfg = compose_config(["experiment=toy", "sweep=objectives"], return_hydra_config=True)
    assert cfg.sweep.derive_seeds is False and cfg.sweep.objective == "eval_objective_best"
    assert cfg.evaluation.every_n_steps > 0 and cfg.trainer.max_train_steps == 1000
