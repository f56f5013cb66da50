"""One way to build a run: the loop and the benchmark build the same components and take the same steps; the run
builder puts the attention backend on every network and keeps a cached run's VAE and text encoders released."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor, AttnProcessor2_0

from lcm_exp.bench.compose import compose_run_config
from lcm_exp.bench.runner import assemble
from lcm_exp.runlog.metrics import read_metrics
from lcm_exp.train import loop
from lcm_exp.train.build import build_accelerator, build_run

pytestmark = pytest.mark.usefixtures("one_thread")

QUICK = ["model.resolution=32", "trainer.batch_size=2", "validation.at_end=false", "export.enabled=false",
         "trainer.log_every_n_steps=1", "trainer.checkpointing_steps=1000"]  # fmt: skip


def _cfg(cache_dir, tmp_path, *overrides):
    return compose_run_config([*QUICK, f"paths.cache_dir={cache_dir}", f"paths.output_dir={tmp_path}", *overrides])


@pytest.mark.parametrize("overrides", [
    ["adapter=full"],
    ["adapter=lora", "adapter.rank=4", "trainer.mixed_precision=bf16", "perf=reference_parity"],
])  # fmt: skip
def test_loop_and_benchmark_build_the_same_run_and_take_the_same_steps(cache_dir, tmp_path, monkeypatch, overrides):
    cfg = _cfg(cache_dir, tmp_path, "trainer.max_train_steps=3", *overrides)
    built_by_loop = []

    def recording(*args, **kwargs):
        run = loop_build_run(*args, **kwargs)
        built_by_loop.append(run.describe())
        return run

    loop_build_run = loop.build_run
    monkeypatch.setattr(loop, "build_run", recording)
    loop.train(cfg, tmp_path / "run")
    loop_losses = [row["loss"] for row in read_metrics(tmp_path / "run")]

    bench = assemble(cfg, build_accelerator(cfg))
    bench_losses = [bench.run.step(next(bench.stream)).out.loss.item() for _ in range(3)]
    assert built_by_loop == [bench.run.describe()]
    assert len(loop_losses) == 3 and loop_losses == bench_losses


def _layers(networks):
    return [m for net in networks if net is not None for m in net.modules() if isinstance(m, Attention)]


@pytest.mark.parametrize(("backend", "processor"), [("classic", AttnProcessor), ("sdpa", AttnProcessor2_0)])
def test_the_attention_backend_reaches_every_network_that_runs(cache_dir, tmp_path, backend, processor):
    """Student, EMA target and its bf16 copy included (they are built from the teacher after it loads)."""
    cfg = _cfg(cache_dir, tmp_path, "adapter=full", "trainer.mixed_precision=bf16", f"model.attention={backend}")
    run = build_run(cfg, build_accelerator(cfg))
    student, target, copy = run.adapter.networks()
    assert next(copy.parameters()).dtype == torch.bfloat16
    layers = _layers([run.family.denoiser, run.family.vae, student, target, copy])
    assert len(layers) > 20 and all(type(layer.processor) is processor for layer in layers)


def test_a_cached_run_steps_without_vae_and_text_encoders(cache_dir, tmp_path):
    """data.source=latent_cache: the steps need neither, so the run releases them (the benchmark's memory column is
    what a launch.py run holds); validation loads them for its pipeline and releases them again."""
    from lcm_exp.train.components import inference_scheduler
    from lcm_exp.train.shared_cache import build_cache, frozen_family
    from lcm_exp.train.validation import Validator

    base = _cfg(cache_dir, tmp_path)
    _, shards = build_cache(base, frozen_family(base, "cpu"), tmp_path / "cache", batch_size=4, max_samples=8)
    cfg = _cfg(cache_dir, tmp_path, "data.source=latent_cache", f"data.shards={shards}",
               "validation.num_inference_steps=[1]", "validation.prompts=[a red circle]")  # fmt: skip
    run = build_run(cfg, build_accelerator(cfg))
    family, seen = run.family, []
    encoder = run.step.encoder
    real = encoder.latents
    encoder.latents = lambda batch: (seen.append((family.vae, list(family.text_encoders))), real(batch))[1]
    stream = run.batches()
    for _ in range(2):
        assert torch.isfinite(run.step(next(stream)).out.loss)
    assert seen == [(None, [])] * 2

    validator = Validator(cfg.validation, inference_scheduler(cfg, family), family, run.adapter, tmp_path,
                          run.accelerator)  # fmt: skip
    assert (validator.run(2) / "1-steps.png").is_file()
    assert family.vae is None and family.text_encoders == []
