"""Issue 14 item 10: the first screen of a run shows our progress, not third-party noise that does not concern the
user (bitsandbytes' kernel look-up on the Hub, transformers' torchvision fallbacks, diffusers' empty-list and
scheduler-key warnings, four accelerate lines per checkpoint)."""

from __future__ import annotations

from tests.train.runner import launch

NOISE = ("kernels-community", "Skipping publisher trust check", "requires torchvision (not installed)",
         "should be kept in float32: []", "were passed to LCMScheduler, but are not expected",
         "Model weights saved in", "Random states saved in")  # fmt: skip


def test_a_run_prints_no_third_party_noise(tmp_path, cache_dir):
    out = launch(tmp_path, cache_dir, "trainer.max_train_steps=1", "trainer.checkpointing_steps=1",
                 "export.enabled=false")  # fmt: skip
    screen = out.stdout + out.stderr
    assert "distill" in screen and "run finished" in screen
    assert [n for n in NOISE if n in screen] == []
    assert [n for n in NOISE if n in (tmp_path / "launch.log").read_text()] == []
