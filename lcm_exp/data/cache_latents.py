"""Encode image-text shards once into a latent cache: ``python -m lcm_exp.data.cache_latents --out DIR [overrides]``.

The overrides are the training run's (``model=... data.shards=... trainer.mixed_precision=...``): the cache is
made with that teacher's VAE and text encoders at ``model.resolution``, in the run's compute dtype, from one
ordered pass over the shards (``data.resampled`` and the shuffle buffer are ignored). Train from it with
``data.source=latent_cache 'data.shards="<DIR>/latents-{000000..N}.tar"'`` (the command prints the value).

    python -m lcm_exp.data.cache_latents --out data/latents model=sd15 'data.shards="/d/s-{000..099}.tar"' \\
        trainer.mixed_precision=fp16
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

import torch

log = logging.getLogger(__name__)


def build_cache(
    cfg,
    out_dir,
    *,
    batch_size: int = 16,
    samples_per_shard: int = 1000,
    max_samples: int | None = None,
    overwrite: bool = False,
    device: str | None = None,
    family=None,
):
    """Write the cache for a composed RunConfig; returns (meta, data.shards spec). ``family``: reuse a built one."""
    from lcm_exp.data.latent_cache import meta_for, shards_spec, write_latent_cache
    from lcm_exp.data.webdataset_pipeline import build_dataloader
    from lcm_exp.models.precision import frozen_dtype
    from lcm_exp.models.registry import get_family
    from lcm_exp.train.data import data_spec_from_config

    if family is None:
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        device = torch.device(device)
        frozen = frozen_dtype(cfg.perf.frozen_dtype, cfg.trainer.mixed_precision, device)
        family = get_family(cfg.model.family)(cfg.model, device=device, weight_dtype=frozen)
    spec = dataclasses.replace(data_spec_from_config(cfg.data), resampled=False, shuffle_buffer=0)
    loader = build_dataloader(spec, resolution=cfg.model.resolution, batch_size=batch_size, seed=cfg.seed)
    meta = write_latent_cache(
        family,
        loader,
        out_dir,
        meta_for(family, spec, cfg.seed),
        samples_per_shard=samples_per_shard,
        max_samples=max_samples,
        overwrite=overwrite,
    )
    return meta, shards_spec(out_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for the cache shards and cache_meta.json")
    parser.add_argument("--batch-size", type=int, default=16, help="images per VAE/text-encoder call")
    parser.add_argument("--samples-per-shard", type=int, default=1000)
    parser.add_argument("--max-samples", type=int, default=None, help="stop after this many samples")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing cache in --out")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the training run (model=..., data...)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from lcm_exp.bench.compose import compose_run_config

    cfg = compose_run_config(args.overrides)
    meta, spec = build_cache(
        cfg,
        args.out,
        batch_size=args.batch_size,
        samples_per_shard=args.samples_per_shard,
        max_samples=args.max_samples,
        overwrite=args.overwrite,
        device=args.device,
    )
    print(f"cached {meta.num_samples} samples ({meta.num_skipped} source samples skipped) in {args.out}")
    print(f"train from it with: data.source=latent_cache 'data.shards=\"{spec}\"'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
