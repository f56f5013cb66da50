"""Issue 14 item 7: every error a user can cause ends in ONE line naming the key, exit code 2, in seconds, before any
weight loads. Each bad config runs through ``launch.py`` (experiment=tiny base) in a real subprocess, two at a time, so
exit code, time and output are what a user gets. A spy (weight_spy/sitecustomize.py) records every weight file opened.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.config.compose import CONF

ROOT = CONF.parent
SPY = Path(__file__).parent / "weight_spy"
CPU_LIMIT_S = 5.0  # what one refusal costs (user + system CPU of the launch): with two launches on 2 cores, its wall
# time on a quiet machine; wall time itself depends on whatever else runs, so it only guards against a hang
HANG_S = 60.0


@dataclass
class Case:
    key: str  # the key the one line must name
    overrides: list[str]
    env: dict | None = None


# {teacher}, {trunc}, {garbage}, {noweights}, {novae}, {empty_folder}, {bad_metadata}, {tmp} (and for the slow cases
# {lora_ckpt}, {full_ckpt}, {run_with_ckpt}) are filled in by the fixtures
CASES = {
    "batch_size": Case("trainer.batch_size", ["trainer.batch_size=0"]),
    "max_train_steps": Case("trainer.max_train_steps", ["trainer.max_train_steps=0"]),
    "accumulation": Case("trainer.gradient_accumulation_steps", ["trainer.gradient_accumulation_steps=0"]),
    "mixed_precision_unknown": Case("trainer.mixed_precision", ["trainer.mixed_precision=fp8"]),
    "fp16_on_cpu": Case("trainer.mixed_precision", ["trainer.mixed_precision=fp16"]),
    "checkpoints_limit": Case("trainer.checkpoints_total_limit", ["trainer.checkpoints_total_limit=0"]),
    "nonfinite": Case("trainer.nonfinite", ["trainer.nonfinite=ignore"]),
    "negative_seed": Case("seed", ["seed=-1"]),
    "huge_seed": Case("seed", ["seed=4294967296"]),
    "w_min_above_w_max": Case("guidance.w_min", ["guidance.w_min=9", "guidance.w_max=3"]),
    "negative_w": Case("guidance.w_min", ["guidance.w_min=-1"]),
    "huber_c": Case("loss.huber_c", ["loss.huber_c=0"]),
    "pseudo_huber_scale": Case("loss.scale", ["loss=pseudo_huber", "loss.scale=-1"]),
    "lora_rank": Case("adapter.rank", ["adapter=lora", "adapter.rank=0"]),
    "lora_dropout": Case("adapter.dropout", ["adapter=lora", "adapter.dropout=1.5"]),
    "lora_target": Case("adapter.target", ["adapter=lora", "adapter.target=teacher"]),
    "lora_export_ema": Case("adapter.export_weights", ["adapter=lora", "adapter.export_weights=ema"]),
    "ema_decay": Case("adapter.ema_decay", ["adapter.ema_decay=1.0"]),
    "cond_proj_init": Case("adapter.cond_proj_init", ["adapter.cond_proj_init=ones"]),
    "resolution": Case("model.resolution", ["model.resolution=30"]),
    "vae_dtype": Case("model.vae_dtype", ["model.vae_dtype=fp64"]),
    "uncond": Case("model.uncond", ["model.uncond=none"]),
    "attention_unknown": Case("model.attention", ["model.attention=flash"]),
    "xformers_missing": Case("model.attention", ["model.attention=xformers"], {"LCM_EXP_HIDE_PACKAGES": "xformers"}),
    "ddim_steps_zero": Case("objective.num_ddim_timesteps", ["objective.num_ddim_timesteps=0"]),
    "sigma_data": Case("objective.sigma_data", ["objective.sigma_data=0"]),
    "lr": Case("optim.lr", ["optim.lr=0"]),
    "lr_scheduler": Case("optim.lr_scheduler", ["optim.lr_scheduler=exponential"]),
    "betas": Case("optim.betas", ["optim.betas=[0.9]"]),
    "crop": Case("data.crop", ["data.crop=left"]),
    "num_workers": Case("data.num_workers", ["data.num_workers=-1"]),
    "skip_fraction": Case("data.max_skip_fraction", ["data.max_skip_fraction=0"]),
    "on_missing": Case("data.filters.on_missing", ["data.filters.on_missing=ignore"]),
    "stall_timeout": Case("data.stall_timeout_s", ["data.stall_timeout_s=0"]),
    "webdataset_without_shards": Case("data.shards", ["data=webdataset"]),
    "webdataset_empty_shards": Case("data.shards", ["data=webdataset", "data.shards=[]"]),
    "missing_shard_files": Case("data.shards", ["data=webdataset", 'data.shards="{tmp}/nope-{{000..003}}.tar"']),
    "imagefolder_without_path": Case("data.path", ["data=imagefolder"]),
    "imagefolder_missing": Case("data.path", ["data=imagefolder", "data.path={tmp}/no_such_folder"]),
    "imagefolder_without_images": Case("data.path", ["data=imagefolder", "data.path={empty_folder}"]),
    "imagefolder_bad_metadata": Case("data.path", ["data=imagefolder", "data.path={bad_metadata}"]),
    "hf_dataset_without_datasets": Case("data.source=hf_dataset", ["data=hf_dataset", "data.path=some/dataset"],
                                        {"LCM_EXP_HIDE_PACKAGES": "datasets"}),
    "logger": Case("logger.name", ["logger.name=mlflow"]),
    "validation_steps": Case("validation.num_inference_steps", ["validation.num_inference_steps=[0]"]),
    "validation_guidance_scale": Case("validation.guidance_scale", ["validation.guidance_scale=-1"]),
    "num_processes": Case("launcher.num_processes", ["launcher=accelerate", "launcher.num_processes=0"]),
    "sweep_direction": Case("sweep.direction", ["sweep.direction=up"]),
    "perf_solver_dtype": Case("perf.solver_dtype", ["perf.solver_dtype=fp16"]),
    "evaluation_steps": Case("evaluation.steps", ["evaluation.steps=[0]"]),
    "fp16_export_of_lora": Case("export.fp16_variant", ["adapter=lora", "export=fp16"]),
    # read from files, still before any weight loads
    "teacher_folder_missing": Case("model.teacher", ["model.teacher={tmp}/no_such_teacher"]),
    "teacher_not_on_hub_offline": Case("model.teacher", ["model.teacher=nobody/no-such-teacher"]),
    "teacher_weights_truncated": Case("model.teacher", ["model.teacher={trunc}"]),
    "teacher_weights_garbage": Case("model.teacher", ["model.teacher={garbage}"]),
    "teacher_without_weights": Case("model.teacher", ["model.teacher={noweights}"]),
    "teacher_without_vae": Case("model.teacher", ["model.teacher={novae}"]),
    "teacher_variant_missing": Case("model.teacher", ["model.variant=fp16"]),
    "vae_override_missing": Case("model.vae", ["model.vae={tmp}/no_such_vae"]),
    "ddim_steps_beyond_schedule": Case("objective.num_ddim_timesteps", ["objective.num_ddim_timesteps=2000"]),
    "resolution_vae_factor": Case("model.resolution", ["model.resolution=36"]),
    "lora_targets_match_nothing": Case("adapter.target_modules", ["adapter=lora", "adapter.target_modules=[to_qq]"]),
    "lora_targets_a_norm": Case("adapter.target_modules", ["adapter=lora", "adapter.target_modules=[norm1]"]),
    "resume_nowhere": Case("trainer.resume_from_checkpoint", ["trainer.resume_from_checkpoint={tmp}/no_such_ckpt"]),
    "sweep_negative_w_pair": Case("hydra.sweeper.guidance_pairs", ["-m", "hydra.sweeper.guidance_pairs=[[-1,3]]"]),
    "pcm_phases_not_dividing_n": Case("objective.phases", ["objective=pcm", "objective.num_ddim_timesteps=10"]),
    "tcd_gamma": Case("objective.gamma", ["objective=tcd", "objective.gamma=1.5"]),
}  # fmt: skip
# cases that need two real checkpoints (a LoRA and a full run of one step each): the slow set
SLOW_CASES = {
    "resume_a_run_dir": Case("trainer.resume_from_checkpoint", ["trainer.resume_from_checkpoint={run_with_ckpt}"]),
    "resume_lora_as_full": Case("trainer.resume_from_checkpoint", ["trainer.resume_from_checkpoint={lora_ckpt}"]),
    "resume_full_as_lora": Case("trainer.resume_from_checkpoint",
                                ["adapter=lora", "trainer.resume_from_checkpoint={full_ckpt}"]),
    "resume_other_rank": Case("trainer.resume_from_checkpoint",
                              ["adapter=lora", "adapter.rank=4", "trainer.resume_from_checkpoint={lora_ckpt}"]),
}  # fmt: skip
ALL_CASES = {**CASES, **SLOW_CASES}


def launch(args: list[str], env: dict) -> tuple[int, str, float, float]:
    """(exit code, stdout + stderr, wall seconds, CPU seconds of the child) of one launch.py run."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "launch.py", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()))
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own CPU time, whatever else runs on the machine
    reader.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, "".join(chunks), time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def child_env(extra: dict | None = None, spy: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "PYTHONPATH")}
    env.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(SPY), **(extra or {}))
    if spy is not None:
        env["LCM_EXP_WEIGHT_SPY"] = str(spy)
    return env


