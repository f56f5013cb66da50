"""Map-style image-text sources (an image folder, a `datasets` dataset) as the same batch stream as WebDataset.

A source only says how many records it has and how to read record i as raw fields. Everything after that is the
WebDataset path's own code: the sample becomes a webdataset-like dict (image bytes, caption fields, a json of its
scalar metadata) that ``SampleDecoder`` turns into a training sample, with the same captions, filters, size
conditioning, pixel budget and ``ImageTransform``; drops are counted by ``SkipCounter`` and ride on the next batch
in the same fields. So a model trained from a folder sees exactly what it would see from shards of that folder.

Order: each epoch is a seeded permutation of all records (the same on every rank), split into disjoint strided
slices per rank, then per DataLoader worker. ``data.shuffle_buffer <= 1`` keeps the records in order.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from collections.abc import Iterator
from typing import Any, Protocol

from torch.utils.data import IterableDataset, get_worker_info

from lcm_exp.data.decode import SampleDecoder
from lcm_exp.data.shards import check_partition, seed_for
from lcm_exp.data.skips import SkipCounter, guarded
from lcm_exp.data.spec import DataSpec
from lcm_exp.data.webdataset_pipeline import collate

logger = logging.getLogger(__name__)

IMAGE_FIELD = "__image__"  # where a record's image bytes go in the webdataset-like sample


@dataclasses.dataclass
class Record:
    key: str  # names the sample in logs and batch["keys"]
    image: bytes
    fields: dict[str, Any]  # caption candidates and metadata (filters, original size) by column name


class RecordReader(Protocol):
    name: str  # the source in messages and in the batch's skipped_by_shard

    def __len__(self) -> int: ...

    def read(self, index: int) -> Record:
        """Record ``index``; raise SkipSample (or anything) for a bad one: it is counted and skipped."""


def record_spec(spec: DataSpec, caption_column: str | None) -> DataSpec:
    """The spec SampleDecoder needs for records: the image in IMAGE_FIELD, captions from the named column (or the
    first of ``caption_keys`` present), the metadata as the json."""
    keys = [caption_column] if caption_column else list(spec.caption_keys)
    return dataclasses.replace(spec, image_keys=[IMAGE_FIELD], caption_keys=keys, caption_json_field=None)


def scalar_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The metadata part of a record (what filters and size keys can read), json-safe."""
    return {k: v for k, v in fields.items() if v is None or isinstance(v, str | int | float | bool)}


def as_sample(record: Record) -> dict[str, Any]:
    return {
        **record.fields,
        "__key__": record.key,
        IMAGE_FIELD: record.image,
        "json": json.dumps(scalar_fields(record.fields)),
    }


class IndexedImageTextDataset(IterableDataset):
    """Yields batches as in the data contract (and the WebDataset pipeline's skip fields); one pass is one epoch."""

    def __init__(
        self,
        reader: RecordReader,
        spec: DataSpec,
        *,
        caption_column: str | None,
        resolution: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        epoch: int = 0,
    ):
        super().__init__()
        check_partition(batch_size, rank, world_size)
        if len(reader) < world_size:
            raise ValueError(f"{reader.name}: {len(reader)} record(s) cannot be split over {world_size} ranks")
        self.reader, self.spec = reader, spec
        self.source = f"data.path={reader.name!r}"  # what its data stops name
        self.decoder = SampleDecoder(record_spec(spec, caption_column), resolution)
        self.batch_size, self.seed, self.rank, self.world_size, self.epoch = batch_size, seed, rank, world_size, epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self, epoch: int, worker: int, num_workers: int) -> list[int]:
        order = list(range(len(self.reader)))
        if self.spec.shuffle_buffer > 1:
            random.Random(seed_for("records", self.seed, epoch)).shuffle(order)
        return order[self.rank :: self.world_size][worker::num_workers]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        epoch = self.epoch
        self.epoch += 1  # persistent workers keep their copy: the next pass is the next epoch
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        counter = SkipCounter(self.spec.max_consecutive_skips, self.source)
        rng = random.Random(seed_for("transforms", self.seed, self.rank, worker, epoch))
        yield from guarded(self._batches(self.indices(epoch, worker, num_workers), counter, rng), counter)
        if counter.totals:
            logger.info("%s rank %d worker %d epoch %d: dropped %s", self.reader.name, self.rank, worker, epoch,
                        dict(counter.totals))  # fmt: skip

    def _batches(self, indices: list[int], counter: SkipCounter, rng: random.Random) -> Iterator[dict[str, Any]]:
        batch: list[dict] = []
        for index in indices:
            key = f"#{index}"
            try:
                record = self.reader.read(index)
                key = record.key
                sample = self.decoder(as_sample(record), rng)
            except Exception as exn:  # one bad record drops that record only, counted and logged
                counter.record(exn, url=self.reader.name, key=key)
                continue
            counter.ok()
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield collate(batch, counter.take())
                batch = []
        if batch:
            yield collate(batch, counter.take())
