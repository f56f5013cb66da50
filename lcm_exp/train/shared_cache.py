"""``data.cache``: a latent cache made automatically where data repeats, shared by every run that reads the same data
with the same teacher and settings (every job of a sweep, every epoch of a finite dataset).

``auto`` caches local data (shard files, an image folder) of at most ``data.cache_max_samples`` samples whose
per-sample transform is deterministic (center crop, no flip, the first caption: a cache freezes one crop per
sample, which random crops, flips or caption choices would lose) when the run reads it more than once or is a job
of a sweep. Streams read once (``pipe:``, remote shards, one pass) keep encoding on the fly. ``always`` caches any
local data; ``never`` never does.

The cache folder is named by a hash of everything the encoded tensors depend on (teacher and its weight files, VAE
and its dtype, text encoders and their dtype, resolution, every decoding setting, the data), so a run can only
find a cache made for it. It is built once under a file lock (parallel jobs wait, then read it), written to a
temporary folder and renamed, and reused by later runs and reruns.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import tarfile
from pathlib import Path
from typing import Any

import torch

from lcm_exp.data.latent_cache import FORMAT_VERSION, META_FILE, meta_for, shards_spec, write_latent_cache
from lcm_exp.data.shards import expand_shards

log = logging.getLogger(__name__)

CACHE_ROOT = "latents"
#: DataSpec fields that only decide the order and the workers, not what a sample encodes to
_STREAM_ONLY = {"shards", "resampled", "shuffle_buffer", "num_workers", "persistent_workers", "max_consecutive_skips",
                "stall_timeout_s"}


@dataclasses.dataclass(frozen=True)
class CachePlan:
    use: bool
    reason: str
    samples: int | None = None


def plan_cache(cfg, world_size: int) -> CachePlan:
    """Whether this run reads its data through the shared cache, and why (logged either way)."""
    data = cfg.data
    if data.cache == "never" or data.source == "latent_cache":
        return CachePlan(False, f"data.cache={data.cache}, data.source={data.source}")
    samples = count_local_samples(data)
    if samples is None:
        return CachePlan(False, "the data is not local shard files or an image folder that can be counted "
                                "(a stream is encoded as it is read)")
    if data.cache == "always":
        return CachePlan(True, "data.cache=always", samples)
    random = [k for k, bad in (("data.crop=random", data.crop == "random"), ("data.random_flip=true", data.random_flip),
                               ("data.caption_choice=random", data.caption_choice == "random")) if bad]  # fmt: skip
    if random:
        return CachePlan(False, f"{', '.join(random)} draws anew every epoch, a cache would freeze it", samples)
    if samples > data.cache_max_samples:
        return CachePlan(False, f"{samples} samples > data.cache_max_samples={data.cache_max_samples}", samples)
    tr = cfg.trainer
    needed = tr.max_train_steps * tr.batch_size * world_size * tr.gradient_accumulation_steps
    if cfg.sweep.overrides:
        return CachePlan(True, "a sweep job: every job of the sweep reads the same data", samples)
    if needed > samples:
        return CachePlan(True, f"{needed} samples read from {samples}: the data repeats", samples)
    return CachePlan(False, f"{needed} samples read from {samples}: one pass, encoded on the fly", samples)


def count_local_samples(data) -> int | None:
    """Samples in local shard files (distinct keys in the tar headers) or an image folder; None when not local."""
    if data.source == "imagefolder":
        from lcm_exp.data.image_folder_source import ImageFolderReader

        return len(ImageFolderReader(data.path, data.caption_column))
    if data.source != "webdataset":
        return None
    urls = expand_shards(data.shards)
    if any(u.startswith("pipe:") or "://" in u for u in urls):
        return None
    counts = [_tar_keys(Path(u.removeprefix("file:"))) for u in urls]
    return None if None in counts else sum(counts)


def _tar_keys(path: Path) -> int | None:
    """Distinct sample keys in a tar's headers; None for a damaged one (its samples are judged when read)."""
    try:
        with tarfile.open(path) as tar:
            return len({m.name.split(".", 1)[0] for m in tar if m.isfile()})
    except (tarfile.TarError, OSError):
        return None


