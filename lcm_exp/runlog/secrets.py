"""Keep tokens and keys out of everything a run writes (run record, saved configs, command lines)."""

from __future__ import annotations

import re
from typing import Any

REDACTED = "***"
# token, secret, password, api keys, *_key / key; not the data keys lists such as caption_keys
SECRET_NAME = re.compile(r"(token|secret|passw|credential|api_?key|access_?key|private_?key|(^|[._-])key$)", re.I)


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def redact(obj: Any) -> Any:
    """A copy of a nested dict/list with the values of secret-looking keys replaced."""
    if isinstance(obj, dict):
        return {k: REDACTED if is_secret_name(str(k)) and v is not None else redact(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact(v) for v in obj]
    return obj


def redact_override(arg: str) -> str:
    """``foo.hf_token=abc`` -> ``foo.hf_token=***`` (Hydra override or --flag=value form)."""
    if "=" in arg:
        key, _ = arg.split("=", 1)
        if is_secret_name(key.lstrip("+~-").split(".")[-1]):
            return f"{key}={REDACTED}"
    return arg
