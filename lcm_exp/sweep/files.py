"""Sweep-level files (multirun.yaml, summaries, plots) are rewritten only when their content changes.

A rerun of a finished named sweep skips every job; with this, it leaves the sweep dir exactly as it was (contents
and modification times), as a refused launch must.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_if_changed(path: Path, data: bytes | str) -> bool:
    """Atomically replace ``path`` with ``data`` unless it already holds exactly that; return whether it wrote."""
    path = Path(path)
    data = data.encode() if isinstance(data, str) else data
    if path.is_file() and path.read_bytes() == data:
        return False
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True
