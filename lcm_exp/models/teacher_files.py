"""Read a teacher's small files (hub id or local folder) without importing torch or diffusers.

Config validation needs the noise schedule's facts (T, prediction type) before any weight loads, and it must stay
fast; the families reuse the same helpers to find component classes and to fail with a clear message. The
weight files of a local teacher are checked from their safetensors headers alone (a few KB read), so a truncated or
garbage file is refused before a second of loading is spent on the others.
"""

from __future__ import annotations

import json
import os
import re
import struct
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


# a hub repo id: "name" or "namespace/name" (huggingface_hub.utils.validate_repo_id's characters)
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def is_repo_id(teacher: str | Path) -> bool:
    """Whether ``teacher`` could name a hub repo; a path ('/models/x', './x', '~/x', 'a/b/c') cannot."""
    text = str(teacher)
    return bool(_REPO_ID.match(text)) and ".." not in text and not text.endswith((".", "-"))


def read_json(teacher: str | Path, filename: str, revision: str | None = None, subfolder: str | None = None) -> dict:
    """One JSON file of a teacher; a missing file raises MissingComponentError naming teacher and component."""
    what = f"{subfolder}/{filename}" if subfolder else filename
    if not is_local(teacher) and not is_repo_id(teacher):
        raise MissingComponentError(f"no such folder: {str(teacher)!r} (and it is not a hub repo id)")
    if is_local(teacher):
        path = Path(teacher).expanduser() / what
        if not path.is_file():
            raise MissingComponentError(f"teacher folder {str(teacher)!r} has no {what!r}")
    else:
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(str(teacher), filename, subfolder=subfolder, revision=revision))
        except Exception as err:  # offline, unknown repo, missing file: all mean "cannot get this component"
            offline = " (HF_HUB_OFFLINE=1)" if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") else ""
            raise MissingComponentError(
                f"no local folder {str(teacher)!r}, and {what!r} of hub repo {str(teacher)!r} (revision {revision!r}) "
                f"cannot be fetched{offline}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
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


class CorruptWeightsError(ValueError):
    """A weight file that cannot be what its name says (truncated, garbage, a header that does not add up)."""


_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
                "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8}  # fmt: skip
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit


def read_safetensors_header(path: str | Path) -> dict[str, Any]:
    """Tensor name -> {dtype, shape, data_offsets} of a safetensors file, read from its header only.

    Raises CorruptWeightsError when the header is unreadable or its tensors do not exactly fill the file (a cut
    download, a file of another format).
    """
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CorruptWeightsError(f"{path}: {size} bytes, too short for a safetensors file")
        (length,) = struct.unpack("<Q", head)
        if not 2 <= length <= min(_MAX_HEADER, size - 8):
            raise CorruptWeightsError(f"{path}: not a safetensors file (header length {length}, file size {size})")
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, ValueError) as err:
            raise CorruptWeightsError(f"{path}: unreadable safetensors header ({err})") from None
    if not isinstance(header, dict):
        raise CorruptWeightsError(f"{path}: unreadable safetensors header")
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    end = 0
    for name, info in tensors.items():
        try:
            start, stop = info["data_offsets"]
            count = 1
            for dim in info["shape"]:
                count *= dim
            ok = stop - start == count * _DTYPE_BYTES[info["dtype"]]
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise CorruptWeightsError(f"{path}: tensor {name!r} has an inconsistent header entry {info!r}")
        end = max(end, stop)
    if 8 + length + end != size:
        raise CorruptWeightsError(
            f"{path}: {size} bytes, but its header describes {8 + length + end} (truncated or damaged file)"
        )
    return tensors


WEIGHT_SUFFIXES = (".safetensors", ".bin")


def weight_files(folder: str | Path, variant: str | None) -> list[Path]:
    """The weight files a from_pretrained of ``folder`` with ``variant`` reads: safetensors if any, else .bin.

    Names are ``<stem>[-0000i-of-0000n][.<variant>].<suffix>``; files of another variant are left alone.
    """
    found: dict[str, list[Path]] = {suffix: [] for suffix in WEIGHT_SUFFIXES}
    for path in sorted(Path(folder).iterdir()):
        suffix = next((s for s in WEIGHT_SUFFIXES if path.name.endswith(s)), None)
        if suffix is None or not path.is_file():
            continue
        parts = path.name[: -len(suffix)].split(".")
        if (parts[1] if len(parts) == 2 else None) == variant:
            found[suffix].append(path)
    return found[".safetensors"] or found[".bin"]


def check_weight_file(path: Path) -> None:
    """Header-only sanity check of one weight file (a torch .bin: a zip archive, or a legacy pickle)."""
    if path.suffix == ".safetensors":
        read_safetensors_header(path)
        return
    import zipfile

    with path.open("rb") as f:
        legacy_pickle = f.read(1) == b"\x80"
    if not (legacy_pickle or zipfile.is_zipfile(path)):
        raise CorruptWeightsError(f"{path}: not a torch checkpoint")
