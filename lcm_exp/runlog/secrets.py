"""Keep tokens and keys out of everything a run writes (run record, saved configs, command lines, logs).

Two nets: by key name (``hub.hf_token=...``) and by value. A value is secret when it equals the value of a
secret-looking environment variable (``HF_TOKEN``, ``WANDB_API_KEY``, any ``*_TOKEN``, ``*_KEY``, ``*_SECRET``,
``*_PASSWORD``), or sits where credentials sit: an ``Authorization:``/``Bearer`` header, the password of
``user:pass@`` in a URL, a ``token=`` (or ``key=``, ``sig=``...) query parameter.

A recorded command must still reproduce the run, so a value that an environment variable holds is replaced by a
placeholder that reads the variable back at run time: ``$NAME`` inside a ``pipe:`` shell command (the shell
expands it), ``${oc.env:NAME}`` elsewhere (OmegaConf resolves it). A secret that no variable holds becomes
``***``; :func:`hidden_leaves` finds such values so the caller can warn (and hand them to its own workers).
"""

from __future__ import annotations

import os
import re
from typing import Any

REDACTED = "***"
# token, secret, password, api keys, *_key / key; not the data keys lists such as caption_keys
SECRET_NAME = re.compile(r"(token|secret|passw|credential|api_?key|access_?key|private_?key|(^|[._-])key$)", re.I)
SECRET_ENV = re.compile(r"^(HF_TOKEN|HUGGING_FACE_HUB_TOKEN|WANDB_API_KEY|.+_(TOKEN|KEY|SECRET|PASSWORD))$", re.I)
MIN_SECRET_LEN = 8  # shorter env values ("1", "true") would blank out ordinary text everywhere
PIPE = "pipe:"
PLACEHOLDER = re.compile(r"\$\{oc\.env:\w+\}|\$\w+")
_CRED = r"(?!\$)[^\s\"'`,;&#]+"  # a credential; never a placeholder ($NAME, ${oc.env:NAME}) put there earlier
_URL_PASSWORD = r"(?!\$)[^\s\"'`/@]+"
PATTERNS = (
    re.compile(rf"(?i)(\bauthorization\s*[:=]\s*(?:(?:bearer|basic|token|digest)\s+)?+){_CRED}"),
    re.compile(rf"(?i)(\bbearer\s+){_CRED}"),
    re.compile(rf"(?i)(\b(?:x-)?(?:api-?key|auth-?token|access-?token|private-token)\s*:\s*){_CRED}"),
    re.compile(rf"(?i)(\b[a-z][a-z0-9+.-]*://[^\s/:@\"']+:){_URL_PASSWORD}(?=@)"),
    re.compile(rf"(?i)([?&](?:[a-z_]*token|api_?key|apikey|key|secret|password|passwd|sig|signature)=){_CRED}"),
)


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def secret_env(environ: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(name, value) of the secret-looking environment variables, longest value first."""
    environ = os.environ if environ is None else environ
    found = [(k, v) for k, v in environ.items() if SECRET_ENV.match(k) and len(v.strip()) >= MIN_SECRET_LEN]
    return sorted(found, key=lambda kv: -len(kv[1]))


def _placeholder(name: str, shell: bool) -> str:
    """``$NAME`` for a shell to expand (OmegaConf leaves a bare ``$`` alone), else ``${oc.env:NAME}``."""
    return f"${name}" if shell else f"${{oc.env:{name}}}"


def redact_text(text: str, environ: dict[str, str] | None = None) -> str:
    """``text`` with every secret replaced: env values by a read-back placeholder, other credentials by ***."""
    if not text:
        return text
    for name, value in secret_env(environ):
        if value in text:
            parts = text.split(value)
            out = parts[0]
            for part in parts[1:]:
                shell = PIPE in out and not re.match(r"\w", part)  # $NAMEabc would name another variable
                out += _placeholder(name, shell) + part
            text = out
    for pattern in PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def redact(obj: Any, environ: dict[str, str] | None = None) -> Any:
    """A copy of a nested dict/list with secrets replaced: values of secret-looking keys, and secrets in any string."""
    if isinstance(obj, dict):
        return {k: _redact_named(v, environ) if is_secret_name(str(k)) else redact(v, environ) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact(v, environ) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj, environ)
    return obj


def _redact_named(value: Any, environ: dict[str, str] | None) -> Any:
    """The value of a secret-named key: a read-back placeholder when an env var holds it exactly, else ***."""
    if value is None or (isinstance(value, str) and (value == REDACTED or PLACEHOLDER.fullmatch(value))):
        return value  # already redacted
    for name, secret in secret_env(environ):
        if value == secret:
            return _placeholder(name, shell=False)
    return REDACTED


def redact_override(arg: str, environ: dict[str, str] | None = None) -> str:
    """A Hydra override or ``--flag=value`` with its secrets replaced (``foo.hf_token=abc`` -> ``foo.hf_token=***``)."""
    if "=" in arg:
        key, value = arg.split("=", 1)
        if is_secret_name(key.lstrip("+~-").split(".")[-1]):
            return f"{key}={_redact_named(value.strip(chr(34) + chr(39)), environ)}"
    return redact_text(arg, environ)


def hidden_leaves(original: Any, redacted: Any, path: str = "") -> dict[str, Any]:
    """{dotted key: original value} of the leaves whose redaction lost information (***), i.e. that no environment
    variable can give back. Lists are indexed (``data.shards.0``)."""
    if isinstance(original, dict) and isinstance(redacted, dict):
        pairs = [(original[key], redacted.get(key), f"{path}{key}.") for key in original]
    elif isinstance(original, list | tuple) and isinstance(redacted, list | tuple):
        pairs = [(a, b, f"{path}{i}.") for i, (a, b) in enumerate(zip(original, redacted, strict=False))]
    else:
        pairs = []
    if pairs:
        return {k: v for a, b, sub in pairs for k, v in hidden_leaves(a, b, sub).items()}
    if isinstance(redacted, str) and REDACTED in redacted and original != redacted:
        return {path[:-1]: original}
    return {}
