"""Skip accounting for the data pipeline: why a sample was dropped, and how often, per worker.

Web-scale shards always hold some bad samples. Dropping them must never crash a run, but silently dropping
them hides a broken dataset: every drop is counted here, the counts ride along with the next batch, and the
first few drops of each worker are logged at WARNING with the sample key and shard url.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

_WARN_FIRST = 10  # per worker; later skips are logged at DEBUG so a bad dataset cannot flood the log


class SkipSample(Exception):
    """A sample cannot be used (corrupt image, missing caption, ...): drop it and count it as skipped."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class FilteredSample(SkipSample):
    """A valid sample that a configured policy rejects (size, watermark, aesthetic, ...): counted separately."""


class TooManyConsecutiveSkips(RuntimeError):
    """Raised instead of spinning forever when nothing usable comes out of the shards (e.g. a filter that
    drops everything in resampled mode, or every shard unreadable)."""


@dataclass
class SkipCounter:
    """Per-worker counters since the previous batch, plus a run of consecutive drops to detect dead data."""

    max_consecutive: int
    skipped: int = 0
    filtered: int = 0
    by_shard: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    consecutive: int = 0
    totals: Counter = field(default_factory=Counter)  # reason -> count over the whole pass, for the summary
    _logged: int = 0

    def record(self, exn: BaseException, *, url: str | None, key: str | None) -> None:
        reason = exn.reason if isinstance(exn, SkipSample) else type(exn).__name__
        if isinstance(exn, FilteredSample):
            self.filtered += 1
            logger.debug("filtered sample %s from %s: %s", key, url, exn)
        else:
            self.skipped += 1
            self.by_shard[url or "?"] += 1
            level = logging.WARNING if self._logged < _WARN_FIRST else logging.DEBUG
            self._logged += 1
            suffix = " (further skips of this worker are logged at DEBUG)" if self._logged == _WARN_FIRST else ""
            what = f"sample {key}" if key is not None else "tar read error"
            logger.log(level, "skipping %s from %s: %s%s", what, url, _short(exn), suffix)
        self.reasons[reason] += 1
        self.totals[reason] += 1
        self.consecutive += 1
        if self.consecutive >= self.max_consecutive:
            raise TooManyConsecutiveSkips(
                f"{self.consecutive} consecutive samples/shards were dropped without one usable sample "
                f"(reasons in this pass: {dict(self.totals)}); check the shards and the data filters, or raise "
                f"data.max_consecutive_skips"
            )

    def ok(self) -> None:
        self.consecutive = 0

    def take(self) -> dict:
        """The counts since the previous call, as batch fields; resets them."""
        out = {
            "num_skipped": self.skipped,
            "num_filtered": self.filtered,
            "skipped_by_shard": dict(self.by_shard),
            "skip_reasons": dict(self.reasons),
        }
        self.skipped = self.filtered = 0
        self.by_shard = Counter()
        self.reasons = Counter()
        return out


class ShardErrorHandler:
    """A webdataset `handler=` for the tar-level stages: count the error against its shard and continue.

    Shards are read one after another, so the shard being read is the one `track` passed on last
    (webdataset appends the url to some exceptions' args but not to those raised inside a tar stream).
    """

    def __init__(self, counter: SkipCounter):
        self.counter = counter
        self.current_url: str | None = None

    def track(self, shards: Iterable[dict]) -> Iterator[dict]:
        for shard in shards:
            self.current_url = shard["url"]
            yield shard

    def __call__(self, exn: BaseException) -> bool:
        self.counter.record(exn, url=self.current_url, key=None)
        return True


def _short(exn: BaseException, limit: int = 300) -> str:
    text = f"{type(exn).__name__}: {exn}"
    return text if len(text) <= limit else text[:limit] + "..."
