"""The run record: ``run.json`` in the run dir, written at start and completed at the end.

It holds what is needed to re-create the run (resolved config, overrides, exact command, git commit and diff,
package versions, hardware, seed) and its outcome (status, times, final metrics or the traceback). Secrets are
redacted before anything is written; Hydra's own ``.hydra/`` files are scrubbed the same way.
"""

from __future__ import annotations

import importlib.metadata
import json
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

from lcm_exp.runlog.secrets import redact, redact_override

RECORD = "run.json"
RESOLVED_CONFIG = "config.yaml"
PACKAGES = (
    "lcm_exp", "torch", "diffusers", "transformers", "accelerate", "peft", "webdataset", "hydra-core", "omegaconf",
    "safetensors", "bitsandbytes", "tokenizers", "numpy", "pillow",
)  # fmt: skip
PROJECT_ROOT = Path(__file__).resolve().parents[2]


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

    info: dict[str, Any] = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch_cuda": torch.version.cuda}
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

    def start(self, resolved_config: dict, overrides: list[str], seed: int, teacher: dict, argv: list[str]) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        git = git_state()
        if git.get("diff"):
            (self.run_dir / "git.diff").write_text(git["diff"])
        safe_config = redact(resolved_config)
        (self.run_dir / RESOLVED_CONFIG).write_text(yaml.safe_dump(safe_config, sort_keys=False))
        attempts = self.data.get("attempts", 0) + 1
        self.data.update(
            status="running",
            attempts=attempts,
            start_time=_now(),
            end_time=None,
            command=shlex.join([sys.executable, *[redact_override(a) for a in argv]]),
            cwd=os.getcwd(),
            overrides=[redact_override(o) for o in overrides],
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
        scrub_hydra_files(self.run_dir)

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
        tmp.write_text(json.dumps(self.data, indent=2, default=str))
        os.replace(tmp, self.path)


def scrub_hydra_files(run_dir: Path) -> None:
    """Hydra saves overrides and the config as given; redact secret-looking values in those copies too."""
    hydra_dir = run_dir / ".hydra"
    for name in ("config.yaml", "overrides.yaml", "hydra.yaml"):
        path = hydra_dir / name
        if not path.is_file():
            continue
        data = yaml.safe_load(path.read_text())
        if name == "overrides.yaml" and isinstance(data, list):
            clean = [redact_override(str(o)) for o in data]
        elif name == "hydra.yaml" and isinstance(data, dict):
            clean = redact(data)
            task = clean.get("hydra", {}).get("overrides", {})
            for key in ("task", "hydra"):
                if isinstance(task.get(key), list):
                    task[key] = [redact_override(str(o)) for o in task[key]]
        else:
            clean = redact(data)
        if clean != data:
            path.write_text(yaml.safe_dump(clean, sort_keys=False))
