"""The run record: ``run.json`` in the run dir, written at start and completed at the end.

It holds what is needed to re-create the run (resolved config, overrides, exact command, git commit and diff,
package versions, hardware, seed) and its outcome (status, times, final metrics or the traceback). Secrets are
redacted (by key and by value, lcm_exp.runlog.secrets) in everything written here: run.json at every write,
config.yaml, git.diff and the ``.hydra/`` files, which the task writes in Hydra's place once it owns the dir.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from lcm_exp.runlog.secrets import REDACTED, hidden_leaves, redact, redact_override, redact_text

RECORD = "run.json"
RESOLVED_CONFIG = "config.yaml"
HYDRA_DIR = ".hydra"
HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")
PACKAGES = (
    "lcm_exp", "torch", "diffusers", "transformers", "accelerate", "peft", "webdataset", "hydra-core", "omegaconf",
    "safetensors", "bitsandbytes", "tokenizers", "numpy", "pillow",
)  # fmt: skip
PROJECT_ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state(repo: Path = PROJECT_ROOT) -> dict[str, Any]:
    """Commit, dirty flag and the uncommitted diff of the code that runs (None outside a git checkout)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=30).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        diff = git("diff", "HEAD")
        untracked = git("ls-files", "--others", "--exclude-standard").split()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None, "diff": ""}
    return {"commit": commit, "dirty": bool(diff or untracked), "diff": diff, "untracked": untracked}


def hardware() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                            "torch_cuda": torch.version.cuda}
    if torch.cuda.is_available():
        info["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    else:
        info["devices"] = ["cpu"]
    return info


class RunRecord:
    """Owns run.json of one run dir; every write replaces the file atomically."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / RECORD
        self.data: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def start(self, resolved_config: dict, overrides: list[str], seed: int, teacher: dict, argv: list[str],
              hydra_files: dict | None = None) -> dict[str, object]:
        """Write the run's record, resolved config, git diff and ``.hydra/`` files; return the config values whose
        secret no environment variable holds ({dotted key: value}): the files show *** there."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        git = git_state()
        if git.get("diff"):
            (self.run_dir / "git.diff").write_text(redact_text(git["diff"]))
        safe_config = redact(resolved_config)
        hidden = hidden_leaves(resolved_config, safe_config)
        (self.run_dir / RESOLVED_CONFIG).write_text(yaml.safe_dump(safe_config, sort_keys=False))
        command = shlex.join([sys.executable, *[redact_override(a) for a in argv]])
        safe_overrides = [redact_override(o) for o in overrides]
        if hidden or REDACTED in command or any(REDACTED in o for o in safe_overrides):
            log.warning("a secret in %s is in no environment variable, so the record shows *** and its command "
                        "cannot re-create the run without it; next time put it in one (export DATA_TOKEN=...) and "
                        "write $DATA_TOKEN in a pipe: command or ${oc.env:DATA_TOKEN} elsewhere",
                        ", ".join(hidden) or "the command line")  # fmt: skip
        attempts = self.data.get("attempts", 0) + 1
        self.data.update(
            status="running",
            attempts=attempts,
            start_time=_now(),
            end_time=None,
            command=command,
            cwd=os.getcwd(),
            overrides=safe_overrides,
            seed=seed,
            teacher=teacher,
            git={"commit": git.get("commit"), "dirty": git.get("dirty"), "untracked": git.get("untracked", []),
                 "diff_file": "git.diff" if git.get("diff") else None},
            python=sys.version.split()[0],
            packages=package_versions(),
            hardware=hardware(),
            config=safe_config,
            metrics=None,
            error=None,
        )
        self._write()
        if hydra_files:
            write_hydra_files(self.run_dir, hydra_files)
        return hidden

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        self._write()

    def finish(self, status: str, metrics: dict | None = None, error: BaseException | None = None) -> None:
        self.data.update(status=status, end_time=_now())
        if metrics is not None:
            self.data["metrics"] = metrics
        if error is not None:
            self.data["error"] = {"type": type(error).__name__, "message": str(error),
                                  "traceback": "".join(traceback.format_exception(error))}
        self._write()

    def _write(self) -> None:
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(redact(self.data), indent=2, default=str))  # error messages and tracebacks too
        os.replace(tmp, self.path)


def write_hydra_files(run_dir: Path, files: dict[str, object]) -> None:
    """Hydra's ``.hydra/{config,hydra,overrides}.yaml`` (same names and shape: the composed config and Hydra's
    own, both unresolved, and the overrides), redacted; written by the task once it owns the dir
    (conf/config.yaml sets hydra.output_subdir=null so that Hydra never writes them before a refusal)."""
    hydra_dir = run_dir / HYDRA_DIR
    hydra_dir.mkdir(exist_ok=True)
    for name in HYDRA_FILES:
        if name in files:
            (hydra_dir / name).write_text(yaml.safe_dump(redact(files[name]), sort_keys=False))
