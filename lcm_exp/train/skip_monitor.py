"""Counts the bad samples the data workers skipped and stops a run whose data is mostly broken."""

from __future__ import annotations

from collections import Counter


class TooManyBadSamples(RuntimeError):
    pass


class SkipMonitor:
    # the fraction is only judged once this many samples were seen, so one early bad sample is not fatal
    MIN_SEEN = 64

    def __init__(self, max_fraction: float):
        self.max_fraction = max_fraction
        self.seen = self.skipped = self.filtered = 0
        self.by_shard: Counter = Counter()

    def update(self, batch: dict) -> None:
        self.seen += len(batch["captions"]) + batch.get("num_skipped", 0)
        self.skipped += batch.get("num_skipped", 0)
        self.filtered += batch.get("num_filtered", 0)
        self.by_shard.update(batch.get("skipped_by_shard", {}))
        if self.seen >= self.MIN_SEEN and self.skipped / self.seen > self.max_fraction:
            worst = ", ".join(f"{url} ({n})" for url, n in self.by_shard.most_common(5))
            raise TooManyBadSamples(
                f"{self.skipped} of {self.seen} samples were bad ({self.skipped / self.seen:.0%} > "
                f"data.max_skip_fraction={self.max_fraction}); worst shards: {worst}"
            )

    def summary(self) -> dict:
        return {"skipped_samples": self.skipped, "filtered_samples": self.filtered}
