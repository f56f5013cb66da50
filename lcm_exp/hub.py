"""Publish an exported model folder on the Hugging Face Hub: weights, scheduler config and model card, nothing else.

Why an allow-list: the diffusers LCD scripts upload their whole output dir, so every checkpoint with its optimizer
state lands on the Hub. Here only the files diffusers needs to load the student leave the machine, and the token
never passes through this code: huggingface_hub reads ``HF_TOKEN`` or the saved login (``hf auth login``) itself,
so no token can end up in a config, a run record or a log line.

    python -m lcm_exp.hub <run dir or model dir> [--repo-id user/name] [--private | --no-private]
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: the files of an exported model folder (lcm_exp.train.export), and only those
ALLOW_PATTERNS = (
    "README.md",
    "scheduler/scheduler_config.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model*.safetensors",  # fp32 and the fp16 variant, single or sharded
    "unet/diffusion_pytorch_model*.index*.json",  # shard indexes of large UNets
    "pytorch_lora_weights.safetensors",
)
#: a second fence in case a pattern above ever matches too much: training state never leaves the machine
IGNORE_PATTERNS = ("*checkpoint*", "*optimizer*", "*random_states*", "*.bin", "*.pt", "*.pth", "*.pkl", "*.ckpt")
_MODEL_ID_LINE = re.compile(r'^model_id = ".*"$', flags=re.M)  # the card snippet's (lcm_exp.adapters usage_code)
_REPO_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9_.-]*/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


@dataclass
class HubUpload:
    repo_id: str
    url: str
    files: list[str]  # paths relative to the model folder that were uploaded


def hub_problems(repo_id: str | None) -> list[str]:
    """Config-time checks for ``export.push_to_hub=true``, so a run cannot train for hours and then fail to upload."""
    from huggingface_hub import constants, get_token

    problems = []
    if not repo_id:
        problems.append("export.push_to_hub=true needs export.hub_model_id (e.g. your-name/lcm-sd15-lora)")
    elif not _REPO_ID.match(repo_id) or ".." in repo_id:
        problems.append(
            f'export.hub_model_id={repo_id!r}: not a valid repo id ("name" or "user/name": letters, '
            "digits, '-', '_', '.')"
        )
    if constants.HF_HUB_OFFLINE:
        problems.append("export.push_to_hub=true but HF_HUB_OFFLINE is set: the upload at the end would fail")
    if get_token() is None:
        problems.append(
            "export.push_to_hub=true but no Hugging Face token is available: set HF_TOKEN or run "
            "`hf auth login` (a token is never read from the config)"
        )
    return problems


def upload_files(model_dir: Path) -> list[str]:
    """The files of ``model_dir`` the upload takes (huggingface_hub's own pattern filter, same as upload_folder)."""
    from huggingface_hub.utils import filter_repo_objects

    model_dir = Path(model_dir)
    found = sorted(p.relative_to(model_dir).as_posix() for p in model_dir.glob("**/*") if p.is_file())
    return list(filter_repo_objects(found, allow_patterns=list(ALLOW_PATTERNS), ignore_patterns=list(IGNORE_PATTERNS)))


def check_model_dir(model_dir: Path) -> list[str]:
    """Refuse anything but a complete exported model folder; return the files to upload."""
    model_dir = Path(model_dir)
    if not (model_dir / "README.md").is_file():
        raise FileNotFoundError(f"{model_dir}: no README.md model card; not an exported model folder (<run dir>/model)")
    files = upload_files(model_dir)
    has_weights = "pytorch_lora_weights.safetensors" in files or any(
        f.startswith("unet/") and f.endswith(".safetensors") for f in files
    )
    if not has_weights or "scheduler/scheduler_config.json" not in files:
        raise FileNotFoundError(
            f"{model_dir}: no student weights (unet/ or pytorch_lora_weights.safetensors) or no "
            "scheduler/scheduler_config.json; not an exported model folder"
        )
    root = model_dir.resolve()
    for rel in files:
        if not (model_dir / rel).resolve().is_relative_to(root):
            raise ValueError(f"{model_dir / rel} links outside the model folder; refusing to upload it")
    return files


def card_for_repo(card: str, repo_id: str) -> str:
    """The card's snippet loads from the local folder (wherever it was at export) until the model is published; then
    from the repo."""
    return _MODEL_ID_LINE.sub(f'model_id = "{repo_id}"', card)


def push_model_dir(
    model_dir: str | Path, repo_id: str, *, private: bool = True, api: Any = None, commit_message: str | None = None
) -> HubUpload:
    """Create (or reuse) ``repo_id`` and upload the model folder's allowed files in one commit.

    ``api``: an ``HfApi``-like client (a stand-in in tests); by default ``HfApi()``, which finds the token itself.
    The README is rewritten in place so its snippets load from the repo.
    """
    model_dir = Path(model_dir)
    files = check_model_dir(model_dir)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    repo_id = getattr(repo_url, "repo_id", None) or repo_id  # "name" becomes "user/name"
    card = model_dir / "README.md"
    card.write_text(card_for_repo(card.read_text(), repo_id))
    api.upload_folder(
        repo_id=repo_id,
        folder_path=str(model_dir),
        repo_type="model",
        commit_message=commit_message or "Upload LCM student (lcm_exp)",
        allow_patterns=list(ALLOW_PATTERNS),  # lists: upload_folder appends its defaults to ignore_patterns in place
        ignore_patterns=list(IGNORE_PATTERNS),
    )
    log.info("uploaded %d file(s) to %s: %s", len(files), repo_url, ", ".join(files))
    return HubUpload(repo_id=repo_id, url=str(repo_url), files=files)


def push_after_training(export_cfg: Any, model_dir: str | Path, api: Any = None) -> dict[str, Any]:
    """The end-of-training upload. A failed upload does not fail the finished run: the error is returned for the
    run record with the command that retries it."""
    if not export_cfg.push_to_hub:
        return {}
    try:
        upload = push_model_dir(model_dir, export_cfg.hub_model_id, private=export_cfg.private, api=api)
    except Exception as err:  # network, permissions, quota: the model is safe on disk, say how to retry
        run_dir = Path(model_dir).parent
        log.error("hub upload failed (%s: %s); retry with: python -m lcm_exp.hub %s", type(err).__name__, err, run_dir)
        return {"hub_error": f"{type(err).__name__}: {err} (retry: python -m lcm_exp.hub {run_dir})"}
    return {"hub_url": upload.url}


def locate(path: str | Path) -> tuple[Path, dict]:
    """(model folder, the run's export config or {}) from a run dir or a model dir."""
    path = Path(path)
    model_dir = path / "model" if (path / "model").is_dir() else path
    record = model_dir.parent / "run.json"
    export = json.loads(record.read_text()).get("config", {}).get("export", {}) if record.is_file() else {}
    return model_dir, export or {}


def fail(message: str, code: int = 2) -> None:
    """One line, no traceback: 2 for what the user can fix here (offline, no token, wrong folder), 1 for the Hub."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None, api: Any = None) -> HubUpload:
    parser = argparse.ArgumentParser(prog="python -m lcm_exp.hub", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="a run dir (its model/ is uploaded) or an exported model folder")
    parser.add_argument("--repo-id", help="user/name or name; default: the run's export.hub_model_id")
    parser.add_argument(
        "--private",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="repo visibility when it is created; default: the run's export.private, else private",
    )
    args = parser.parse_args(argv)
    model_dir, export = locate(args.path)
    repo_id = args.repo_id or export.get("hub_model_id")
    if not repo_id:
        fail("no --repo-id given and the run record has no export.hub_model_id")
    private = args.private if args.private is not None else export.get("private", True)
    if api is None:  # the real Hub: say what stops the upload before touching the network
        from huggingface_hub import constants, get_token

        if constants.HF_HUB_OFFLINE:
            fail("HF_HUB_OFFLINE is set, so the Hub cannot be reached: unset it to upload")
        if get_token() is None:
            fail("no Hugging Face token: set HF_TOKEN or run `hf auth login` (a token is never read from the config)")
    try:
        upload = push_model_dir(model_dir, repo_id, private=private, api=api)
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    except Exception as err:  # network, permissions, quota: the folder is intact, the same command retries
        fail(f"upload to {repo_id} failed ({type(err).__name__}: {' '.join(str(err).split())}); the model folder is "
             "unchanged: rerun this command to retry", code=1)  # fmt: skip
    print(upload.url)
    return upload


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    main()
