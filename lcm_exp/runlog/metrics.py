"""metrics.jsonl: one json object per logged step, always written, whatever trackers are chosen."""

from __future__ import annotations

import json
from pathlib import Path

METRICS = "metrics.jsonl"


class MetricsFile:
    def __init__(self, run_dir: Path, start_step: int = 0):
        self.path = Path(run_dir) / METRICS
        if self.path.exists() and start_step > 0:  # resume: drop lines past the checkpoint, they will be redone
            lines = self.path.read_text().splitlines()
            kept = [ln for ln in lines if ln and json.loads(ln).get("step", 0) <= start_step]
            self.path.write_text("".join(ln + "\n" for ln in kept))
        elif self.path.exists():
            self.path.unlink()
        self._fh = self.path.open("a")

    def write(self, row: dict) -> None:
        self._fh.write(json.dumps(row) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
