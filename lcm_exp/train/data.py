"""The one place that turns the ``data`` config into the training batch stream, whatever ``data.source`` is.

webdataset -> the shard pipeline; imagefolder / hf_dataset -> a map-style record reader behind the same decoding,
transforms, skip accounting and batch fields (lcm_exp.data.indexed_source). Every source is split per rank and per
DataLoader worker, and seeded from (seed, rank, worker, epoch).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, fields
from typing import Any

from lcm_exp.data.spec import DataSpec, FilterSpec

_SPEC_FIELDS = {f.name for f in fields(DataSpec)}


def data_spec_from_config(cfg) -> DataSpec:
    """The decoding/pipeline part of the data config (source selection keys and loop keys are not in DataSpec)."""
    values = {k: v for k, v in asdict(cfg).items() if k in _SPEC_FIELDS}
    values["filters"] = FilterSpec(**values["filters"])
    if values.get("shards") is None:
        values["shards"] = ""  # a map-style source has none
    return DataSpec(**values)


def build_train_loader(data_cfg, *, resolution: int, batch_size: int, seed: int, rank: int,
                       world_size: int) -> Iterable[dict[str, Any]]:  # fmt: skip
    """Batches of the data contract for this rank; each ``iter()`` is the next epoch (resampled shards: endless)."""
    from lcm_exp.data.webdataset_pipeline import build_dataloader, epoch_loader

    spec = data_spec_from_config(data_cfg)
    common = dict(resolution=resolution, batch_size=batch_size, seed=seed, rank=rank, world_size=world_size)
    if data_cfg.source == "webdataset":
        return build_dataloader(spec, **common)
    from lcm_exp.data.indexed_source import IndexedImageTextDataset

    reader = _reader(data_cfg)
    dataset = IndexedImageTextDataset(reader, spec, caption_column=data_cfg.caption_column, **common)
    return epoch_loader(dataset, spec, seed=seed)  # a pass that yields no batch raises, naming the source


def _reader(data_cfg):
    if data_cfg.source == "imagefolder":
        from lcm_exp.data.image_folder_source import ImageFolderReader

        return ImageFolderReader(data_cfg.path, data_cfg.caption_column, data_cfg.caption_keys)
    if data_cfg.source == "hf_dataset":
        from lcm_exp.data.hf_dataset_source import HFDatasetReader, load_hf_dataset

        dataset = load_hf_dataset(data_cfg.path, split=data_cfg.split, config_name=data_cfg.dataset_config)
        return HFDatasetReader(dataset, name=f"{data_cfg.path}[{data_cfg.split}]", image_column=data_cfg.image_column,
                               caption_column=data_cfg.caption_column, caption_keys=data_cfg.caption_keys)  # fmt: skip
    raise ValueError(f"data.source={data_cfg.source!r}: unknown, choose one of [webdataset, imagefolder, hf_dataset]")


def build_batches(cfg, family, weight_dtype, rank: int = 0, world_size: int = 1):
    """(loader, encoder) for a RunConfig: the encoder turns the loader's batches into (latents, cond, uncond),
    through the VAE and text encoders, or from a latent cache (data.source=latent_cache) that needs neither per
    step. The training loop and the benchmark both start from here."""
    from lcm_exp.train.encoders import FamilyEncoder

    kwargs = dict(resolution=cfg.model.resolution, batch_size=cfg.trainer.batch_size, seed=cfg.seed, rank=rank,
                  world_size=world_size)  # fmt: skip
    if cfg.data.source == "latent_cache":
        from lcm_exp.data.latent_cache import CachedLatentEncoder, build_cached_dataloader, load_meta

        spec = data_spec_from_config(cfg.data)
        meta_check = {"family": family.name, "teacher": family.teacher}
        loader = build_cached_dataloader(spec, meta_check=meta_check, **kwargs)
        return loader, CachedLatentEncoder(family, load_meta(spec), weight_dtype)
    return build_train_loader(cfg.data, **kwargs), FamilyEncoder(family, weight_dtype)
