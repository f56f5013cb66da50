"""Read a teacher's small JSON files (hub id or local folder) without importing torch or diffusers.

Config validation needs the noise schedule's facts (T, prediction type) before any weight loads, and it must stay
fast; the families reuse the same helpers to find component classes and to fail with a clear message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class MissingComponentError(FileNotFoundError):
    """A teacher lacks a file or component the family needs (names the teacher and the component)."""


@dataclass(frozen=True)
class SchedulerInfo:
    num_train_timesteps: int
    prediction_type: str  # epsilon | v_prediction | sample


def is_local(teacher: str | Path) -> bool:
    """Same test diffusers applies: an existing directory is a folder, anything else a hub id."""
    return Path(teacher).expanduser().is_dir()


def read_json(teacher: str | Path, filename: str, revision: str | None = None, subfolder: str | None = None) -> dict:
    """One JSON file of a teacher; a missing file raises MissingComponentError naming teacher and component."""
    what = f"{subfolder}/{filename}" if subfolder else filename
    if is_local(teacher):
        path = Path(teacher).expanduser() / what
        if not path.is_file():
            raise MissingComponentError(f"teacher folder {str(teacher)!r} has no {what!r}")
    else:
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(str(teacher), filename, subfolder=subfolder, revision=revision))
        except Exception as err:  # offline, unknown repo, missing file: all mean "cannot get this component"
            raise MissingComponentError(
                f"cannot fetch {what!r} of teacher {str(teacher)!r} (revision {revision!r}): {err}"
            ) from err
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"teacher {str(teacher)!r}: {what!r} is not valid JSON: {err}") from err


def read_scheduler_config(teacher: str | Path, revision: str | None = None) -> SchedulerInfo:
    """T and prediction type of the teacher's training schedule, with diffusers' defaults for absent keys."""
    config = read_json(teacher, "scheduler_config.json", revision, subfolder="scheduler")
    return SchedulerInfo(
        num_train_timesteps=int(config.get("num_train_timesteps", 1000)),
        prediction_type=str(config.get("prediction_type", "epsilon")),
    )


def read_model_index(teacher: str | Path, revision: str | None = None) -> dict[str, Any]:
    return read_json(teacher, "model_index.json", revision)


def component_class_name(teacher: str | Path, model_index: dict[str, Any], component: str) -> tuple[str, str]:
    """(library, class name) of a component from model_index.json; absent or null entries raise."""
    entry = model_index.get(component)
    if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(x, str) for x in entry)):
        raise MissingComponentError(
            f"teacher {str(teacher)!r} has no component {component!r} in model_index.json (entry: {entry!r})"
        )
    if is_local(teacher) and not (Path(teacher).expanduser() / component).is_dir():
        raise MissingComponentError(f"teacher folder {str(teacher)!r} has no {component!r} subfolder")
    return entry[0], entry[1]
