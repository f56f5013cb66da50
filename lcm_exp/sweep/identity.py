"""What identifies a sweep job: its overrides (minus sweep bookkeeping), and the seed derived from them.

Two launches of the same job (a rerun of a named sweep, a requeue on SLURM) must agree on both, whatever the
order in which the overrides were given, so everything here is order-independent and free of time or randomness.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

SEED_BITS = 31  # fits every RNG that takes a signed 32-bit seed


def override_key(override: str) -> str:
    """``+loss.huber_c=0.1`` -> ``loss.huber_c``; ``model@x=sd15`` -> ``model``."""
    key = override.split("=", 1)[0].lstrip("+~")
    return key.split("@", 1)[0]


# how a job is run, not what it computes: the sweep preset and knobs, force, where files go, which tracker
BOOKKEEPING_GROUPS = ("sweep", "paths", "logger")


def is_bookkeeping(key: str) -> bool:
    return key == "force" or key.replace("/", ".").split(".", 1)[0] in BOOKKEEPING_GROUPS


def identity_overrides(overrides: Iterable[str]) -> list[str]:
    return sorted(o for o in overrides if not is_bookkeeping(override_key(o)))


def derive_seed(base_seed: int, overrides: Iterable[str]) -> int:
    """sha256 of the base seed and the sorted identity overrides, first 4 bytes big-endian, 31 bits."""
    text = "\n".join([str(int(base_seed)), *identity_overrides(overrides)])
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:4], "big") & ((1 << SEED_BITS) - 1)
