"""docs/config.md from the schemas: every key with its type, default, allowed values and one line of meaning.

The meaning is the comment the schema writes beside a field (or the comment block right above it); allowed values
come from ``choices``; variant groups (model, adapter, loss, objective, launcher) list each variant's keys. Written by
``python scripts/config_doc.py``; a test fails when the file is stale.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import tokenize
import typing
from pathlib import Path

from lcm_exp.config.choices import allowed_values
from lcm_exp.config.schema import RunConfig
from lcm_exp.config.store import GROUP_SCHEMAS

CONF = Path(__file__).resolve().parents[2] / "conf"
HEADER = """# Configuration reference

Generated from the schemas (`lcm_exp/config/schema.py`) by `python scripts/config_doc.py`; do not edit by hand.
Every key is a Hydra override: `python launch.py group=option key=value`. `???` marks a value with no default
(the run refuses to start without it). Options of a group are the files in `conf/<group>/`.
"""


def field_comments(cls: type) -> dict[str, str]:
    """name -> the comment beside the field, else the comment lines right above it."""
    source = inspect.getsource(cls)
    comments: dict[str, str] = {}
    pending: list[str] = []
    line_names: dict[int, str] = {}
    for lineno, line in enumerate(source.splitlines(), 1):
        stripped = line.strip()
        if ":" in stripped and not stripped.startswith(("#", '"', "def ", "@", "class ")):
            name = stripped.split(":", 1)[0].strip()
            if name.isidentifier():
                line_names[lineno] = name
    inline: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            inline[tok.start[0]] = tok.string.lstrip("#").strip()
    for lineno, line in enumerate(source.splitlines(), 1):
        if line.strip().startswith("#"):
            pending.append(inline.get(lineno, ""))
            continue
        if lineno in line_names:
            text = inline.get(lineno) or " ".join(pending)
            comments[line_names[lineno]] = text.replace("fmt: skip", "").strip(" ;")
        pending = []
    return comments


def _type_name(tp) -> str:
    tp = typing.get_args(tp)[0] if typing.get_origin(tp) is typing.Union else tp
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "???"
    if dataclasses.is_dataclass(value):
        return "(group)"
    return "???" if value == "???" else repr(value).replace("|", "\\|")


def rows(cls: type, prefix: str) -> list[str]:
    hints = typing.get_type_hints(cls)
    notes = field_comments(cls) | {k: v for base in cls.__mro__[1:-1] for k, v in field_comments(base).items()
                                   if k not in field_comments(cls)}  # fmt: skip
    out = []
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            out += rows(kind, f"{prefix}{f.name}.")
            continue
        allowed = allowed_values(f)
        cells = [f"`{prefix}{f.name}`", _type_name(kind), f"`{_default(f)}`",
                 ", ".join(f"`{a}`" for a in allowed) if allowed else "", notes.get(f.name, "").replace("|", "\\|")]
        out.append("| " + " | ".join(cells) + " |")
    return out


def _options(group: str) -> str:
    folder = CONF / group
    return ", ".join(f"`{p.stem}`" for p in sorted(folder.glob("*.yaml"))) if folder.is_dir() else ""


def render() -> str:
    table = "| key | type | default | allowed | meaning |\n|---|---|---|---|---|"
    parts = [HEADER]
    for f in dataclasses.fields(RunConfig):
        hint = typing.get_type_hints(RunConfig)[f.name]
        options = _options(f.name)
        title = f"## `{f.name}`" + (f" (options: {options})" if options else "")
        if f.name in GROUP_SCHEMAS:
            parts.append(title)
            for variant, cls in GROUP_SCHEMAS[f.name].items():
                parts += [f"### {f.name}: `{variant}` ({cls.__name__})", table, *rows(cls, f"{f.name}."), ""]
        elif dataclasses.is_dataclass(hint):
            parts += [title, table, *rows(hint, f"{f.name}."), ""]
        else:
            parts += [title, table, *rows_of_field(f, hint), ""]
    return "\n".join(parts).rstrip() + "\n"


def rows_of_field(f: dataclasses.Field, hint) -> list[str]:
    note = field_comments(RunConfig).get(f.name, "").replace("|", "\\|")
    return [f"| `{f.name}` | {_type_name(hint)} | `{_default(f)}` |  | {note} |"]


# ---------------------------------------------------------------- the key list at the top of a group's YAML files

KEYS_MARKER = "# Keys (defaults; one line of meaning each: docs/config.md):"
PLAIN_OPTIONS = ("data/webdataset.yaml", "optim/adamw.yaml", "logger/none.yaml")  # base options without a schema line


def yaml_targets() -> dict[Path, type]:
    """The option files whose keys a reader should see listed: each variant's base file, each `default.yaml`."""
    hints = typing.get_type_hints(RunConfig)
    targets: dict[Path, type] = {}
    for path in sorted(CONF.glob("*/*.yaml")):
        group, text = path.parent.name, path.read_text()
        if group in GROUP_SCHEMAS:
            for variant, cls in GROUP_SCHEMAS[group].items():
                if f"/schema/{group}/{variant}@_here_" in text:
                    targets[path] = cls
        elif group in hints and dataclasses.is_dataclass(hints[group]):
            if path.name == "default.yaml" or f"{group}/{path.name}" in PLAIN_OPTIONS:
                targets[path] = hints[group]
    return targets


def key_lines(cls: type, prefix: str = "") -> list[str]:
    out = []
    for f in dataclasses.fields(cls):
        kind = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(kind):
            out += key_lines(kind, f"{prefix}{f.name}.")
        else:
            out.append(f"#   {prefix}{f.name}: {_yaml_default(f)}")
    return out


def with_key_list(text: str, cls: type) -> str:
    """``text`` with its key list (after the leading comment lines) replaced by the schema's current one."""
    lines = text.splitlines()
    if KEYS_MARKER in lines:
        start = lines.index(KEYS_MARKER)
        end = start + 1
        while end < len(lines) and lines[end].startswith("#   "):
            end += 1
        del lines[start:end]
    else:
        start = 0
        while start < len(lines) and lines[start].startswith("#") and not lines[start].startswith("# @package"):
            start += 1
        if start < len(lines) and lines[start].startswith("# @package"):
            start += 1
    lines[start:start] = [KEYS_MARKER, *key_lines(cls)]
    return "\n".join(lines) + "\n"


def _yaml_default(f: dataclasses.Field) -> str:
    import yaml

    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
        return "???"
    value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("...").strip()