def cache_key(cfg, family) -> dict[str, Any]:
    """Everything an encoded sample depends on; the cache folder is named by its hash."""
    from lcm_exp.train.data import data_spec_from_config

    spec = dataclasses.asdict(data_spec_from_config(cfg.data))
    data = {k: v for k, v in spec.items() if k not in _STREAM_ONLY}
    data.update(source=cfg.data.source, shards=_shard_stamps(cfg.data), path=cfg.data.path,
                caption_column=cfg.data.caption_column)  # fmt: skip
    return {
        "format": FORMAT_VERSION,
        "family": family.name,
        "teacher": _teacher_stamp(family),
        "vae": [str(cfg.model.vae), str(family.vae_dtype)],
        "text_dtype": str(family.weight_dtype),
        "resolution": cfg.model.resolution,
        "data": data,
    }


def _teacher_stamp(family) -> dict[str, Any]:
    """The teacher by name, revision and variant, plus size and mtime of its local weight files (a rebuilt folder is
    another teacher)."""
    folder = Path(family.teacher).expanduser()
    files = {}
    if folder.is_dir():
        for path in sorted(folder.glob("*/*.safetensors")) + sorted(folder.glob("*/*.bin")):
            stat = path.stat()
            files[str(path.relative_to(folder))] = [stat.st_size, stat.st_mtime_ns]
    name = str(folder.resolve()) if folder.is_dir() else family.teacher
    return {"name": name, "revision": family.revision, "variant": family.cfg.variant, "files": files}


def _shard_stamps(data) -> list | None:
    if data.source != "webdataset":
        return None
    return [[u, os.path.getsize(u.removeprefix("file:"))] for u in expand_shards(data.shards)]


def ensure_cache(cfg, family, samples: int, world_size: int) -> tuple[str, Path]:
    """(data.shards of the cache, its folder): reused when complete, else built once under a lock."""
    key = cache_key(cfg, family)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    root = Path(cfg.paths.cache_dir) / CACHE_ROOT
    root.mkdir(parents=True, exist_ok=True)
    folder = root / digest
    with open(root / f"{digest}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel jobs of a sweep wait here for the first one's cache
        try:
            if not (folder / META_FILE).is_file():
                _build(cfg, family, key, folder, samples, world_size)
            else:
                log.info("latent cache: reusing %s", folder)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return shards_spec(folder), folder


def _build(cfg, family, key: dict, folder: Path, samples: int, world_size: int) -> None:
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    per_shard = max(1, min(1000, math.ceil(samples / max(8, world_size))))  # enough shards to split over ranks
    log.info("latent cache: encoding %d samples once into %s", samples, folder)
    build_cache(cfg, family, tmp, samples_per_shard=per_shard, key=key)
    os.replace(tmp, folder)


def build_cache(cfg, family, out_dir, *, batch_size: int | None = None, samples_per_shard: int = 1000,
                max_samples: int | None = None, overwrite: bool = False, key: dict | None = None):  # fmt: skip
    """Encode one ordered pass over the run's data (any source) with ``family`` into a cache in ``out_dir``;
    returns (meta, its data.shards spec). The shared cache, the cache CLI and the benchmark all write through here."""
    from lcm_exp.train.data import build_train_loader, data_spec_from_config

    one_pass = dataclasses.replace(cfg.data, resampled=False, shuffle_buffer=0)
    loader = build_train_loader(one_pass, resolution=cfg.model.resolution, seed=cfg.seed, rank=0, world_size=1,
                                batch_size=batch_size or cfg.trainer.batch_size)  # fmt: skip
    meta = meta_for(family, data_spec_from_config(one_pass), cfg.seed)
    if key is not None:
        meta.source["key"] = key
    meta = write_latent_cache(family, iter(loader), out_dir, meta, samples_per_shard=samples_per_shard,
                              max_samples=max_samples, overwrite=overwrite)  # fmt: skip
    return meta, shards_spec(out_dir)


def frozen_family(cfg, device: str | torch.device | None = None, family_cls: type | None = None):
    """The run's family with its frozen networks in the run's frozen dtype (what encodes a cache outside a run)."""
    from lcm_exp.models.precision import frozen_dtype
    from lcm_exp.models.registry import get_family

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    frozen = frozen_dtype(cfg.perf.frozen_dtype, cfg.trainer.mixed_precision, device)
    return (family_cls or get_family(cfg.model.family))(cfg.model, device=device, weight_dtype=frozen)


def with_shared_cache(cfg, family, world_size: int):
    """``cfg`` reading its data through the shared cache when ``plan_cache`` says so, else ``cfg`` unchanged."""
    plan = plan_cache(cfg, world_size)
    log.info("latent cache: %s (%s)", "on" if plan.use else "off", plan.reason)
    if not plan.use:
        return cfg
    shards, _ = ensure_cache(cfg, family, plan.samples, world_size)
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, source="latent_cache", shards=shards))

