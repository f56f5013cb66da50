"""Every option of every group and every experiment preset composes and passes validation."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time

import pytest
from omegaconf import OmegaConf

from lcm_exp.config.errors import ConfigError
from lcm_exp.config.validate import validate_config
from tests.config.compose import CONF, compose_config

ROOT = CONF.parent


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


GROUPS = ["model", "adapter", "loss", "data", "optim", "logger", "launcher"]
CASES = [f"{g}={o}" for g in GROUPS for o in _options(g)]
# options that need a value only the user can give
REQUIRED = {"data=webdataset": ["data.shards=/x/s-000.tar"], "data=imagefolder": ["data.path={tmp}"],
            "data=hf_dataset": ["data.path={tmp}"]}


@pytest.mark.parametrize("override", CASES)
def test_group_option_composes_and_validates(override, tmp_path):
    extra = [v.format(tmp=tmp_path) for v in REQUIRED.get(override, [])]
    cfg = compose_config([override, *extra])
    if override == "data=hf_dataset" and importlib.util.find_spec("datasets") is None:
        with pytest.raises(ConfigError, match="data.source=hf_dataset needs the `datasets` package"):
            validate_config(cfg)
        return
    validate_config(cfg)


@pytest.mark.parametrize("experiment", _options("experiment"))
def test_experiment_preset_composes(experiment, monkeypatch):
    cfg = compose_config([f"experiment={experiment}"])
    monkeypatch.setattr("lcm_exp.config.validate._has_cuda", lambda cfg: True)  # the real recipes need a GPU (fp16)
    validate_config(cfg)


@pytest.mark.parametrize("debug", _options("debug"))
def test_debug_preset_composes(debug):
    validate_config(compose_config([f"debug={debug}"]))


@pytest.mark.parametrize(
    ("model", "adapter", "w_min", "lr"),
    [("sd15", "full", 5.0, 1e-6), ("sd15", "lora", 5.0, 1e-4), ("sdxl", "full", 3.0, 1e-6), ("sdxl", "lora", 3.0, 1e-4),
     ("tiny_sdxl", "lora", 3.0, 1e-4)],
)
def test_family_x_adapter_spec_sets_reference_defaults(model, adapter, w_min, lr):
    cfg = compose_config([f"model={model}", f"adapter={adapter}", "~experiment"])
    assert cfg.guidance.w_min == w_min and cfg.guidance.w_max == 15.0
    assert cfg.optim.lr == lr
    assert cfg.model.family == model.replace("tiny_", "")


def test_sdxl_recipe_reproduces_the_diffusers_readme():
    cfg = compose_config(["experiment=sdxl_lora"])
    assert cfg.model.family == "sdxl" and cfg.adapter.name == "lora" and cfg.adapter.rank == 64
    assert cfg.model.vae == "madebyollin/sdxl-vae-fp16-fix" and cfg.model.fixed_crop_and_size
    assert (cfg.optim.name, cfg.optim.lr, cfg.trainer.batch_size, cfg.trainer.mixed_precision) == ("adamw8bit", 1e-4, 12, "fp16")
    assert cfg.loss.name == "huber" and cfg.guidance.w_min == 3.0


def test_cli_overrides_reach_the_config():
    cfg = compose_config(["model=sdxl", "adapter=lora", "loss=huber", "loss.huber_c=0.01", "guidance.w_min=3",
                          "guidance.w_max=9"])
    assert (cfg.model.family, cfg.adapter.name, cfg.loss.huber_c, cfg.guidance.w_min, cfg.guidance.w_max) == (
        "sdxl", "lora", 0.01, 3.0, 9.0)


def test_typo_in_key_fails_at_composition():
    with pytest.raises(Exception, match="w_mni"):
        compose_config(["guidance.w_mni=3"])


def test_wrong_type_fails_at_composition():
    with pytest.raises(Exception, match="trainer.batch_size"):
        compose_config(["trainer.batch_size=eight"])


def test_lora_keys_do_not_exist_on_full_adapter():
    with pytest.raises(Exception, match="rank"):
        compose_config(["adapter=full", "adapter.rank=4"])


def test_cfg_job_shows_overrides_fast():
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "launch.py", "experiment=tiny", "model=sdxl", "adapter=lora", "loss=huber", "loss.huber_c=0.01",
         "guidance.w_min=3", "guidance.w_max=9", "--cfg", "job"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    job = OmegaConf.create(out.stdout)
    assert job.guidance.w_min == 3 and job.guidance.w_max == 9 and job.loss.huber_c == 0.01
    assert job.adapter.name == "lora" and job.model.family == "sdxl"
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("args", [["--help"], ["--info", "defaults-tree"]])
def test_help_and_defaults_tree(args):
    out = subprocess.run([sys.executable, "launch.py", "experiment=tiny", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "model" in out.stdout and "adapter" in out.stdout


def test_inverted_guidance_range_fails_fast_naming_both_keys(tmp_path):
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "launch.py", "experiment=tiny", "guidance.w_min=9", "guidance.w_max=3",
                          f"hydra.run.dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 2
    assert "guidance.w_min" in out.stderr and "guidance.w_max" in out.stderr
    assert time.perf_counter() - start < 10
    assert not (tmp_path / "run.json").exists()  # refused before the run started
