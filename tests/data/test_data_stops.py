"""Issue 14 item 6: a data stop names its cause. Every kind of all-bad shard and every failing or stalled ``pipe:`` ends
in ONE DataError naming the shard and the reason, raised in the training process (not pages of worker tracebacks);
a failing command's stderr is summarised, never copied to the console; a stalled command warns, then stops."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from itertools import islice
from pathlib import Path

import pytest
from PIL import Image

from lcm_exp.config.errors import DataError
from lcm_exp.data.make_shards import write_shards
from lcm_exp.data.spec import DataSpec
from lcm_exp.data.webdataset_pipeline import build_dataloader

R = 32


def first_batches(spec: DataSpec, n: int = 2) -> list[dict]:
    return list(islice(build_dataloader(spec, resolution=R, batch_size=2, seed=0), n))


def shard(folder: Path, kind: str) -> Path:
    """One all-bad shard of the given kind, written by the project's shard writer where it can be."""
    folder.mkdir(exist_ok=True)
    if kind == "zero_bytes":
        path = folder / "zero.tar"
        path.write_bytes(b"")
        return path
    if kind == "garbage":
        path = folder / "garbage.tar"
        path.write_bytes(bytes(range(256)) * 40)
        return path
    size = 400 if kind == "oversized" else 40
    samples = [(f"k{i}", Image.new("RGB", (size, size), (i, 0, 0)), f"caption {i}", {}) for i in range(6)]
    (path,) = write_shards(samples, folder / kind, prefix=kind, image_format="png")
    if kind == "no_captions":  # the same shard without its .txt members
        import tarfile

        with tarfile.open(path) as src, tarfile.open(folder / "nocap.tar", "w") as dst:
            for member in src.getmembers():
                if not member.name.endswith(".txt"):
                    dst.addfile(member, src.extractfile(member))
        return folder / "nocap.tar"
    return path


ALL_BAD = {  # kind -> the reason its message must give
    "zero_bytes": "ReadError", "garbage": "ReadError", "no_captions": "missing_caption", "oversized": "too_many_pixels",
}  # fmt: skip


@pytest.mark.parametrize("kind", list(ALL_BAD))
@pytest.mark.parametrize("resampled", [True, False], ids=["resampled", "finite"])
def test_a_single_all_bad_shard_stops_with_one_message_naming_it(kind, resampled, tmp_path):
    path = shard(tmp_path, kind)
    spec = DataSpec(shards=str(path), resampled=resampled, num_workers=2, shuffle_buffer=100, max_consecutive_skips=50,
                    max_image_pixels=300 * 300)  # fmt: skip
    with pytest.raises(DataError) as err:
        first_batches(spec)
    message = str(err.value)
    assert "\n" not in message and message.startswith("data stopped the run: data.shards")
    assert str(path) in message and ALL_BAD[kind] in message
    assert "Traceback" not in message and "DataLoader worker" not in message


def test_a_failing_pipe_is_summarised_not_flooded(tmp_path, capfd):
    missing = tmp_path / "missing.tar"
    spec = DataSpec(shards=f"pipe:cat {missing}", resampled=True, num_workers=0, max_consecutive_skips=200)
    with pytest.raises(DataError) as err:
        first_batches(spec)
    message = str(err.value)
    assert f"pipe:cat {missing}" in message and "exit 1" in message and "No such file or directory" in message
    assert capfd.readouterr().err.count("No such file or directory") == 0  # 200 failures, none on the console


def test_a_failing_commands_stderr_keeps_its_first_lines_and_count(tmp_path):
    command = "pipe:sh -c 'for i in 1 2 3 4 5 6 7; do echo problem $i >&2; done; exit 3'"
    spec = DataSpec(shards=command, resampled=False, num_workers=0)
    with pytest.raises(DataError) as err:
        first_batches(spec)
    assert "exit 3): problem 1 | problem 2 | problem 3 ... (7 stderr lines)" in str(err.value)


