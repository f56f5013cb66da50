"""SIGTERM/SIGINT -> checkpoint at the next step boundary and exit cleanly (SLURM sends SIGTERM before a kill).

Two layers: the loop's :class:`PreemptionFlag` turns a signal into a checkpoint at the next step; outside the
loop (loading the teacher, building data, exporting) the task's :class:`StopOnSignal` turns it into
:class:`StopRequested` at once, so the run record still ends 'preempted' instead of staying 'running'. The
loop's flag installs itself over the task's handler and puts it back when the loop ends.
"""

from __future__ import annotations

import logging
import signal

log = logging.getLogger(__name__)


class Preempted(Exception):
    """Raised by the loop after the preemption checkpoint is written; the run's status becomes 'preempted'."""

    def __init__(self, step: int, checkpoint):
        self.step, self.checkpoint = step, checkpoint
        super().__init__(f"preempted at step {step}; checkpoint {checkpoint}; rerun the same command to resume")


class StopRequested(BaseException):
    """A stop signal outside the training loop: nothing to checkpoint there; the same command starts again.

    A BaseException, like KeyboardInterrupt, so that library code catching Exception cannot swallow it."""

    def __init__(self, signame: str):
        self.signame = signame
        super().__init__(f"{signame} received outside the training steps (nothing to checkpoint there); "
                         "rerun the same command to continue")  # fmt: skip


class _Handlers:
    """SIGTERM/SIGINT go to ``_handle`` inside the context; the previous handlers come back at its end."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self._previous: dict = {}

    def _handle(self, signum, frame):
        raise NotImplementedError

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


class StopOnSignal(_Handlers):
    """Task-wide (from the task's first line): a stop signal raises StopRequested at once."""

    def _handle(self, signum, frame):
        raise StopRequested(signal.Signals(signum).name)


class PreemptionFlag(_Handlers):
    """Installed for the training loop's lifetime: a signal asks for a checkpoint at the next step boundary; a
    second signal stops at once."""

    def __init__(self):
        super().__init__()
        self.requested: str | None = None

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.requested:  # second signal: give up on the clean stop
            self.__exit__()
            raise KeyboardInterrupt(f"{name} received twice")
        self.requested = name
        log.warning("%s received: saving a checkpoint at the next step boundary, then stopping", name)
