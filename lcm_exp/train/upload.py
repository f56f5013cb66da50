"""Upload an exported model folder to the Hugging Face Hub: weights, scheduler config and model card, nothing else.

Why an allow-list: the diffusers LCD scripts upload their whole output dir, so every checkpoint with its optimizer
state lands on the Hub. Here only the files diffusers needs to load the student leave the machine, and the token
never passes through this code: huggingface_hub reads ``HF_TOKEN`` or the saved login (``hf auth login``) itself,
so no token can end up in a config, a run record or a log line. The CLI is ``python -m lcm_exp.hub``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: the denoiser folders a full student is exported into (a family's denoiser_component)
DENOISERS = ("unet", "transformer")
#: the files of an exported model folder (lcm_exp.train.export), and only those
ALLOW_PATTERNS = (
    "README.md",
    "scheduler/scheduler_config.json",
    *(f"{d}/config.json" for d in DENOISERS),
    *(f"{d}/diffusion_pytorch_model*.safetensors" for d in DENOISERS),  # fp32 and the fp16 variant, maybe sharded
    *(f"{d}/diffusion_pytorch_model*.index*.json" for d in DENOISERS),  # shard indexes of large networks
    "pytorch_lora_weights.safetensors",
    "guidance_cond_proj.safetensors",  # a guidance-conditioned LoRA's w embedding
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
        problems.append("export.push_to_hub=true needs export.hub_model_id (e.g. your-name/my-lcm-lora)")
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
        f.split("/")[0] in DENOISERS and f.endswith(".safetensors") for f in files
    )
    if not has_weights or "scheduler/scheduler_config.json" not in files:
        raise FileNotFoundError(
            f"{model_dir}: no student weights ({'/, '.join(DENOISERS)}/ or pytorch_lora_weights.safetensors) or no "
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


