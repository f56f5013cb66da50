"""Shards -> raw samples, where every read error is an item of the stream too (``ReadError``), not a side count.

The errors travel through the shuffle buffer with the samples and are counted where the samples are decoded, so the
bad fraction a run sees is the stream's real one whatever the buffer size, the workers or the resampling (counting a
tar error when it is read, but a sample only once it leaves the buffer, made one truncated shard look like 56% bad).

Each shard is read by webdataset's own stages (``tar_file_expander``, ``group_by_keys``), one shard at a time, so an
error is always charged to the right shard. ``pipe:`` commands are opened here rather than by webdataset's gopen: their
stderr is captured (a failing command's first lines and line count become the error, instead of thousands of lines on
the console) and a command that sends no byte for ``stall_timeout_s`` stops the stream, named (a warning at half).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from lcm_exp.config.errors import DataError

logger = logging.getLogger(__name__)

_STDERR_LINES = 3  # of a failing command, in its error


@dataclass
class ReadError:
    """A shard-level failure in the sample stream (cannot open, truncated, garbage, a failing command)."""

    url: str
    error: BaseException


class PipeFailed(OSError):
    """A ``pipe:`` command ended with a non-zero status; the message holds its first stderr lines and their count."""


class ShardStalled(DataError):
    """A shard sent no byte for data.stall_timeout_s."""


def read_shards(shards: Iterable[dict[str, str]], stall_timeout_s: float) -> Iterator[dict[str, Any] | ReadError]:
    """Raw webdataset samples (``__key__``, ``__url__``, one bytes field per extension) and ReadErrors, by shard."""
    import webdataset as wds

    for shard in shards:
        url = shard["url"]
        errors: list[BaseException] = []
        handler = _Collect(errors)
        try:
            stream = open_shard(url, stall_timeout_s)
        except OSError as exn:
            yield ReadError(url, exn)
            continue
        try:
            files = wds.tariterators.tar_file_expander([{"url": url, "stream": stream}], handler=handler)
            for sample in wds.tariterators.group_by_keys(files, handler=handler):
                yield from (ReadError(url, e) for e in errors)
                errors.clear()
                yield sample
        finally:
            stream.close()
        yield from (ReadError(url, e) for e in errors)


class _Collect:
    """A webdataset ``handler=``: keep the error and go on; a data stop (a stall) is not a bad sample: re-raised."""

    def __init__(self, errors: list[BaseException]):
        self.errors = errors

    def __call__(self, exn: BaseException) -> bool:
        if isinstance(exn, DataError):
            raise exn
        self.errors.append(exn)
        return True


def open_shard(url: str, stall_timeout_s: float):
    """A readable binary stream of one shard url: a ``pipe:`` command, a local file, or webdataset's gopen (urls)."""
    if url.startswith("pipe:"):
        return PipeStream(url, stall_timeout_s)
    if url.startswith("file:") or "://" not in url:
        return open(url.removeprefix("file://").removeprefix("file:"), "rb")
    import webdataset as wds

    return wds.gopen.gopen(url)


_LIVE: set[PipeStream] = set()  # the commands this process reads now


def _stop_pipes_when_terminated() -> None:
    """In a DataLoader worker: stop the commands it reads before it dies of SIGTERM (torch terminates a worker that
    does not finish in time, which runs no close() of ours; a download would live on). Once per worker process."""
    from torch.utils.data import get_worker_info

    if get_worker_info() is None or signal.getsignal(signal.SIGTERM) is _terminated:
        return
    signal.signal(signal.SIGTERM, _terminated)


def _terminated(signum, frame) -> None:
    for pipe in list(_LIVE):
        pipe._stop()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


class PipeStream:
    """The stdout of a ``pipe:`` command as a file, read with a stall watch; stderr goes to a temporary file."""

    def __init__(self, url: str, stall_timeout_s: float):
        self.url, self.stall_timeout_s = url, stall_timeout_s
        self.stderr = tempfile.TemporaryFile()
        # its own process group: stopping a stalled ``sh -c "curl ... | tar ..."`` stops every process of it
        self.proc = subprocess.Popen(url[len("pipe:") :], shell=True, stdout=subprocess.PIPE, stderr=self.stderr,
                                     start_new_session=True)  # fmt: skip
        _LIVE.add(self)
        _stop_pipes_when_terminated()
        self.fd = self.proc.stdout.fileno()
        self.closed = False

    def __str__(self) -> str:  # webdataset appends the stream to error messages
        return self.url

    def read(self, size: int = -1) -> bytes:
        size = size if size and size > 0 else 1 << 20
        self._wait_for_data()
        data = os.read(self.fd, size)
        if not data:
            self._check_exit()
        return data

    def _wait_for_data(self) -> None:
        start, warned = time.monotonic(), False
        while True:
            waited = time.monotonic() - start
            if waited >= self.stall_timeout_s:
                self._stop()
                raise ShardStalled(f"data.shards: {self.url!r} sent no data for {self.stall_timeout_s:g} s "
                                   "(data.stall_timeout_s): a hung download or command; the run stops")  # fmt: skip
            limit = self.stall_timeout_s / 2 if not warned else self.stall_timeout_s
            ready, _, _ = select.select([self.fd], [], [], max(limit - waited, 0.0))
            if ready:
                return
            if not warned:
                warned = True
                logger.warning("shard %s: no data for %.0f s; the run stops at %g s (data.stall_timeout_s)",
                               self.url, time.monotonic() - start, self.stall_timeout_s)  # fmt: skip

    def _check_exit(self) -> None:
        status = self.proc.wait()
        if status not in (0, 141):  # 141: SIGPIPE when the reader stopped early, as webdataset ignores it
            raise PipeFailed(f"command failed (exit {status}): {self._stderr_summary()}")

    def _stderr_summary(self) -> str:
        self.stderr.seek(0)
        lines = [line for line in self.stderr.read().decode("utf-8", "replace").splitlines() if line.strip()]
        if not lines:
            return "no stderr output"
        shown = " | ".join(lines[:_STDERR_LINES])
        return shown + (f" ... ({len(lines)} stderr lines)" if len(lines) > _STDERR_LINES else "")

    def _stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        _LIVE.discard(self)
        self.proc.stdout.close()
        self._stop()
        self.stderr.close()
