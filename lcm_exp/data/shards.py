"""Shard specs -> a checked list of shard urls, and the per-epoch / per-rank / per-worker shard streams.

Local paths are checked right after brace expansion so a typo dies before any model loads, with the spec in
the message (webdataset itself would just yield nothing and fail later, or spin in resampled mode).
`pipe:` commands and remote urls cannot be checked; a failing one is counted as a bad shard at read time.
Node splitting uses the rank/world size we are given, never torch.distributed state (webdataset's default
nodesplitter raises under DDP, and its split_by_node reads env/process-group state we may not have yet).
webdataset (which imports torch) is imported only by the stream functions, so config validation can expand and check
a spec in milliseconds.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import braceexpand

_REMOTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def check_partition(batch_size: int, rank: int, world_size: int) -> None:
    """The batch size and this process's place among ``world_size``, checked by every dataset before it reads."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if world_size <= 0 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank} world_size={world_size}")


def check_shard_split(shards: object, urls: list[str], resampled: bool, world_size: int) -> None:
    """Finite mode gives each rank whole shards: a rank without one would stall DDP."""
    if not resampled and len(urls) < world_size:
        raise ValueError(
            f"data.shards {shards!r}: {len(urls)} shard(s) cannot be split over {world_size} ranks "
            "in finite mode (a rank without shards would stall DDP); use more shards or data.resampled=true"
        )


def seed_for(*parts: object) -> int:
    """A stable 63-bit seed from parts (Python's hash() of str is salted per process, so not that)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def expand_shards(spec: str | Sequence[str]) -> list[str]:
    """Brace-expand a spec or a list of specs, then check that every local shard exists."""
    specs = [spec] if isinstance(spec, str) else [str(s) for s in spec]
    urls = [url for s in specs for url in braceexpand.braceexpand(s.strip()) if url]
    if not urls:
        raise ValueError(f"data.shards is empty (got {spec!r}): give a path/brace range, a pipe: command or a list")
    missing = [u for u in urls if _is_local(u) and not os.path.isfile(_local_path(u))]
    if missing:
        shown = ", ".join(missing[:5]) + (f" ... ({len(missing)} missing in all)" if len(missing) > 5 else "")
        raise FileNotFoundError(f"data.shards {spec!r}: shard file(s) not found: {shown}")
    return urls


def brace_spec(paths: Sequence[Path]) -> str:
    """The consecutive shards written by write_shards as one brace range, for data.shards."""
    if not paths:
        raise ValueError("no shards were written")
    if len(paths) == 1:
        return str(paths[0])
    prefix = paths[0].name.rpartition("-")[0]
    first, last = (p.name[len(prefix) + 1 : -len(".tar")] for p in (paths[0], paths[-1]))
    return str(paths[0].parent / f"{prefix}-{{{first}..{last}}}.tar")


def _is_local(url: str) -> bool:
    return not url.startswith("pipe:") and (url.startswith("file:") or not _REMOTE.match(url))


def _local_path(url: str) -> str:
    return url[len("file://") :] if url.startswith("file://") else url.removeprefix("file:")


def finite_shards(
    urls: Sequence[str], *, seed: int, epoch: int, rank: int, world_size: int
) -> Iterator[dict[str, str]]:
    """One epoch of this rank's and this worker's shards: the same seed+epoch shuffle on every rank, then
    disjoint strided slices per rank and per DataLoader worker."""
    import webdataset as wds

    order = list(urls)
    random.Random(seed_for("shards", seed, epoch)).shuffle(order)
    mine = order[rank::world_size]
    return wds.split_by_worker(dict(url=u) for u in mine)


def resampled_shards(urls: Sequence[str], *, seed: int, epoch: int, rank: int, worker: int) -> Iterator[dict]:
    """An endless draw with replacement from all shards, seeded by (seed, rank, epoch) and the worker id, so
    the same seed replays the same stream (webdataset's default seeds with pid and time)."""
    import webdataset as wds

    shards = wds.ResampledShards(
        list(urls),
        seed=seed_for("resampled", seed, rank, epoch) & 0x7FFFFFFF,
        worker_seed=lambda: worker,
        deterministic=True,
        empty_check=False,
    )
    return iter(shards)