@pytest.fixture(scope="module")
def world(cache_dir, tmp_path_factory):
    """The tiny teacher and shards built, damaged copies of the teacher, an empty and a badly described image folder."""
    from lcm_exp.data.default_shards import ensure_synthetic_shards
    from lcm_exp.models.tiny import ensure_tiny_teacher

    tmp = tmp_path_factory.mktemp("user_errors")
    teacher = ensure_tiny_teacher("sd15", cache_dir)
    ensure_synthetic_shards(cache_dir, 512)
    fill = {"tmp": tmp, "teacher": teacher}
    for name, damage in {
        "trunc": lambda t: os.truncate(t / "unet/diffusion_pytorch_model.safetensors", 100_000),
        "garbage": lambda t: (t / "text_encoder/model.safetensors").write_bytes(os.urandom(5000)),
        "noweights": lambda t: (t / "vae/diffusion_pytorch_model.safetensors").unlink(),
        "novae": lambda t: shutil.rmtree(t / "vae"),
    }.items():
        fill[name] = shutil.copytree(teacher, tmp / name)
        damage(fill[name])
    fill["empty_folder"], fill["bad_metadata"] = tmp / "empty_folder", tmp / "bad_metadata"
    fill["empty_folder"].mkdir()
    fill["bad_metadata"].mkdir()
    (fill["bad_metadata"] / "a.png").write_bytes(b"listed, never read")
    (fill["bad_metadata"] / "metadata.jsonl").write_text("{not json\n")
    return {"cache_dir": cache_dir, "fill": fill, "tmp": tmp}


