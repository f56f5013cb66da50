"""Every validation rule rejects its bad value with a message naming the key (issue 2 item 4, issue 9 item 5)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest
from omegaconf import OmegaConf

from lcm_exp.config.errors import ConfigError
from lcm_exp.config.validate import validate_against_teacher, validate_config
from tests.config.compose import CONF, compose_config

BAD_VALUES = [
    (["guidance.w_min=9", "guidance.w_max=3"], "guidance.w_max"),
    (["guidance.w_min=-1"], "guidance.w_min"),
    (["loss=huber", "loss.huber_c=0"], "loss.huber_c"),
    (["loss=pseudo_huber", "loss.scale=-1"], "loss.scale"),
    (["adapter=lora", "adapter.rank=0"], "adapter.rank"),
    (["adapter=lora", "adapter.alpha=0"], "adapter.alpha"),
    (["adapter=lora", "adapter.dropout=1.5"], "adapter.dropout"),
    (["adapter=lora", "adapter.target=teacher"], "adapter.target"),
    (["adapter=lora", "adapter.export_weights=ema"], "adapter.export_weights"),
    (["adapter=full", "adapter.ema_decay=1.0"], "adapter.ema_decay"),
    (["adapter=full", "adapter.cond_proj_init=ones"], "adapter.cond_proj_init"),
    (["trainer.batch_size=0"], "trainer.batch_size"),
    (["trainer.max_train_steps=0"], "trainer.max_train_steps"),
    (["trainer.gradient_accumulation_steps=0"], "trainer.gradient_accumulation_steps"),
    (["trainer.mixed_precision=fp8"], "trainer.mixed_precision"),
    (["trainer.checkpoints_total_limit=0"], "trainer.checkpoints_total_limit"),
    (["trainer.nonfinite=ignore"], "trainer.nonfinite"),
    (["model.resolution=30"], "model.resolution"),
    (["model.vae_dtype=fp64"], "model.vae_dtype"),
    (["model.uncond=none"], "model.uncond"),
    (["objective.num_ddim_timesteps=0"], "objective.num_ddim_timesteps"),
    (["objective.sigma_data=0"], "objective.sigma_data"),
    (["optim.lr=0"], "optim.lr"),
    (["optim.lr_scheduler=exponential"], "optim.lr_scheduler"),
    (["optim.betas=[0.9]"], "optim.betas"),
    (["data.crop=left"], "data.crop"),
    (["data.num_workers=-1"], "data.num_workers"),
    (["data.max_skip_fraction=0"], "data.max_skip_fraction"),
    (["data.filters.on_missing=ignore"], "data.filters.on_missing"),
    (["data=webdataset", "data.shards=[]"], "data.shards"),
    (["logger.name=mlflow"], "logger.name"),
    (["validation.num_inference_steps=[0]"], "validation.num_inference_steps"),
    (["launcher=accelerate", "launcher.num_processes=0"], "launcher.num_processes"),
]


@pytest.mark.parametrize(("overrides", "key"), BAD_VALUES, ids=[k for _, k in BAD_VALUES])
def test_bad_value_is_rejected_naming_its_key(overrides, key):
    with pytest.raises(ConfigError) as err:
        validate_config(compose_config(overrides))
    assert key in str(err.value)


def test_all_problems_are_reported_together():
    with pytest.raises(ConfigError) as err:
        validate_config(compose_config(["trainer.batch_size=0", "optim.lr=0", "data.crop=left"]))
    assert len(err.value.problems) == 3


def test_unknown_group_option_lists_the_valid_ones():
    with pytest.raises(Exception) as err:
        compose_config(["adapter=dora"])
    assert "full" in str(err.value) and "lora" in str(err.value)


def _teacher_cfg(cache_dir, *overrides):
    cfg = compose_config([f"paths.cache_dir={cache_dir}", "paths.log_dir=/tmp", "paths.output_dir=/tmp", *overrides])
    return OmegaConf.to_object(cfg)


def test_num_ddim_timesteps_beyond_the_teachers_schedule(cache_dir):
    with pytest.raises(ConfigError, match=r"objective.num_ddim_timesteps=2000: must be in \[1, 1000\]"):
        validate_against_teacher(_teacher_cfg(cache_dir, "objective.num_ddim_timesteps=2000"))


def test_resolution_not_divisible_by_the_vae_factor(cache_dir):
    with pytest.raises(ConfigError, match="model.resolution=36: must be divisible by the VAE factor 8"):
        validate_against_teacher(_teacher_cfg(cache_dir, "model.resolution=36"))


def test_teacher_folder_missing_a_component(cache_dir, tmp_path):
    good = _teacher_cfg(cache_dir).model.teacher
    broken = tmp_path / "teacher"
    shutil.copytree(good, broken)
    shutil.rmtree(broken / "vae")
    with pytest.raises(ConfigError, match="model.teacher=.*vae"):
        validate_against_teacher(_teacher_cfg(cache_dir, f"model.teacher={broken}"))


def test_teacher_path_that_does_not_exist_offline(cache_dir, tmp_path):
    with pytest.raises(ConfigError, match="model.teacher="):
        validate_against_teacher(_teacher_cfg(cache_dir, f"model.teacher={tmp_path}/nope"))


@pytest.mark.parametrize("override", ["trainer.batch_size=0", "model.teacher=/no/such/teacher", "optim=sgd"])
def test_launcher_exits_nonzero_in_seconds(override, tmp_path):
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "launch.py", "experiment=tiny", override, f"hydra.run.dir={tmp_path}"], cwd=CONF.parent,
                         capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert out.returncode != 0
    assert override.split("=")[0] in out.stderr
    assert time.perf_counter() - start < 20


@pytest.mark.parametrize(
    "text, message",
    [
        ("distributed_type: FSDP\nfsdp_config: {fsdp_sharding_strategy: FULL_SHARD}\n", "distributed_type FSDP is not supported"),
        ("distributed_type: DEEPSPEED\n", "distributed_type DEEPSPEED is not supported"),
        ("distributed_type: [unclosed\n", "not a YAML accelerate config"),
        (None, "no such file"),
    ],
)
def test_an_accelerate_config_the_loop_cannot_run_is_refused_naming_the_key(tmp_path, text, message):
    """FSDP and DeepSpeed shard the student's weights, which the LoRA teacher pass and the EMA read directly: refused
    at validation (the shipped FSDP plan file too), not a crash on the GPUs; a DDP config passes."""
    path = tmp_path / "accelerate.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=f"launcher.config_file={path}: {message}"):
        validate_config(compose_config(["launcher=accelerate", f"launcher.config_file={path}"]))
    path.write_text("distributed_type: MULTI_GPU\nnum_processes: 8\n")
    validate_config(compose_config(["launcher=accelerate", f"launcher.config_file={path}"]))
    shipped = CONF.parent / "docs" / "accelerate" / "sd3_fsdp.yaml"
    with pytest.raises(ConfigError, match="FSDP is not supported"):
        validate_config(compose_config(["launcher=accelerate", f"launcher.config_file={shipped}"]))
