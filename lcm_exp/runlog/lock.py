"""One live run per run dir: an exclusive ``flock`` on ``<run dir>/.run.lock``, held for the run's lifetime.

The kernel drops the lock when the holding process dies (crash, SIGKILL, lost node), so a killed run's dir is taken
over by the next launch without any stale-lock cleanup. The file also says who holds it (pid, host, start, a
heartbeat refreshed every ``HEARTBEAT_S``) for the one-line refusal a second launch gets. Taking a lock whose file
exists creates and modifies nothing, so a refused launch leaves the dir as it was; the file is created only by a
launch that goes on to run. (``flock`` is per machine on some network filesystems: across machines, the heartbeat
in the message is what tells a live holder from a dead one.)
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_FILE = ".run.lock"
HEARTBEAT_S = 30.0


class RunDirBusy(RuntimeError):
    """Another live process holds the run dir."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def describe_holder(info: dict) -> str:
    if not info:
        return "a process that left no details"
    beat = info.get("heartbeat_unix")
    ago = f", last heartbeat {max(0, round(time.time() - beat))} s ago" if isinstance(beat, int | float) else ""
    return f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}{ago}"


class RunLock:
    def __init__(self, run_dir: Path, heartbeat_s: float = HEARTBEAT_S):
        self.path = Path(run_dir) / LOCK_FILE
        self.heartbeat_s = heartbeat_s
        self._fd: int | None = None
        self._info: dict = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def read(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def take_existing(self) -> dict | None:
        """Lock the existing lock file without writing to it; raise RunDirBusy if a live process holds it.

        Returns what the file says about its last holder (None when there is no file yet): a run that died
        without releasing it, whose dir this launch takes over.
        """
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return None
        self._take(fd)
        return self.read()

    def acquire(self) -> None:
        """Hold the lock (creating its file if needed), write who holds it and start the heartbeat."""
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._take(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644))
        self._info = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now(), "heartbeat": _now(),
                      "heartbeat_unix": time.time()}  # fmt: skip
        self._write()
        self._thread = threading.Thread(target=self._beat, name="run-lock-heartbeat", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _take(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirBusy(
                f"{self.path.parent} is in use by a live run ({describe_holder(self.read())}; lock {self.path}): "
                "wait for it to end, stop it, or choose another hydra.run.dir"
            ) from None
        self._fd = fd

    def _write(self) -> None:
        data = json.dumps(self._info).encode()
        os.pwrite(self._fd, data, 0)
        os.ftruncate(self._fd, len(data))

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            self._info.update(heartbeat=_now(), heartbeat_unix=time.time())
            try:
                self._write()
            except OSError as err:  # a full disk must not kill the run: the lock itself is still held
                log.debug("run lock heartbeat not written: %s", err)