@pytest.fixture(scope="module")
def checkpoints(world):
    """Two real checkpoints: a LoRA and a full run of one step each."""
    runs = {a: world["tmp"] / f"run_{a}" for a in ("lora", "full")}

    def one_step(adapter: str):
        return launch(["experiment=tiny", f"adapter={adapter}", f"paths.cache_dir={world['cache_dir']}",
                       f"hydra.run.dir={runs[adapter]}", "trainer.max_train_steps=1", "trainer.batch_size=1",
                       "data.shuffle_buffer=0", "validation.at_end=false", "export.enabled=false"],
                      child_env())  # fmt: skip

    with ThreadPoolExecutor(2) as pool:
        for code, out, *_ in pool.map(one_step, runs):
            assert code == 0, out[-3000:]
    return {"run_with_ckpt": runs["full"], **{f"{a}_ckpt": runs[a] / "checkpoints" / "checkpoint-1" for a in runs}}


def run_battery(world, cases: dict[str, Case], fill: dict) -> dict:
    """Every case launched, two at a time; each with its own run dir and weight spy file."""
    tmp = world["tmp"]

    def run(name: str):
        case = cases[name]
        spy = tmp / f"{name}.spy"
        flags = [o for o in case.overrides if o.startswith("-")]  # before the overrides, as argparse wants them
        args = [*flags, "experiment=tiny", f"paths.cache_dir={world['cache_dir']}",
                f"hydra.run.dir={tmp / 'runs' / name}",
                *(o.format(**fill) for o in case.overrides if not o.startswith("-"))]  # fmt: skip
        code, out, wall, cpu = launch(args, child_env(case.env, spy))
        return name, (code, out, wall, cpu, spy.read_text().split() if spy.exists() else [])

    start = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        results = dict(pool.map(run, cases))
    total = time.perf_counter() - start
    slowest = sorted(results.items(), key=lambda kv: -kv[1][2])[:3]
    print(f"\n{len(results)} bad configs in {total:.1f} s (2 at a time); slowest: "
          + ", ".join(f"{n} {r[2]:.1f} s wall / {r[3]:.1f} s CPU" for n, r in slowest))
    return results


