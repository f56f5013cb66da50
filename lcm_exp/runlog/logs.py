"""How a run logs: one line format, secrets redacted in every line, third-party noise filtered, and the run dir's
log file opened only once the run owns the dir.

Hydra's own job logging would open ``<run dir>/<job>.log`` before our task could refuse the launch (a finished or
locked run dir), so conf/hydra/job_logging/lcm.yaml logs to the console only; :class:`RunLog` keeps what is logged
before the claim in memory and writes it, followed by the rest of the job's log, once the dir is claimed. A
refused launch writes nothing.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
from pathlib import Path

from lcm_exp.runlog.secrets import redact_text

FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"

# loggers whose messages never concern a user of this project, and the level they are held at
QUIET = {
    "kernels": logging.ERROR,  # bitsandbytes' optional CPU kernel look-up on the Hub (at import, every run)
    "bitsandbytes.backends.cpu.ops": logging.ERROR,  # ... and its "failed to load" when offline
    "accelerate.checkpointing": logging.WARNING,  # four INFO lines per checkpoint; ours logs the checkpoint once
}
# single messages of loggers that also say useful things
NOISE = {
    "transformers.utils.import_utils": [r"requires torchvision \(not installed\); falling back"],
    "diffusers.models.modeling_utils": [r"should be kept in float32: \[\]"],  # an empty list: nothing is affected
    "diffusers.configuration_utils": [r"were passed to LCMScheduler, but are not expected"],  # teacher-only keys
}


class RedactingFormatter(logging.Formatter):
    """Every formatted line (message, arguments, traceback) with its secrets replaced."""

    def __init__(self, fmt: str = FORMAT, *args, **kwargs):
        super().__init__(fmt, *args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


class DropNoise(logging.Filter):
    def __init__(self, patterns: list[str]):
        super().__init__()
        self.patterns = [re.compile(p) for p in patterns]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(p.search(message) for p in self.patterns)


def quiet_third_party() -> None:
    """Hold the noisy loggers down (idempotent; before the heavy imports, whose import-time warnings it catches)."""
    for name, level in QUIET.items():
        logging.getLogger(name).setLevel(level)
    for name, patterns in NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropNoise) for f in logger.filters):
            logger.addFilter(DropNoise(patterns))


class RunLog:
    """The job's log file in its run dir, opened only when the run has claimed the dir.

    ``RunLog()`` starts buffering the root logger's records; ``attach(run_dir, name)`` writes them into
    ``<run dir>/<name>.log`` (appending, like Hydra) and keeps logging there; ``close()`` detaches either way, so a
    refused launch leaves no file behind.
    """

    CAPACITY = 100_000  # records kept before the claim (validation and cache builds log a few dozen)

    def __init__(self):
        self._buffer = logging.handlers.MemoryHandler(self.CAPACITY, logging.CRITICAL + 1, flushOnClose=False)
        self._file: logging.FileHandler | None = None
        logging.getLogger().addHandler(self._buffer)

    @property
    def path(self) -> Path | None:
        return Path(self._file.baseFilename) if self._file else None

    def attach(self, run_dir: Path, name: str) -> None:
        root = logging.getLogger()
        self._file = logging.FileHandler(Path(run_dir) / f"{name}.log", mode="a")
        self._file.setFormatter(RedactingFormatter())
        self._file.setLevel(root.level)
        self._buffer.setTarget(self._file)
        self._buffer.flush()
        root.removeHandler(self._buffer)
        root.addHandler(self._file)

    def close(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self._buffer)
        self._buffer.setTarget(None)
        self._buffer.close()
        if self._file is not None:
            root.removeHandler(self._file)
            self._file.close()
            self._file = None
