"""Issue 3 item 8 / issue 9 item 1: N steps straight == N/2 steps + stop + resume to N, bitwise."""

from __future__ import annotations

import pytest

from tests.train.runner import metrics, record, straight_and_resumed

BASE = ["trainer.checkpointing_steps=2", "validation.at_end=false", "export.enabled=false", "adapter.rank=4"]


@pytest.mark.parametrize(("adapter", "optim"), [
    ("full", "adamw"), pytest.param("lora", "adamw8bit", marks=pytest.mark.slow),
    pytest.param("full", "adamw8bit", marks=pytest.mark.slow), pytest.param("lora", "adamw", marks=pytest.mark.slow),
])  # fmt: skip
def test_resume_is_bitwise_identical_to_a_straight_run(tmp_path, cache_dir, adapter, optim):
    args = [f"adapter={adapter}", f"optim={optim}", *BASE]
    if adapter == "lora":
        args += ["adapter.target=ema"]  # the EMA of the adapter weights must survive the resume too
    else:
        args = [a for a in args if not a.startswith("adapter.rank")]
    _, resumed = straight_and_resumed(tmp_path, cache_dir, args)
    assert [r["step"] for r in metrics(resumed)] == [1, 2, 3, 4]
    rec = record(resumed)
    assert rec["status"] == "completed" and rec["attempts"] == 2 and rec["metrics"]["steps"] == 4


def test_skip_counters_continue_after_a_resume(tmp_path, cache_dir):
    """Shards with unreadable samples: the resumed run's skipped_samples continue from the checkpoint, so its
    metrics.jsonl equals the straight run's (they used to restart at 0 after every resume)."""
    import io
    import tarfile

    from PIL import Image

    def member(name, data):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        return info, io.BytesIO(data)

    with tarfile.open(tmp_path / "bad.tar", "w") as tar:
        for i in range(48):
            buf = io.BytesIO()
            Image.new("RGB", (40, 40), (5 * i, 90, 200)).save(buf, format="PNG")
            tar.addfile(*member(f"s{i:03d}.png", buf.getvalue() if i % 4 else b"not a png"))
            tar.addfile(*member(f"s{i:03d}.txt", f"shape {i}".encode()))
    args = [f"data.shards={tmp_path / 'bad.tar'}", "data.shuffle_buffer=0", "model.resolution=32",
            "trainer.batch_size=2", "data.max_skip_fraction=0.9", "adapter=lora", *BASE]  # fmt: skip
    straight, _ = straight_and_resumed(tmp_path, cache_dir, args)  # the metrics rows equal, counters included
    assert metrics(straight)[-1]["skipped_samples"] > metrics(straight)[1]["skipped_samples"] > 0