def test_good_shards_through_a_pipe_still_train(tmp_path):
    samples = [(f"k{i}", Image.new("RGB", (40, 40), (i, 0, 0)), f"caption {i}", {}) for i in range(4)]
    (path,) = write_shards(samples, tmp_path, image_format="png")
    batches = first_batches(DataSpec(shards=f"pipe:cat {path}", resampled=False, num_workers=0), n=5)
    assert sorted(c for b in batches for c in b["captions"]) == [f"caption {i}" for i in range(4)]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_stalled_pipe_warns_then_stops_naming_the_shard(workers, caplog):
    command = f"sleep 1000.{os.getpid()}{workers}"  # a hung download; unique, to find its processes afterwards
    spec = DataSpec(shards=f"pipe:{command}", resampled=True, num_workers=workers, stall_timeout_s=1.5)
    start = time.monotonic()
    with caplog.at_level(logging.WARNING), pytest.raises(DataError) as err:
        first_batches(spec)
    assert 1.5 <= time.monotonic() - start < 60
    assert f"'pipe:{command}' sent no data for 1.5 s (data.stall_timeout_s)" in str(err.value)
    if workers == 0:  # a worker's log records go to its own process
        assert f"shard pipe:{command}: no data for" in caplog.text
    deadline = time.monotonic() + 15
    while running(command) and time.monotonic() < deadline:  # every worker's command, stopped or dead with it
        time.sleep(0.2)
    assert running(command) == []


def test_a_pipe_dies_with_the_worker_reading_it():
    """A stopped run (preempted, failed) terminates its DataLoader workers; their download commands go with them."""
    import gc

    from torch.utils.data import DataLoader

    command = f"sleep 1000.{os.getpid()}9"
    spec = DataSpec(shards=f"pipe:{command}", resampled=True, num_workers=1, stall_timeout_s=300)
    workers = DataLoader.__iter__(build_dataloader(spec, resolution=R, batch_size=2, seed=0))  # they start reading
    deadline = time.monotonic() + 30
    while not running(command) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert running(command), "the worker started the command"
    del workers  # torch joins the worker for 5 s, then terminates it: no close() of ours runs there
    gc.collect()
    deadline = time.monotonic() + 20
    while running(command) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert running(command) == []


def running(command: str) -> list[str]:
    return subprocess.run(["pgrep", "-f", command], capture_output=True, text=True).stdout.split()


def test_one_bad_shard_among_good_ones_does_not_stop(tmp_path):
    samples = [(f"k{i}", Image.new("RGB", (40, 40), (i, 0, 0)), f"caption {i}", {}) for i in range(8)]
    paths = write_shards(samples, tmp_path, samples_per_shard=4, image_format="png")
    bad = shard(tmp_path, "garbage")
    spec = DataSpec(shards=[*map(str, paths), str(bad)], resampled=False, num_workers=0)
    loader = build_dataloader(spec, resolution=R, batch_size=2, seed=0)
    counted = 0
    for _ in range(3):
        batches = list(loader)
        assert sum(len(b["captions"]) for b in batches) == 8
        counted += sum(b["num_skipped"] for b in batches)
    # one bad read per pass: each counted once, in a batch or (after a pass's last batch) carried to the next pass
    assert counted + loader.leftover.get("num_skipped", 0) == 3


def error_lines(out) -> list[str]:
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("error:")]


def test_a_launched_run_on_an_all_bad_shard_ends_in_one_line(tmp_path, cache_dir):
    """Through launch.py (4 workers, resampled): exit 2, one error line naming the shard and the reason, no traceback;
    the run is recorded as failed with that reason."""
    from tests.train.runner import launch, record

    bad = shard(tmp_path, "zero_bytes")
    # data.cache=never: the shared latent cache's sample count opens every tar itself (train/shared_cache.py, lead)
    out = launch(tmp_path / "run", cache_dir, "data=webdataset", f"data.shards={bad}", "data.num_workers=4",
                 "data.max_consecutive_skips=100", "data.cache=never", check=False)  # fmt: skip
    assert out.returncode == 2
    assert "Traceback" not in out.stdout + out.stderr
    (line,) = error_lines(out)
    assert line.startswith("error: data stopped the run: data.shards:") and str(bad) in line and "ReadError" in line
    assert record(tmp_path / "run")["status"] == "failed"


@pytest.mark.slow
def test_a_launched_run_on_a_stalled_pipe_stops_naming_it(tmp_path, cache_dir):
    from tests.train.runner import launch

    out = launch(tmp_path / "run", cache_dir, "data=webdataset", "data.shards=pipe:sleep 1000", "data.num_workers=2",
                 "data.stall_timeout_s=3", check=False)  # fmt: skip
    assert out.returncode == 2 and "Traceback" not in out.stdout + out.stderr
    (line,) = error_lines(out)
    assert "'pipe:sleep 1000' sent no data for 3 s (data.stall_timeout_s)" in line
