"""data.cache: when a run reads its data through the shared latent cache, and that parallel runs build it once."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lcm_exp.bench.compose import compose_run_config
from lcm_exp.train.shared_cache import plan_cache

ROOT = Path(__file__).resolve().parents[2]
CENTER = ["data.crop=center", "model.resolution=32", "trainer.batch_size=4"]


def _cfg(cache_dir, *overrides):
    return compose_run_config([f"paths.cache_dir={cache_dir}", *overrides])


def _with(cfg, **data):
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, **data))


def test_auto_caches_repeated_deterministic_local_data_only(cache_dir):
    cfg = _cfg(cache_dir, *CENTER, "trainer.max_train_steps=200")  # 800 samples from the 512 synthetic ones
    plan = plan_cache(cfg, world_size=1)
    assert plan.use and plan.samples == 512 and "repeats" in plan.reason
    one_pass = dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, max_train_steps=100))
    assert not plan_cache(one_pass, 1).use and "one pass" in plan_cache(one_pass, 1).reason
    assert plan_cache(one_pass, world_size=2).use  # two ranks read 800 samples
    sweep_job = dataclasses.replace(one_pass, sweep=dataclasses.replace(cfg.sweep, overrides=["loss.huber_c=0.01"]))
    assert plan_cache(sweep_job, 1).use and "sweep" in plan_cache(sweep_job, 1).reason
    for data, why in [(dict(crop="random"), "data.crop=random"), (dict(random_flip=True), "random_flip"),
                      (dict(caption_choice="random"), "caption_choice"), (dict(cache_max_samples=100), "max_samples"),
                      (dict(cache="never"), "never")]:  # fmt: skip
        off = plan_cache(_with(cfg, **data), 1)
        assert not off.use and why in off.reason, (data, off.reason)
    assert plan_cache(_with(cfg, crop="random", cache="always"), 1).use
    stream = plan_cache(_with(cfg, shards="pipe:cat /dev/null"), 1)
    assert not stream.use and "not local" in stream.reason


def test_reference_parity_runs_without_the_cache_like_the_scripts(cache_dir):
    """perf=reference_parity is the scripts' step as it runs: they encode every sample on every step, so the preset
    turns the shared cache off even where the data repeats (and the bench's parity variant is that preset)."""
    from lcm_exp.bench.variants import parse_variant

    repeats = [*CENTER, "trainer.max_train_steps=200"]
    assert plan_cache(_cfg(cache_dir, *repeats), 1).use
    parity = _cfg(cache_dir, *repeats, "perf=reference_parity")
    assert not plan_cache(parity, 1).use and parity.perf.frozen_dtype == "fp32"
    assert not plan_cache(_cfg(cache_dir, *repeats, *parse_variant("parity").overrides), 1).use
    assert plan_cache(_cfg(cache_dir, *repeats, "perf=reference_parity", "data.cache=auto"), 1).use  # a user's choice


SCRIPT = textwrap.dedent("""
    import logging, sys
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from lcm_exp.bench.compose import compose_run_config
    from lcm_exp.models.registry import get_family
    from lcm_exp.train.shared_cache import ensure_cache
    cfg = compose_run_config(sys.argv[1:])
    family = get_family(cfg.model.family)(cfg.model)
    print("FOLDER", ensure_cache(cfg, family, 512, 1)[1])
""")


@pytest.mark.slow  # three processes, each importing the stack and loading the teacher: minutes on busy cores
def test_parallel_runs_build_the_cache_once_and_share_it(cache_dir, tmp_path):
    args = [sys.executable, "-c", SCRIPT, f"paths.cache_dir={tmp_path}", f"model.teacher={_teacher(cache_dir)}",
            *CENTER]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LCM_EXP_CACHE": str(cache_dir)}
    procs = [subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    folders = {line.split()[1] for out in outs for line in out.splitlines() if line.startswith("FOLDER")}
    assert len(folders) == 1
    assert sum(out.count("encoding 512 samples once") for out in outs) == 1
    assert sum(out.count("reusing") for out in outs) == 1
    assert len(list((tmp_path / "latents").glob("*/cache_meta.json"))) == 1
    other = subprocess.run([*args, "model.resolution=64"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert other.returncode == 0 and "encoding" in other.stdout + other.stderr  # another key, another cache
    assert len(list((tmp_path / "latents").glob("*/cache_meta.json"))) == 2


def _teacher(cache_dir) -> str:
    from lcm_exp.models.tiny import ensure_tiny_teacher

    return str(ensure_tiny_teacher("sd15", cache_dir))


def test_a_cached_run_reads_the_shared_cache_and_a_rerun_reuses_it(cache_dir, tmp_path, caplog):
    from lcm_exp.data.shards import expand_shards
    from lcm_exp.train.build import build_accelerator, build_run

    cfg = _cfg(cache_dir, *CENTER, f"paths.output_dir={tmp_path}", "trainer.max_train_steps=50")
    cfg = _with(cfg, shards=expand_shards(cfg.data.shards)[0])  # one shard, 128 samples: 200 read, it repeats
    cfg = dataclasses.replace(cfg, paths=dataclasses.replace(cfg.paths, cache_dir=str(tmp_path)))
    with caplog.at_level("INFO"):
        run = build_run(cfg, build_accelerator(cfg))
    assert run.cfg.data.source == "latent_cache" and str(tmp_path / "latents") in run.cfg.data.shards
    assert run.family.vae is None  # the steps read latents: VAE and text encoders released
    assert "encoding 128 samples once" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO"):
        again = build_run(cfg, build_accelerator(cfg))
    assert again.cfg.data.shards == run.cfg.data.shards and "reusing" in caplog.text and "encoding" not in caplog.text


def test_a_damaged_local_shard_means_no_cache_not_a_crash(cache_dir, tmp_path):
    (tmp_path / "cut.tar").write_bytes(b"not a tar at all" * 10)
    cfg = _with(_cfg(cache_dir, *CENTER, "trainer.max_train_steps=200"), shards=str(tmp_path / "cut.tar"))
    plan = plan_cache(cfg, 1)
    assert not plan.use and "counted" in plan.reason
