"""Peak memory of a stretch of work: max allocated on CUDA, peak resident set size (RSS) on CPU.

On CPU the kernel's high-water mark (VmHWM) is reset through /proc/self/clear_refs after returning freed heap to
the system (malloc_trim), so variants measured one after another in one process each get their own peak.
"""

from __future__ import annotations

import ctypes
import gc
import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)
_STATUS, _CLEAR = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def _status_kb(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def release_freed() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    def __init__(self, device: torch.device):
        self.device = device
        self.resettable = device.type == "cuda" or _CLEAR.exists()

    def current_bytes(self) -> int:
        if self.device.type == "cuda":
            return torch.cuda.memory_allocated(self.device)
        kb = _status_kb("VmRSS")
        return (kb or 0) * 1024

    def reset(self, release: bool = True) -> None:
        """Start a new peak here; ``release`` first hands freed heap back (do it between variants, not right
        before timed steps: the pages it returns would fault back in during the first one)."""
        if release:
            release_freed()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            _CLEAR.write_text("5")
        except OSError:
            if self.resettable:
                log.warning("cannot reset the RSS high-water mark: CPU peaks are since process start")
            self.resettable = False

    def peak_bytes(self) -> int:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device)
        kb = _status_kb("VmHWM")
        return (kb or 0) * 1024
