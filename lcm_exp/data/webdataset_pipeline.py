"""The training data stream: webdataset shards -> collated batches (the contract's batch dict).

Stages: shard list (seeded; split by rank, then by worker) -> tar reading and grouping, shard by shard, read errors
as items of the stream (shard_reader) -> seeded sample shuffle -> SampleDecoder (per-sample try/except, classified
skips; read errors are counted here too, so good and bad samples are counted at the same point) -> batching, which
attaches the worker's skip counts since its previous batch. Collation happens here, so the DataLoader uses
batch_size=None and `num_workers=0` works (the reference scripts divide by it). The loader (EpochDataLoader) hands the
training process batches only and turns a worker's data stop into one DataError naming the shards.

Reproducibility: every random choice (shard order, resampling, shuffle buffer, crops, flips, caption choice)
comes from seeds derived from (seed, rank, worker, epoch); no time or pid seeds.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Iterator
from typing import Any

import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset

from lcm_exp.data.decode import SampleDecoder
from lcm_exp.data.shard_reader import ReadError, read_shards
from lcm_exp.data.shards import (
    check_partition,
    check_shard_split,
    expand_shards,
    finite_shards,
    resampled_shards,
    seed_for,
)
from lcm_exp.data.skips import SkipCounter, delivered, guarded
from lcm_exp.data.spec import DataSpec

logger = logging.getLogger(__name__)


class WebImageTextDataset(IterableDataset):
    """Yields batches (dicts) as in the data contract, plus skip accounting fields:
    num_skipped, num_filtered (ints, this worker, since its previous batch), skipped_by_shard (url -> count),
    skip_reasons (reason -> count, skipped and filtered), skip_examples (url -> its first skip, as text).
    After a finite pass's last batch: a counts-only item with the drops no batch carried; on a data stop: a stop item
    (lcm_exp.data.skips.guarded). Iterate it through ``epoch_loader`` to get batches only.

    Finite mode ends after one pass over this rank's shards and emits a final partial batch; each new
    iteration is the next epoch (a new shard/sample order). Resampled mode never ends.
    """

    source = "data.shards"  # what its data stops name

    def __init__(
        self,
        spec: DataSpec,
        *,
        resolution: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        epoch: int = 0,
    ):
        super().__init__()
        check_partition(batch_size, rank, world_size)
        self.urls = expand_shards(spec.shards)
        check_shard_split(spec.shards, self.urls, spec.resampled, world_size)
        self.spec = spec
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = epoch
        self.decoder = SampleDecoder(spec, resolution)

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration uses (also the salt of resampled mode, so a resumed run can avoid
        replaying the start of the stream)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        epoch = self.epoch
        self.epoch += 1  # persistent workers keep their copy: the next pass is the next epoch
        _, _, worker, num_workers = wds.utils.pytorch_worker_info()
        spec = self.spec
        counter = SkipCounter(spec.max_consecutive_skips, self.source)
        if spec.resampled:
            shards = resampled_shards(self.urls, seed=self.seed, epoch=epoch, rank=self.rank, worker=worker)
        else:
            shards = finite_shards(self.urls, seed=self.seed, epoch=epoch, rank=self.rank, world_size=self.world_size)
            if len(self.urls) // self.world_size < num_workers:
                logger.debug("rank %d has fewer shards than %d workers: some workers idle", self.rank, num_workers)
        samples: Iterable[dict | ReadError] = read_shards(shards, spec.stall_timeout_s)
        if spec.shuffle_buffer > 1:  # read errors are shuffled with the samples: counted when they leave the buffer
            rng = random.Random(seed_for("samples", self.seed, self.rank, worker, epoch))
            samples = wds.shuffle(spec.shuffle_buffer, spec.shuffle_buffer, rng=rng)(samples)
        rng = random.Random(seed_for("transforms", self.seed, self.rank, worker, epoch))
        yield from guarded(_batches(self._decoded(samples, counter, rng), counter, self.batch_size), counter)
        if counter.totals:  # a finite pass, or a stop
            logger.info("rank %d worker %d epoch %d: dropped %s", self.rank, worker, epoch, dict(counter.totals))

    def _decoded(self, samples: Iterable[dict | ReadError], counter: SkipCounter, rng: random.Random) -> Iterator[dict]:
        for raw in samples:
            if isinstance(raw, ReadError):
                counter.record(raw.error, url=raw.url, key=None)
                continue
            try:
                out = self.decoder(raw, rng)
            except Exception as exn:  # any per-sample failure drops that sample only, counted and logged
                counter.record(exn, url=raw.get("__url__"), key=raw.get("__key__"))
                continue
            counter.ok()
            yield out


def _batches(samples: Iterable[dict], counter: SkipCounter, batch_size: int) -> Iterator[dict[str, Any]]:
    batch: list[dict] = []
    for sample in samples:
        batch.append(sample)
        if len(batch) == batch_size:
            yield collate(batch, counter.take())
            batch = []
    if batch:
        yield collate(batch, counter.take())


def collate(samples: list[dict], counts: dict[str, Any]) -> dict[str, Any]:
    return {
        "pixel_values": torch.stack([s["pixel_values"] for s in samples]),
        "captions": [s["caption"] for s in samples],
        "original_size": torch.tensor([s["original_size"] for s in samples], dtype=torch.long),
        "crop_top_left": torch.tensor([s["crop_top_left"] for s in samples], dtype=torch.long),
        "keys": [s["key"] for s in samples],
        **counts,
    }


def build_webdataset(
    spec: DataSpec,
    *,
    resolution: int,
    batch_size: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    epoch: int = 0,
) -> WebImageTextDataset:
    """The batched IterableDataset; raises ValueError/FileNotFoundError naming the spec for an empty list
    or a missing local shard, before any data is read."""
    return WebImageTextDataset(
        spec, resolution=resolution, batch_size=batch_size, seed=seed, rank=rank, world_size=world_size, epoch=epoch
    )


class EpochDataLoader(DataLoader):
    """A DataLoader that starts each `iter()` on the next epoch, and yields batches only (``skips.delivered``: counts
of drops between batches are added to the next one; a worker's data stop is raised here as one DataError).

    Non-persistent workers get a fresh copy of the dataset per iteration, so the epoch must be set on the
    parent's copy before they start; persistent workers advance their own copy (WebImageTextDataset.__iter__).
    """

    def __init__(self, dataset: WebImageTextDataset, *, first_epoch: int, **kwargs: Any):
        super().__init__(dataset, **kwargs)
        self.next_epoch = first_epoch
        self.leftover: dict[str, Any] = {}  # drops after a pass's last batch: they ride on the next pass's first

    def __iter__(self):
        self.dataset.set_epoch(self.next_epoch)
        self.next_epoch += 1
        return delivered(super().__iter__(), getattr(self.dataset, "source", "data"), self.leftover)


def build_dataloader(
    spec: DataSpec,
    *,
    resolution: int,
    batch_size: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    epoch: int = 0,
    pin_memory: bool = False,
) -> EpochDataLoader:
    dataset = build_webdataset(
        spec, resolution=resolution, batch_size=batch_size, seed=seed, rank=rank, world_size=world_size, epoch=epoch
    )
    return epoch_loader(dataset, spec, seed=seed, first_epoch=epoch, pin_memory=pin_memory)


def epoch_loader(
    dataset: IterableDataset, spec: DataSpec, *, seed: int, first_epoch: int = 0, pin_memory: bool = False
) -> EpochDataLoader:
    """The loader of every batched dataset (shards, folders, latent caches): batches come made, workers per spec."""
    workers = spec.num_workers
    return EpochDataLoader(
        dataset,
        first_epoch=first_epoch,
        batch_size=None,
        num_workers=workers,
        persistent_workers=spec.persistent_workers and workers > 0,
        pin_memory=pin_memory,
        # the loader's own generator: starting an epoch must not draw from the global RNG, which the
        # training step owns and checkpoints restore (exact resume)
        generator=torch.Generator().manual_seed(seed),
    )
