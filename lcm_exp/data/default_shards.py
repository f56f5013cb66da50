"""The embedded default data: synthetic captioned shapes, written once into the cache as WebDataset shards."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from lcm_exp.data.shards import brace_spec

SAMPLES_PER_SHARD = 128


def ensure_synthetic_shards(cache_dir: str | Path, num_samples: int, seed: int = 0) -> str:
    """Brace spec of ``num_samples`` synthetic samples under ``cache_dir``; built atomically on first use (the writer,
    which imports torch, only then: resolving the spec of built shards stays light for config validation)."""
    folder = Path(cache_dir) / f"synthetic-shards-n{num_samples}-s{seed}"
    if not folder.is_dir():
        from lcm_exp.data.make_shards import write_shards
        from lcm_exp.data.synthetic import synthetic_samples

        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-synthetic-", dir=folder.parent))
        write_shards(synthetic_samples(num_samples, seed=seed), tmp, samples_per_shard=SAMPLES_PER_SHARD)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process won the race: use its shards
            shutil.rmtree(tmp, ignore_errors=True)
    return brace_spec(sorted(folder.glob("shard-*.tar")))
