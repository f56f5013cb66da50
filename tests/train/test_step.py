"""The training step's gradient-accumulation policy for non-finite losses (lcm_exp/train/step.py): a bad micro-batch
is skipped and the rest of its window kept (the update is the good micro-batches' mean gradient); a window with no
good micro-batch makes no update and does not count as a step."""

from __future__ import annotations

import pytest
import torch

from lcm_exp.bench.compose import compose_run_config
from lcm_exp.train.build import build_accelerator, build_run

pytestmark = pytest.mark.usefixtures("one_thread")


def _run(cache_dir, tmp_path, accumulation: int, bad_calls: set[int]):
    """A tiny full-UNet run whose encoder returns NaN latents on the listed calls (1-based)."""
    cfg = compose_run_config([
        "model.resolution=32", "trainer.batch_size=2", f"trainer.gradient_accumulation_steps={accumulation}",
        "optim.lr=1e-3", "trainer.max_consecutive_nonfinite=3", f"paths.cache_dir={cache_dir}",
        f"paths.output_dir={tmp_path}",
    ])  # fmt: skip
    run = build_run(cfg, build_accelerator(cfg))
    real, calls = run.step.encoder.latents, []

    def latents(batch):
        calls.append(1)
        z = real(batch)
        return torch.full_like(z, float("nan")) if len(calls) in bad_calls else z

    run.step.encoder.latents = latents
    return run, run.batches()


def _params(run):
    return [p.detach().clone() for p in run.adapter.trainable_parameters()]


def test_a_bad_micro_batch_is_skipped_and_the_rest_of_its_window_is_kept(cache_dir, tmp_path):
    ref, ref_stream = _run(cache_dir, tmp_path, accumulation=1, bad_calls=set())
    ref.step(next(ref_stream))  # one update from micro-batch 1 alone
    expected = _params(ref)

    run, stream = _run(cache_dir, tmp_path, accumulation=2, bad_calls={2})
    before = _params(run)
    first = run.step(next(stream))
    assert first.finite and not first.window_end and not first.updated
    second = run.step(next(stream))
    assert not second.finite and second.window_end and second.updated
    assert run.step.global_step == 1 and run.step.guard.skipped == 1
    after = _params(run)
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))  # the window was not discarded
    for a, b in zip(after, expected, strict=True):  # the same update as micro-batch 1 alone (mean of good ones)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)


def test_a_window_without_a_good_micro_batch_makes_no_update(cache_dir, tmp_path):
    run, stream = _run(cache_dir, tmp_path, accumulation=2, bad_calls={1, 2})
    before, lr_steps = _params(run), run.step.lr_scheduler.scheduler.last_epoch
    results = [run.step(next(stream)) for _ in range(2)]
    assert [r.updated for r in results] == [False, False] and results[1].window_end
    assert run.step.global_step == 0 and run.step.lr_scheduler.scheduler.last_epoch == lr_steps
    assert all(torch.equal(a, b) for a, b in zip(before, _params(run), strict=True))
    assert all(p.grad is None for p in run.adapter.trainable_parameters())
    good = run.step(next(stream))  # the next window starts clean
    assert good.finite and not good.updated and run.step(next(stream)).updated