@pytest.fixture(scope="module")
def outcomes(world):
    return run_battery(world, CASES, world["fill"])


@pytest.fixture(scope="module")
def slow_outcomes(world, checkpoints):
    return run_battery(world, SLOW_CASES, {**world["fill"], **checkpoints})


def test_the_battery_holds_at_least_40_bad_configs():
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", [*CASES, *(pytest.param(n, marks=pytest.mark.slow) for n in SLOW_CASES)])
def test_bad_config_ends_in_one_line_naming_its_key(name, request):
    code, out, wall, cpu, weights_read = request.getfixturevalue("outcomes" if name in CASES else "slow_outcomes")[name]
    lines = [line for line in out.splitlines() if line.strip()]
    assert code == 2, out
    assert "Traceback" not in out
    assert len(lines) == 1 and lines[0].startswith("error: "), out
    assert ALL_CASES[name].key in lines[0], lines[0]
    assert weights_read == [], f"weights were read: {weights_read}"
    assert cpu < CPU_LIMIT_S and wall < HANG_S, f"{cpu:.1f} s CPU, {wall:.1f} s wall"


def test_hydra_full_error_shows_the_traceback(world):
    """The one line is for users; HYDRA_FULL_ERROR=1 (Hydra's own switch) asks for the traceback."""
    args = ["experiment=tiny", f"paths.cache_dir={world['cache_dir']}", f"hydra.run.dir={world['tmp'] / 'full_err'}",
            "trainer.batch_size=0"]  # fmt: skip
    code, out, *_ = launch(args, {**child_env(), "HYDRA_FULL_ERROR": "1"})
    assert code != 0 and "Traceback" in out and "trainer.batch_size" in out


@pytest.mark.slow
def test_the_spy_sees_a_weight_load(world, tmp_path):
    """The spy is not blind: loading the teacher's UNet the way a family does is recorded."""
    spy = tmp_path / "spy"
    teacher = world["fill"]["teacher"]
    code = ("from diffusers import UNet2DConditionModel; "
            f"UNet2DConditionModel.from_pretrained({str(teacher)!r}, subfolder='unet')")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=child_env(spy=spy), check=True, capture_output=True)
    assert spy.read_text().split() == [str(teacher / "unet/diffusion_pytorch_model.safetensors")]
