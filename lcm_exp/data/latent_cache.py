"""Latent and text cache: encode shards once, then train without running the VAE or the text encoders.

Each cached sample keeps the VAE's latent *distribution* (its mean and log-variance, i.e. the posterior's
``parameters``), not one latent: training still draws z0 = (mean + std * noise) * scaling_factor on every step,
with the same diffusers code and dtype as ``ModelFamily.encode_images``, so a run from the cache has the same
math as one from images. Also kept: the prompt embeddings (and SDXL pooled embeddings) as the text encoders
produced them, the original size and crop (SDXL time_ids are rebuilt from them and the run's config), the caption.
The crop and flip of a sample are those drawn when the cache was written (fixed for every epoch).

Layout: WebDataset tar shards ``latents-NNNNNN.tar`` (per sample ``<key>.st``, a safetensors blob, and
``<key>.txt``) beside ``cache_meta.json``; the loop reads them with ``build_cached_dataloader`` (same shard,
rank and worker splitting as the image pipeline) and encodes with ``CachedLatentEncoder``.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import webdataset as wds
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch.utils.data import DataLoader, IterableDataset

from lcm_exp.conditioning import Conditioning
from lcm_exp.data.make_shards import _ShardFile
from lcm_exp.data.shards import (
    brace_spec,
    check_partition,
    check_shard_split,
    expand_shards,
    finite_shards,
    resampled_shards,
    seed_for,
)
from lcm_exp.data.spec import DataSpec

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
META_FILE = "cache_meta.json"
SHARD_PREFIX = "latents"
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class LatentCacheError(ValueError):
    """A cache that does not fit the run (other teacher, resolution, ...) or a malformed cached sample."""


@dataclass
class CacheMeta:
    family: str
    teacher: str
    resolution: int
    scaling_factor: float
    posterior_dtype: str  # the VAE's dtype when encoding: sampling repeats it
    text_dtype: str
    num_samples: int = 0
    num_skipped: int = 0  # bad source samples dropped while caching
    source: dict[str, Any] = field(default_factory=dict)  # shards, crop, flip, interpolation, seed
    format_version: int = FORMAT_VERSION

    def write(self, folder: Path) -> None:
        (folder / META_FILE).write_text(json.dumps(asdict(self), indent=1, sort_keys=True))

    @classmethod
    def read(cls, folder: Path) -> CacheMeta:
        path = folder / META_FILE
        if not path.is_file():
            raise LatentCacheError(
                f"{folder} is not a latent cache: no {META_FILE} (write one with "
                "`python -m lcm_exp.data.cache_latents`)"
            )
        data = json.loads(path.read_text())
        if data.get("format_version") != FORMAT_VERSION:
            raise LatentCacheError(f"{path}: format_version {data.get('format_version')}, expected {FORMAT_VERSION}")
        return cls(**data)

    def check(self, family: str, teacher: str, resolution: int) -> None:
        """Refuse a cache made for another teacher family, teacher or resolution (the latents would not fit)."""
        wrong = [
            f"{k}: cache {have!r}, run {want!r}"
            for k, have, want in (
                ("family", self.family, family),
                ("teacher", self.teacher, teacher),
                ("resolution", self.resolution, resolution),
            )
            if have != want
        ]
        if wrong:
            raise LatentCacheError("latent cache does not match the run (" + "; ".join(wrong) + ")")


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# ---------------------------------------------------------------------------------------------------- writing


def _own(t: torch.Tensor) -> torch.Tensor:
    """A contiguous CPU copy with its own storage (safetensors refuses views and strided tensors)."""
    return t.detach().cpu().clone(memory_format=torch.contiguous_format)


@torch.no_grad()
def encode_batch(family, batch: dict[str, Any]) -> list[tuple[str, dict[str, torch.Tensor], str]]:
    """(key, tensors, caption) per sample: the VAE posterior's parameters and the text encoders' embeddings."""
    pixels = batch["pixel_values"].to(family.device, family.vae_dtype)
    posterior = family.vae.encode(pixels).latent_dist.parameters
    cond = family.encode_text(batch)
    out = []
    for i, key in enumerate(batch["keys"]):
        tensors = {
            "posterior": _own(posterior[i]),
            "prompt_embeds": _own(cond.prompt_embeds[i]),
            "original_size": _own(batch["original_size"][i]),
            "crop_top_left": _own(batch["crop_top_left"][i]),
        }
        if cond.pooled_embeds is not None:
            tensors["pooled_embeds"] = _own(cond.pooled_embeds[i])
        out.append((key, tensors, batch["captions"][i]))
    return out


def write_latent_cache(
    family,
    batches: Iterable[dict[str, Any]],
    out_dir: str | Path,
    meta: CacheMeta,
    *,
    samples_per_shard: int = 1000,
    max_samples: int | None = None,
    overwrite: bool = False,
) -> CacheMeta:
    """Encode ``batches`` (the image pipeline's batches) into shards under ``out_dir``; returns the written meta.

    Each shard is written under a temporary name and renamed when complete; the meta file is written last, so a
    folder with a meta file is a complete cache.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    old = sorted(out.glob(f"{SHARD_PREFIX}-*.tar"))
    if (old or (out / META_FILE).exists()) and not overwrite:
        raise FileExistsError(f"{out} already holds a latent cache; pass overwrite=True (--overwrite)")
    for path in [*old, out / META_FILE]:
        path.unlink(missing_ok=True)
    shard: _ShardFile | None = None
    count = 0
    try:
        for batch in batches:
            meta.num_skipped += int(batch.get("num_skipped", 0))
            for key, tensors, caption in encode_batch(family, batch):
                if max_samples is not None and count >= max_samples:
                    break
                if shard is None or shard.count == samples_per_shard:
                    if shard is not None:
                        shard.commit()
                    shard = _ShardFile(out / f"{SHARD_PREFIX}-{count // samples_per_shard:06d}.tar")
                shard.write({"__key__": key, "st": st_save(tensors), "txt": caption.encode("utf-8")})
                count += 1
            if max_samples is not None and count >= max_samples:
                break
        if shard is not None:
            shard.commit()
    except BaseException:
        if shard is not None:
            shard.abort()
        raise
    if count == 0:
        raise LatentCacheError("no samples were cached: the data source yielded nothing")
    meta.num_samples = count
    meta.write(out)
    log.info("cached %d samples in %s (%d source samples skipped)", count, out, meta.num_skipped)
    return meta


def shards_spec(folder: str | Path) -> str:
    """The ``data.shards`` value for a cache folder (a brace range over its shards)."""
    paths = sorted(Path(folder).glob(f"{SHARD_PREFIX}-*.tar"))
    if not paths:
        raise LatentCacheError(f"{folder} holds no {SHARD_PREFIX}-*.tar shards")
    return brace_spec(paths)


# ---------------------------------------------------------------------------------------------------- reading


def cache_folder(spec: DataSpec) -> Path | None:
    """The folder holding the shards of ``spec`` (their meta file), when they are local and in one folder."""
    urls = expand_shards(spec.shards)
    folders = {Path(u.removeprefix("file:")).parent for u in urls}
    if any(u.startswith("pipe:") or "://" in u for u in urls) or len(folders) != 1:
        return None
    return folders.pop()


def _decode(raw: dict[str, Any]) -> dict[str, Any]:
    key = raw.get("__key__")
    if "st" not in raw:
        raise LatentCacheError(f"cached sample {key!r} in {raw.get('__url__')} has no .st member")
    sample = st_load(raw["st"])
    sample["key"] = key
    sample["caption"] = raw["txt"].decode("utf-8") if "txt" in raw else ""
    return sample


def collate_cached(samples: list[dict[str, Any]]) -> dict[str, Any]:
    batch = {
        "posterior": torch.stack([s["posterior"] for s in samples]),
        "prompt_embeds": torch.stack([s["prompt_embeds"] for s in samples]),
        "original_size": torch.stack([s["original_size"] for s in samples]),
        "crop_top_left": torch.stack([s["crop_top_left"] for s in samples]),
        "captions": [s["caption"] for s in samples],
        "keys": [s["key"] for s in samples],
        "num_skipped": 0,
    }
    if "pooled_embeds" in samples[0]:
        batch["pooled_embeds"] = torch.stack([s["pooled_embeds"] for s in samples])
    return batch


class CachedLatentDataset(IterableDataset):
    """Batches of cached samples, with the image pipeline's shard order, resampling and rank/worker splitting."""

    def __init__(
        self, spec: DataSpec, *, batch_size: int, seed: int, rank: int = 0, world_size: int = 1, epoch: int = 0
    ):
        super().__init__()
        check_partition(batch_size, rank, world_size)
        self.urls = expand_shards(spec.shards)
        check_shard_split(spec.shards, self.urls, spec.resampled, world_size)
        self.spec, self.batch_size, self.seed = spec, batch_size, seed
        self.rank, self.world_size, self.epoch = rank, world_size, epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        epoch = self.epoch
        self.epoch += 1
        _, _, worker, _ = wds.utils.pytorch_worker_info()
        if self.spec.resampled:
            shards = resampled_shards(self.urls, seed=self.seed, epoch=epoch, rank=self.rank, worker=worker)
        else:
            shards = finite_shards(self.urls, seed=self.seed, epoch=epoch, rank=self.rank, world_size=self.world_size)
        samples: Iterable[dict] = wds.tarfile_to_samples()(shards)
        if self.spec.shuffle_buffer > 1:
            rng = random.Random(seed_for("cached-samples", self.seed, self.rank, worker, epoch))
            samples = wds.shuffle(self.spec.shuffle_buffer, self.spec.shuffle_buffer, rng=rng)(samples)
        batch: list[dict] = []
        for raw in samples:
            batch.append(_decode(raw))
            if len(batch) == self.batch_size:
                yield collate_cached(batch)
                batch = []
        if batch:
            yield collate_cached(batch)


def build_cached_dataloader(
    spec: DataSpec,
    *,
    resolution: int,
    batch_size: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    epoch: int = 0,
    pin_memory: bool = False,
    meta_check: dict[str, str] | None = None,
) -> DataLoader:
    """``build_dataloader``'s twin for ``data.source=latent_cache``. The cache's meta file must agree with the
    run's resolution (and ``meta_check``: family / teacher, when given)."""
    from lcm_exp.data.webdataset_pipeline import epoch_loader

    folder = cache_folder(spec)
    if folder is not None:
        meta = CacheMeta.read(folder)
        checks = meta_check or {}
        meta.check(checks.get("family", meta.family), checks.get("teacher", meta.teacher), resolution)
    else:
        log.warning(
            "data.shards %r are not local shards in one folder: the cache's meta file is not checked", spec.shards
        )
    dataset = CachedLatentDataset(spec, batch_size=batch_size, seed=seed, rank=rank, world_size=world_size, epoch=epoch)
    return epoch_loader(dataset, spec, seed=seed, first_epoch=epoch, pin_memory=pin_memory)


class CachedLatentEncoder:
    """``BatchEncoder`` for cached batches: samples z0 from the cached posterior on the device exactly as
    ``ModelFamily.encode_images`` does, and rebuilds (cond, uncond) with the family's own rules (SDXL time_ids
    from the run's config, the unconditional branch). Needs neither the VAE nor the text encoders."""

    def __init__(self, family, meta: CacheMeta, weight_dtype: torch.dtype):
        self.family, self.meta, self.weight_dtype = family, meta, weight_dtype
        self.posterior_dtype = _DTYPES[meta.posterior_dtype]
        text_dtype = _DTYPES[meta.text_dtype]
        if text_dtype != family.weight_dtype:
            log.warning(
                "latent cache text embeddings are %s, the run's text encoders %s: they are cast (write the "
                "cache with the run's trainer.mixed_precision for identical numbers)",
                text_dtype,
                family.weight_dtype,
            )

    @torch.no_grad()
    def latents(self, batch: dict[str, Any]) -> torch.Tensor:
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

        params = batch["posterior"].to(self.family.device, self.posterior_dtype)
        z0 = self.family.scale_latents(DiagonalGaussianDistribution(params).sample(None))  # SD3: shift too
        return z0.float().to(self.weight_dtype).contiguous()

    @torch.no_grad()
    def conditioning(self, batch: dict[str, Any]) -> tuple[Conditioning, Conditioning]:
        device, dtype = self.family.device, self.family.weight_dtype
        pooled = batch.get("pooled_embeds")
        pooled = None if pooled is None else pooled.to(device, dtype)
        cond = Conditioning(batch["prompt_embeds"].to(device, dtype), pooled)
        if pooled is not None:  # micro-conditioning (SDXL): the family's time_ids from sizes, crop and config
            cond.time_ids = self.family.time_ids(batch, len(cond))
        return cond, self.family.unconditional(cond)


def meta_for(family, spec: DataSpec, seed: int) -> CacheMeta:
    """The meta of a cache about to be written from ``spec`` with ``family``."""
    return CacheMeta(
        family=family.name,
        teacher=family.teacher,
        resolution=int(family.cfg.resolution),
        scaling_factor=float(family.vae.config.scaling_factor),
        posterior_dtype=_dtype_name(family.vae_dtype),
        text_dtype=_dtype_name(family.weight_dtype),
        source={
            "shards": spec.shards if isinstance(spec.shards, str) else list(spec.shards),
            "crop": spec.crop,
            "random_flip": spec.random_flip,
            "image_interpolation": spec.image_interpolation,
            "seed": seed,
        },
    )


def load_meta(spec: DataSpec) -> CacheMeta:
    folder = cache_folder(spec)
    if folder is None:
        raise LatentCacheError(f"data.shards {spec.shards!r}: a latent cache must be local shards in one folder")
    return CacheMeta.read(folder)
