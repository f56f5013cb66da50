"""Counts the bad samples the data workers skipped and stops a run whose data is mostly broken.

Every batch carries the drops since its worker's previous batch, counted at the same point as the batch's own samples
(after the shuffle buffer, shard read errors included), so ``skipped / seen`` is the stream's real bad fraction. The
counters are part of a checkpoint (``state_dict``): a resumed run continues them, so its metrics equal a straight
run's and the fraction guard does not restart after every preemption.
"""

from __future__ import annotations

from collections import Counter

from lcm_exp.config.errors import DataError
from lcm_exp.data.skips import describe_shards


class TooManyBadSamples(DataError):
    pass


class SkipMonitor:
    # the fraction is only judged once this many samples were seen, so one early bad sample is not fatal
    MIN_SEEN = 64

    def __init__(self, max_fraction: float):
        self.max_fraction = max_fraction
        self.seen = self.skipped = self.filtered = 0
        self.by_shard: Counter = Counter()
        self.examples: dict[str, str] = {}

    def update(self, batch: dict) -> None:
        skipped, filtered = batch.get("num_skipped", 0), batch.get("num_filtered", 0)
        self.seen += len(batch["captions"]) + skipped + filtered
        self.skipped += skipped
        self.filtered += filtered
        self.by_shard.update(batch.get("skipped_by_shard", {}))
        for url, example in batch.get("skip_examples", {}).items():
            self.examples.setdefault(url, example)
        if self.seen >= self.MIN_SEEN and self.skipped / self.seen > self.max_fraction:
            raise TooManyBadSamples(
                f"{self.skipped} of {self.seen} samples were bad ({self.skipped / self.seen:.0%} > "
                f"data.max_skip_fraction={self.max_fraction}); worst shards: "
                f"{describe_shards(self.by_shard, self.examples)}"
            )

    def summary(self) -> dict:
        return {"skipped_samples": self.skipped, "filtered_samples": self.filtered}

    def state_dict(self) -> dict:
        """Plain json: the counters a checkpoint keeps (trainer_state.json)."""
        return {"seen": self.seen, "skipped": self.skipped, "filtered": self.filtered,
                "by_shard": dict(self.by_shard), "examples": dict(self.examples)}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.seen, self.skipped, self.filtered = int(state["seen"]), int(state["skipped"]), int(state["filtered"])
        self.by_shard = Counter({str(k): int(v) for k, v in state["by_shard"].items()})
        self.examples = {str(k): str(v) for k, v in state.get("examples", {}).items()}
