"""Phase clocks for warm training steps.

CPU: wall-clock marks. CUDA: events recorded on the stream at each mark, read after the last step with one
synchronisation, so timing adds no host sync of its own (a per-step sync would hide the overlap that the
no-sync switch buys) and each phase is the GPU time between its marks.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict

import torch


class WallClock:
    """Wall-clock phases, plus the process's CPU seconds per step: on a shared machine the wall time of a step
    swings with other people's load, the CPU time it needs much less (with one thread; idle OpenMP threads spin)."""

    def __init__(self) -> None:
        self.steps: list[list[tuple[str, float]]] = []
        self.cpu_s: list[float] = []
        self._last = self._cpu = 0.0

    def step_start(self) -> None:
        self._cpu = time.process_time()
        self._last = time.perf_counter()
        self.steps.append([])

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.steps[-1].append((phase, now - self._last))
        self._last = now

    def step_end(self) -> None:
        self.cpu_s.append(time.process_time() - self._cpu)

    def finish(self) -> list[dict[str, float]]:
        return [_merge(step) for step in self.steps]


class CudaEventClock:
    def __init__(self) -> None:
        self.steps: list[list[tuple[str, torch.cuda.Event]]] = []
        self.cpu_s: list[float] = []  # not measured: the host mostly waits for the GPU

    def _event(self) -> torch.cuda.Event:
        ev = torch.cuda.Event(enable_timing=True)
        ev.record()
        return ev

    def step_start(self) -> None:
        self.steps.append([("", self._event())])

    def mark(self, phase: str) -> None:
        self.steps[-1].append((phase, self._event()))

    def step_end(self) -> None:
        pass

    def finish(self) -> list[dict[str, float]]:
        torch.cuda.synchronize()
        out = []
        for marks in self.steps:
            pairs = [
                (phase, prev.elapsed_time(ev) / 1e3) for (_, prev), (phase, ev) in zip(marks, marks[1:], strict=False)
            ]
            out.append(_merge(pairs))
        return out


def _merge(pairs: list[tuple[str, float]]) -> dict[str, float]:
    merged: dict[str, float] = defaultdict(float)
    for phase, seconds in pairs:
        merged[phase] += seconds
    return dict(merged)


def make_clock(device: torch.device) -> WallClock | CudaEventClock:
    return CudaEventClock() if device.type == "cuda" else WallClock()


def summarize(steps: list[dict[str, float]]) -> tuple[float, dict[str, float]]:
    """(median step seconds, median seconds per phase) over the timed steps."""
    totals = [sum(s.values()) for s in steps]
    phases = sorted({p for s in steps for p in s})
    return statistics.median(totals), {p: statistics.median(s.get(p, 0.0) for s in steps) for p in phases}
