"""Issue 16: the new family through the existing launch paths, unchanged: 2-process DDP on CPU (launcher=accelerate),
bitwise resume, preemption, a sweep, the benchmark (latent cache, VAE shift factor) and the latent-cache encoder."""

from __future__ import annotations

import signal

import pytest
import torch

from lcm_exp.train.checkpoint import complete_checkpoints
from tests.train.runner import launch, metrics, record, straight_and_resumed
from tests.train.test_reliability import _start, _wait_for

SD3 = ["model=tiny_sd3", "model.max_sequence_length=16", "adapter=lora", "adapter.rank=4"]
QUICK = ["validation.at_end=false"]


def test_two_process_ddp_on_cpu_trains_the_sd3_lora_in_sync(tmp_path, cache_dir):
    launch(tmp_path, cache_dir, *SD3, *QUICK, "launcher=accelerate", "launcher.num_processes=2", "launcher.cpu=true",
           "trainer.max_train_steps=2")  # fmt: skip
    rec = record(tmp_path)
    assert rec["status"] == "completed" and rec["metrics"]["ranks_in_sync"] is True
    assert "--num_processes 2" in rec["workers_command"] and "--multi_gpu" in rec["workers_command"]
    assert "8 per process x 2 processes" in (tmp_path / "rank_logs" / "rank1.log").read_text()
    assert (tmp_path / "model" / "pytorch_lora_weights.safetensors").is_file()


@pytest.mark.slow
def test_sd3_resume_is_bitwise_identical_to_a_straight_run(tmp_path, cache_dir):
    args = [*SD3, *QUICK, "export.enabled=false", "trainer.checkpointing_steps=2", "adapter.target=ema"]
    straight_and_resumed(tmp_path, cache_dir, args)


@pytest.mark.slow
def test_sd3_sigterm_checkpoints_and_the_same_command_resumes(tmp_path, cache_dir):
    args = [*SD3, "trainer.max_train_steps=10", "trainer.checkpointing_steps=100"]
    proc = _start(tmp_path, cache_dir, *args)
    _wait_for(lambda: (tmp_path / "metrics.jsonl").exists() and len(metrics(tmp_path)) >= 2, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0
    stopped = record(tmp_path)["metrics"]["steps"]
    assert record(tmp_path)["status"] == "preempted"
    assert [c.name for c in complete_checkpoints(tmp_path / "checkpoints")] == [f"checkpoint-{stopped}"]
    launch(tmp_path, cache_dir, *QUICK, "export.enabled=false", *args)
    assert record(tmp_path)["metrics"]["steps"] == 10 and record(tmp_path)["attempts"] == 2


@pytest.mark.slow
def test_sd3_sweep_runs_every_job(tmp_path, cache_dir):
    from tests.sweep.test_sweep_e2e import _record, _run

    sweep_dir = tmp_path / "sd3"
    out = _run("launch.py", "-m", "experiment=tiny", *SD3, *QUICK, "export.enabled=false", "sweep.name=sd3",
               "loss.huber_c=0.001,0.1", "trainer.max_train_steps=2", f"hydra.sweep.dir={sweep_dir}",
               f"paths.cache_dir={cache_dir}")  # fmt: skip
    assert out.returncode == 0, out.text[-3000:]
    jobs = sorted(p for p in sweep_dir.iterdir() if (p / "run.json").exists())
    assert len(jobs) == 2 and all(_record(j)["status"] == "completed" for j in jobs)
    assert "2 jobs: 2 completed" in (sweep_dir / "summary.md").read_text()


@pytest.mark.slow
def test_bench_measures_the_sd3_lora_step_from_a_latent_cache(cache_dir, tmp_path):
    from lcm_exp.bench.__main__ import parse_args, run

    threads = torch.get_num_threads()
    args = parse_args(["--variants", "optimised", "--steps", "1", "--warmup", "0", "--cache-samples", "4",
                       "--threads", "1", "--out", str(tmp_path / "bench.md"), "--", *SD3, "trainer.batch_size=2",
                       f"paths.cache_dir={cache_dir}"])  # fmt: skip
    try:
        (result,) = run(args)
    finally:
        torch.set_num_threads(threads)
    assert result.error is None and result.samples_per_s > 0 and result.flops_per_step > 0


def test_latent_cache_encoder_scales_with_the_vae_shift_and_keeps_pooled_embeddings(cache_dir, tmp_path):
    """The cached posterior is turned into latents exactly as ModelFamily.encode_images does, shift included."""
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    from lcm_exp.data.latent_cache import CachedLatentEncoder, meta_for
    from lcm_exp.data.spec import DataSpec
    from tests.export.conftest import run_config, student

    cfg = run_config(cache_dir, tmp_path, *SD3)
    family, _ = student(cfg)
    pixels = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        params = family.vae.encode(pixels).latent_dist.parameters
    cond = family.encode_text({"captions": ["a red circle", "a square"]})
    batch = {"posterior": params, "prompt_embeds": cond.prompt_embeds, "pooled_embeds": cond.pooled_embeds,
             "original_size": torch.full((2, 2), 32), "crop_top_left": torch.zeros(2, 2)}  # fmt: skip
    encoder = CachedLatentEncoder(family, meta_for(family, DataSpec(shards="x"), 0), torch.float32)
    family.release_encoders()  # a cached run holds no VAE
    torch.manual_seed(3)
    latents = encoder.latents(batch)
    torch.manual_seed(3)
    sample = DiagonalGaussianDistribution(params).sample(None)
    torch.testing.assert_close(latents, (sample - 0.0609) * 1.5305)
    got, uncond = encoder.conditioning(batch)
    assert torch.equal(got.pooled_embeds, cond.pooled_embeds) and got.time_ids is None and len(uncond) == 2
