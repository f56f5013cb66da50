"""Skip accounting for the data pipeline: why a sample was dropped, how often, from which shard; and how a data stop
reaches the training process as one message.

Web-scale shards always hold some bad samples. Dropping them must never crash a run, but silently dropping them hides a
broken dataset: every drop is counted here (shard-level read errors too, at the same point as the samples), the counts
ride along with the next batch, and the first drop of each shard is logged at WARNING (later ones at DEBUG, so a bad
dataset cannot flood the log).

A data stop (every sample of a worker unusable for ``max_consecutive_skips`` in a row, a stalled shard) is not raised
inside a DataLoader worker, where torch would wrap it in pages of tracebacks: the worker yields a stop item and the
training process raises it (``delivered``) as a ``DataError``, whose message names the shards and the reasons.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from lcm_exp.config.errors import DataError

logger = logging.getLogger(__name__)

STOP = "data_stop"  # a stream item holding only this key (and counts) ends the stream with its message
_SHOWN_SHARDS = 5
_WARN_SHARDS = 10  # per worker and pass: the first skip of this many shards is a WARNING, the rest DEBUG


class SkipSample(Exception):
    """A sample cannot be used (corrupt image, missing caption, ...): drop it and count it as skipped."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class FilteredSample(SkipSample):
    """A valid sample that a configured policy rejects (size, watermark, aesthetic, ...): counted separately."""


class TooManyConsecutiveSkips(DataError):
    """Raised instead of spinning forever when nothing usable comes out of the shards (e.g. a filter that drops
    everything in resampled mode, or every shard unreadable)."""


@dataclass
class SkipCounter:
    """Per-worker counters since the previous batch, plus this pass's totals and a run of consecutive drops."""

    max_consecutive: int
    source: str = "data.shards"  # the key the stop messages name
    skipped: int = 0
    filtered: int = 0
    by_shard: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)  # url -> the first skip since the previous batch
    consecutive: int = 0
    totals: Counter = field(default_factory=Counter)  # reason -> count over the whole pass, for the summary
    pass_by_shard: Counter = field(default_factory=Counter)
    pass_examples: dict = field(default_factory=dict)

    def record(self, exn: BaseException, *, url: str | None, key: str | None) -> None:
        reason = exn.reason if isinstance(exn, SkipSample) else type(exn).__name__
        url = url or "?"
        if isinstance(exn, FilteredSample):
            self.filtered += 1
            logger.debug("filtered sample %s from %s: %s", key, url, exn)
        else:
            self.skipped += 1
            self.by_shard[url] += 1
            self.pass_by_shard[url] += 1
            what = f"sample {key}" if key is not None else "tar read error"
            text = describe_error(exn)
            first = url not in self.pass_examples and len(self.pass_examples) < _WARN_SHARDS
            level = logging.WARNING if first else logging.DEBUG
            example = f"{key}: {text}" if key is not None else text
            self.examples.setdefault(url, example)
            self.pass_examples.setdefault(url, example)
            logger.log(level, "skipping %s from %s: %s", what, url, text)
        self.reasons[reason] += 1
        self.totals[reason] += 1
        self.consecutive += 1
        if self.consecutive >= self.max_consecutive:
            raise TooManyConsecutiveSkips(
                f"{self.source}: {self.consecutive} samples in a row were unusable (data.max_consecutive_skips="
                f"{self.max_consecutive}); reasons in this pass: {dict(self.totals)}"
                + (f"; skipped: {describe_shards(self.pass_by_shard, self.pass_examples)}" if self.pass_by_shard
                   else "; check data.filters")
            )  # fmt: skip

    def ok(self) -> None:
        self.consecutive = 0

    def take(self) -> dict:
        """The counts since the previous call, as batch fields; resets them."""
        out = {
            "num_skipped": self.skipped,
            "num_filtered": self.filtered,
            "skipped_by_shard": dict(self.by_shard),
            "skip_reasons": dict(self.reasons),
            "skip_examples": dict(self.examples),
        }
        self.skipped = self.filtered = 0
        self.by_shard, self.reasons, self.examples = Counter(), Counter(), {}
        return out


def describe_error(exn: BaseException) -> str:
    """'Type: message', one line, without the stream webdataset appends to its errors' args."""
    text = str(exn.args[0]) if exn.args and not isinstance(exn, SkipSample) else str(exn)
    text = " ".join(text.split(" @ ")[0].split())
    text = f"{type(exn).__name__}: {text}" if not isinstance(exn, SkipSample) else text
    return text if len(text) <= 300 else text[:300] + "..."


def describe_shards(by_shard: Mapping[str, int], examples: Mapping[str, str]) -> str:
    """'url (n bad, e.g. reason: detail); ...' for the worst shards."""
    worst = Counter(by_shard).most_common(_SHOWN_SHARDS)
    text = "; ".join(f"{url} ({n} bad, e.g. {examples.get(url, '?')})" for url, n in worst)
    more = len(by_shard) - len(worst)
    return text + (f"; and {more} more shard(s)" if more > 0 else "")


def guarded(batches: Iterable[dict], counter: SkipCounter) -> Iterator[dict]:
    """What a dataset yields: its batches; then the counts of drops after the last batch (a counts-only item, so no
    drop goes uncounted); or, on a data stop, one stop item instead of an exception in a worker process."""
    try:
        yield from batches
    except DataError as stop:
        yield {STOP: stop.problems[0], **counter.take()}
        return
    rest = counter.take()
    if rest["num_skipped"] or rest["num_filtered"]:
        yield rest


def delivered(items: Iterable[dict], source: str, leftover: dict[str, Any]) -> Iterator[dict]:
    """The training process's side of ``guarded``: batches only, each carrying every count since the previous one; a
    stop item raises its DataError; a pass without a single batch raises one naming the bad shards.

    ``leftover``: counts after the last batch of a pass, carried into the first batch of the next (updated in place).
    """
    pending: dict[str, Any] = dict(leftover)
    leftover.clear()
    produced = False
    for item in items:
        if STOP in item:
            raise DataError(item[STOP])
        pending = merge_counts(pending, item)
        if "captions" not in item:  # counts only
            continue
        produced = True
        yield {**item, **pending}
        pending = {}
    leftover.update(pending)
    if not produced:
        shards = pending.get("skipped_by_shard") or {}
        why = (f"skipped: {describe_shards(shards, pending.get('skip_examples', {}))}" if shards
               else f"reasons: {pending.get('skip_reasons') or 'no sample at all'}")  # fmt: skip
        raise DataError(f"{source}: a whole pass over this rank's data gave no usable sample; {why}")


_COUNT_FIELDS = ("num_skipped", "num_filtered", "skipped_by_shard", "skip_reasons", "skip_examples")


def merge_counts(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """The skip fields of two items added up (examples: the first one per shard)."""
    out = {}
    for name in _COUNT_FIELDS:
        x, y = a.get(name), b.get(name)
        if x is None or y is None:
            if x is not None or y is not None:
                out[name] = x if y is None else y
        elif name == "skip_examples":
            out[name] = {**y, **x}
        elif isinstance(x, dict):
            out[name] = dict(Counter(x) + Counter(y))
        else:
            out[name] = x + y
    return out
