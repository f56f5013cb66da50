"""Issue item 3: a run from the latent cache gives the same losses as a run from the images it was made from
(same samples, same seeds), because the cache keeps the VAE posterior and training still samples z0 from it."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from lcm_exp.bench.compose import compose_run_config
from lcm_exp.bench.runner import assemble
from lcm_exp.config.schema import ModelConfig, SDXLModelConfig
from lcm_exp.data.latent_cache import (
    META_FILE,
    CachedLatentEncoder,
    LatentCacheError,
    build_cached_dataloader,
    load_meta,
    meta_for,
    shards_spec,
    write_latent_cache,
)
from lcm_exp.data.make_shards import write_shards
from lcm_exp.data.spec import DataSpec
from lcm_exp.data.synthetic import synthetic_samples
from lcm_exp.data.webdataset_pipeline import build_dataloader
from lcm_exp.models.tiny import ensure_tiny_teacher
from lcm_exp.train.encoders import FamilyEncoder
from lcm_exp.train.shared_cache import build_cache, frozen_family

RES, BATCH = 64, 4


@pytest.fixture(scope="module")
def shard(tmp_path_factory) -> str:
    """One shard of 8 captioned images of mixed sizes (one shard keeps the image and cache sample orders equal)."""
    out = tmp_path_factory.mktemp("shards")
    [path] = write_shards(synthetic_samples(8, seed=1, sizes=[(48, 48), (40, 64), (72, 56)]), out, samples_per_shard=8)
    return str(path)


@pytest.fixture(scope="module")
def accelerator():
    from accelerate import Accelerator

    return Accelerator(mixed_precision="no", cpu=True)


def _cfg(cache_dir, shard, *extra):
    return compose_run_config(
        [
            "model=tiny_sd15",
            f"model.resolution={RES}",
            f"trainer.batch_size={BATCH}",
            f"paths.cache_dir={cache_dir}",
            f"data.shards={shard}",
            "data.resampled=false",
            "data.shuffle_buffer=0",
            "data.crop=random",
            "adapter.cond_proj_init=random",
            *extra,
        ]
    )


def test_cached_run_gives_the_same_losses_as_the_image_run(cache_dir, shard, tmp_path, accelerator):
    cfg = _cfg(cache_dir, shard)
    meta, spec = build_cache(cfg, frozen_family(cfg, "cpu"), tmp_path / "cache", batch_size=BATCH)
    assert meta.num_samples == 8 and (tmp_path / "cache" / META_FILE).is_file()
    cached_cfg = _cfg(cache_dir, shard, "data.source=latent_cache")

    losses = {}
    for name, c in (("images", cfg), ("cache", cached_cfg)):
        built = assemble(c, accelerator, cache_shards=spec if name == "cache" else None)
        batches = [next(built.stream) for _ in range(2)]  # first: the image pipeline draws from torch's RNG
        torch.manual_seed(123)  # the same random stream for the VAE sample, grid index, noise and w
        losses[name] = [built.run.step(b).out.loss.item() for b in batches]
        losses[name + "_keys"] = [b["keys"] for b in batches]
        accelerator.free_memory()

    assert losses["images_keys"] == losses["cache_keys"]
    assert losses["images"][0] > 0 and losses["images"][0] != losses["images"][1]
    for a, b in zip(
        losses["images"], losses["cache"], strict=True
    ):  # bitwise equal here; step 2 also needs equal gradients
        assert abs(a - b) <= 1e-6 * abs(a)


@pytest.mark.parametrize("kind", ["sd15", "sdxl"])
def test_cached_batch_encodes_to_the_same_latents_and_conditioning(cache_dir, shard, tmp_path, kind):
    from lcm_exp.models.registry import get_family

    teacher = ensure_tiny_teacher(kind, cache_dir)
    model_cfg = (SDXLModelConfig if kind == "sdxl" else ModelConfig)(family=kind, teacher=str(teacher), resolution=RES)
    family = get_family(kind)(model_cfg)
    spec = DataSpec(shards=shard, resampled=False, shuffle_buffer=0, num_workers=0, crop="random", random_flip=True)
    loader = lambda: build_dataloader(spec, resolution=RES, batch_size=BATCH, seed=3)  # noqa: E731
    meta = write_latent_cache(family, loader(), tmp_path, meta_for(family, spec, 3), samples_per_shard=5)
    cached = build_cached_dataloader(
        dataclasses.replace(spec, shards=shards_spec(tmp_path)), resolution=RES, batch_size=BATCH, seed=3
    )
    image_batch, cached_batch = next(iter(loader())), next(iter(cached))
    assert image_batch["keys"] == cached_batch["keys"]
    assert "pixel_values" not in cached_batch

    plain, from_cache = FamilyEncoder(family, torch.float32), CachedLatentEncoder(family, meta, torch.float32)
    torch.manual_seed(9)
    z_images = plain.latents(image_batch)
    torch.manual_seed(9)
    z_cache = from_cache.latents(cached_batch)
    torch.testing.assert_close(z_cache, z_images, rtol=1e-6, atol=1e-6)
    assert z_images.shape == (BATCH, 4, RES // 8, RES // 8)

    (cond_i, uncond_i), (cond_c, uncond_c) = plain.conditioning(image_batch), from_cache.conditioning(cached_batch)
    for a, b in ((cond_i, cond_c), (uncond_i, uncond_c)):
        for field in ("prompt_embeds", "pooled_embeds", "time_ids"):
            x, y = getattr(a, field), getattr(b, field)
            assert (x is None) == (y is None), field
            if x is not None:
                torch.testing.assert_close(y, x, rtol=1e-6, atol=1e-6)
    if kind == "sdxl":  # time_ids really carry each sample's recorded original size and crop
        assert cond_c.time_ids[:, :2].tolist() == cached_batch["original_size"].float().tolist()
        assert cond_c.time_ids[:, 2:4].tolist() == cached_batch["crop_top_left"].float().tolist()


def test_cache_refuses_a_run_it_was_not_made_for(cache_dir, shard, tmp_path):
    from lcm_exp.models.sd15 import SD15Family

    family = SD15Family(ModelConfig(family="sd15", teacher=str(ensure_tiny_teacher("sd15", cache_dir)), resolution=RES))
    spec = DataSpec(shards=shard, resampled=False, shuffle_buffer=0, num_workers=0)
    write_latent_cache(
        family,
        build_dataloader(spec, resolution=RES, batch_size=8, seed=0),
        tmp_path,
        meta_for(family, spec, 0),
        max_samples=3,
    )
    cached = dataclasses.replace(spec, shards=shards_spec(tmp_path))
    assert load_meta(cached).num_samples == 3
    with pytest.raises(LatentCacheError, match="resolution: cache 64, run 128"):
        build_cached_dataloader(cached, resolution=128, batch_size=2, seed=0)
    with pytest.raises(LatentCacheError, match="teacher"):
        build_cached_dataloader(cached, resolution=RES, batch_size=2, seed=0, meta_check={"teacher": "other"})
    with pytest.raises(ValueError, match="1 shard.* cannot be split over 2 ranks"):  # a rank would stall DDP
        build_cached_dataloader(cached, resolution=RES, batch_size=2, seed=0, rank=1, world_size=2)
    with pytest.raises(ValueError, match="need 0 <= rank < world_size"):
        build_cached_dataloader(dataclasses.replace(cached, resampled=True), resolution=RES, batch_size=2, seed=0,
                                rank=2, world_size=2)  # fmt: skip
    with pytest.raises(FileExistsError, match="already holds a latent cache"):
        write_latent_cache(family, [], tmp_path, meta_for(family, spec, 0))
    meta = json.loads((tmp_path / META_FILE).read_text())
    assert meta["posterior_dtype"] == "float32" and meta["scaling_factor"] == pytest.approx(0.18215)
