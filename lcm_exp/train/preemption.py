"""SIGTERM/SIGINT -> checkpoint at the next step boundary and exit cleanly (SLURM sends SIGTERM before a kill)."""

from __future__ import annotations

import logging
import signal

log = logging.getLogger(__name__)


class Preempted(Exception):
    """Raised by the loop after the preemption checkpoint is written; the run's status becomes 'preempted'."""

    def __init__(self, step: int, checkpoint):
        self.step, self.checkpoint = step, checkpoint
        super().__init__(f"preempted at step {step}; checkpoint {checkpoint}; rerun the same command to resume")


class PreemptionFlag:
    """Installs handlers for the run's lifetime (use as a context); a second signal stops at once."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.requested: str | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.requested:  # second signal: give up on the clean stop
            self.__exit__()
            raise KeyboardInterrupt(f"{name} received twice")
        self.requested = name
        log.warning("%s received: saving a checkpoint at the next step boundary, then stopping", name)

    def __enter__(self):
        for sig in self.SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. inside some launchers): leave handlers alone
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
        return False
