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
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lcm_exp.train.upload import HubUpload, push_model_dir

log = logging.getLogger(__name__)


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
