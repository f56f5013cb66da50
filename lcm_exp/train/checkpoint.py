"""Atomic, rotated training checkpoints on top of ``accelerator.save_state``.

A checkpoint is written into a hidden temporary folder, marked complete, then renamed into place, so a kill
at any moment leaves either a whole ``checkpoint-<step>`` or nothing that resume would pick. Rotation deletes
old checkpoints only after the new one is in place. A save that fails (a full disk) removes its partial folder
at once, which frees the space the run needs to record why it failed, and names the last good checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "checkpoint-"
MARKER = "COMPLETE"
RNG_STATES = "random_states_{}.pkl"  # accelerate's per-process RNG file


class CheckpointSaveError(RuntimeError):
    """A checkpoint could not be written (a full disk: torch, safetensors and the OS each report it their own
    way); the earlier ones are untouched."""


def _step_of(path: Path) -> int:
    return int(path.name[len(PREFIX):])


def complete_checkpoints(root: Path) -> list[Path]:
    """Finished checkpoints under ``root``, oldest first (temporary or unmarked folders are ignored)."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir()
             if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX):].isdigit() and (p / MARKER).is_file()]
    return sorted(found, key=_step_of)


def find_resume_checkpoint(root: Path, spec: str | None) -> Path | None:
    """``latest`` -> newest complete checkpoint (or None); a path -> that checkpoint, which must be complete."""
    if spec is None:
        return None
    if spec == "latest":
        done = complete_checkpoints(root)
        return done[-1] if done else None
    path = Path(spec)
    if not (path / MARKER).is_file():
        raise FileNotFoundError(f"trainer.resume_from_checkpoint={spec!r}: not a complete checkpoint folder")
    return path


def save_checkpoint(
    accelerator, root: Path, step: int, extra: dict, tensor_states: dict, total_limit: int | None
) -> Path:
    """Save accelerate state, ``tensor_states`` (name -> object with a tensor state_dict, e.g. the EMA, stored as
    safetensors) and ``extra`` (json: step, data position, counters) atomically, then rotate."""
    from safetensors.torch import save_file  # lazily: config validation imports this module for the resume check

    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step}"
    tmp = root / f".tmp-{PREFIX}{step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp))  # every rank writes its own RNG state here
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            for name, obj in tensor_states.items():
                save_file(obj.state_dict(), tmp / f"{name}.safetensors")
            (tmp / "trainer_state.json").write_text(json.dumps(extra, indent=2))
            (tmp / MARKER).write_text("ok\n")
            _fsync_dir(tmp)
    except Exception as err:
        shutil.rmtree(tmp, ignore_errors=True)  # the partial save: its space is what the run record needs now
        done = complete_checkpoints(root)
        raise CheckpointSaveError(
            f"checkpoint-{step} could not be saved in {root} ({type(err).__name__}: {err}); the last good checkpoint "
            f"is {done[-1].name if done else 'none'}, untouched: free space and rerun the same command to resume"
        ) from err
    if accelerator.is_main_process:
        if final.exists():  # a stale checkpoint of the same step (e.g. from a run that was stopped): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
        _rotate(root, total_limit)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, checkpoint: Path, tensor_states: dict) -> dict:
    """Restore what ``save_checkpoint`` wrote (accelerate loads with weights_only; ours are safetensors);
    returns the trainer state json."""
    check_rng_state(checkpoint, accelerator.process_index)
    accelerator.load_state(str(checkpoint))
    from safetensors.torch import load_file

    for name, obj in tensor_states.items():
        obj.load_state_dict(load_file(checkpoint / f"{name}.safetensors", device="cpu"))
    return json.loads((checkpoint / "trainer_state.json").read_text())


def check_rng_state(checkpoint: Path, process_index: int) -> bool:
    """Whether this process's RNG file loads; if not, say so loudly (accelerate would only log it at INFO and go
    on): the run continues, but its random draws no longer match an uninterrupted run's."""
    from accelerate.utils import load

    path = checkpoint / RNG_STATES.format(process_index)
    try:
        load(path)
        return True
    except Exception as err:  # missing, truncated, garbage: all mean the same for the run
        log.warning("%s could not be loaded (%s: %s): the run continues with the RNG state of a fresh start, so "
                    "it is not bitwise identical to an uninterrupted run", path, type(err).__name__, err)
        return False


def _rotate(root: Path, total_limit: int | None) -> None:
    if total_limit is None:
        return
    done = complete_checkpoints(root)
    for old in done[: max(0, len(done) - total_limit)]:
        log.info("removing old checkpoint %s (trainer.checkpoints_total_limit=%d)", old, total_limit)
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(f".tmp-{PREFIX}*"):  # leftovers of killed saves
        shutil.rmtree(stale, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
