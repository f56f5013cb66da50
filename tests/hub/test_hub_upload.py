"""Hub upload against a local stand-in for HfApi: only the model folder's files, never checkpoints, never a token."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub.hf_api import DEFAULT_IGNORE_PATTERNS
from huggingface_hub.utils import filter_repo_objects
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from lcm_exp.config.schema import ExportConfig
from lcm_exp.hub import main
from lcm_exp.train import upload
from lcm_exp.train.upload import ALLOW_PATTERNS, IGNORE_PATTERNS, hub_problems, push_after_training, push_model_dir
from tests.config.compose import compose_config
from tests.train.runner import launch

SECRET = "hf_THIS_IS_A_SECRET_TOKEN_0123456789"
MODEL_FILES = {
    "README.md", "scheduler/scheduler_config.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
}  # fmt: skip


class FakeHub:
    """Records the calls; computes what upload_folder would send the way huggingface_hub does (its pattern filter plus
    its default ignores), and keeps the bytes of every file that would leave the machine."""

    def __init__(self, fail: bool = False):
        self.calls: list[tuple[str, dict]] = []
        self.uploaded: dict[str, bytes] = {}
        self.fail = fail

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        if self.fail:
            raise ConnectionError("hub unreachable")
        return _RepoUrl(repo_id if "/" in repo_id else f"me/{repo_id}")  # a bare name lands under the user

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", dict(kwargs)))
        folder = Path(kwargs["folder_path"])
        found = sorted(p.relative_to(folder).as_posix() for p in folder.glob("**/*") if p.is_file())
        ignore = list(kwargs["ignore_patterns"]) + DEFAULT_IGNORE_PATTERNS
        for rel in filter_repo_objects(found, allow_patterns=kwargs["allow_patterns"], ignore_patterns=ignore):
            self.uploaded[rel] = (folder / rel).read_bytes()
        return "commit"


class _RepoUrl(str):
    """Like huggingface_hub.RepoUrl: the url as a str, with the canonical repo_id."""

    def __new__(cls, repo_id):
        obj = super().__new__(cls, f"https://huggingface.co/{repo_id}")
        obj.repo_id = repo_id
        return obj


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, cache_dir):
    run = tmp_path_factory.mktemp("hubrun")
    launch(run, cache_dir, "model=tiny_sd15", "adapter=full", "trainer.max_train_steps=2",
           "trainer.checkpointing_steps=1", "validation.at_end=false")  # fmt: skip
    return run


@pytest.fixture
def run_copy(run_dir, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(run_dir, dst)
    return dst


def test_run_dir_upload_sends_the_model_folder_only(run_copy, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    assert list((run_copy / "checkpoints").glob("checkpoint-*/optimizer.bin")), "the run has real checkpoints"
    fake = FakeHub()
    upload = main([str(run_copy), "--repo-id", "me/lcm-tiny"], api=fake)
    assert set(fake.uploaded) == MODEL_FILES == set(upload.files)
    (name, create), (name2, up) = fake.calls
    assert (name, name2) == ("create_repo", "upload_folder")
    assert create == {"repo_id": "me/lcm-tiny", "private": True, "exist_ok": True, "repo_type": "model"}
    assert Path(up["folder_path"]) == run_copy / "model" and up["repo_id"] == "me/lcm-tiny"
    assert upload.url == "https://huggingface.co/me/lcm-tiny"


def test_no_checkpoint_state_or_token_can_reach_the_client(run_copy, monkeypatch):
    """Plant training state and secrets inside the model folder itself: none of it leaves, and no call carries a
    token (huggingface_hub reads it from the environment on its own)."""
    monkeypatch.setenv("HF_TOKEN", SECRET)
    model = run_copy / "model"
    shutil.copytree(run_copy / "checkpoints", model / "checkpoints")
    (model / "optimizer.bin").write_bytes(b"state")
    (model / "unet" / "optimizer_state.safetensors").write_bytes(b"state")
    (model / "unet" / "ema.pt").write_bytes(b"state")
    (model / ".env").write_text(f"HF_TOKEN={SECRET}\n")
    (model / "token.txt").write_text(SECRET)
    (model / "scheduler" / "random_states_0.pkl").write_bytes(b"rng")
    fake = FakeHub()
    push_model_dir(model, "me/lcm-tiny", api=fake)
    assert set(fake.uploaded) == MODEL_FILES
    for _, kwargs in fake.calls:
        assert "token" not in kwargs
        assert SECRET not in repr(kwargs)
    assert all(SECRET.encode() not in data for data in fake.uploaded.values())
    assert list(ALLOW_PATTERNS) == list(upload.ALLOW_PATTERNS) and "*.git*" not in IGNORE_PATTERNS, "constants unchanged"


def test_card_is_rewritten_to_load_from_the_repo(run_dir, run_copy):
    local = str((run_dir / "model").resolve())  # where it was exported; the copy has moved since
    assert f'model_id = "{local}"' in (run_copy / "model" / "README.md").read_text()
    fake = FakeHub()
    push_model_dir(run_copy / "model", "lcm-tiny", api=fake)  # a bare name: the hub puts it under the user
    card = fake.uploaded["README.md"].decode()
    assert 'model_id = "me/lcm-tiny"' in card and local not in card
    assert fake.calls[1][1]["repo_id"] == "me/lcm-tiny"


def test_cli_takes_repo_and_visibility_from_the_run_record(run_copy):
    import json

    record = json.loads((run_copy / "run.json").read_text())
    record["config"]["export"].update(hub_model_id="me/from-record", private=False)
    (run_copy / "run.json").write_text(json.dumps(record))
    fake = FakeHub()
    main([str(run_copy / "model")], api=fake)
    assert fake.calls[0][1]["repo_id"] == "me/from-record" and fake.calls[0][1]["private"] is False
    fake = FakeHub()
    main([str(run_copy), "--private"], api=fake)
    assert fake.calls[0][1]["private"] is True


def test_end_of_training_call(run_copy):
    on = SimpleNamespace(push_to_hub=True, hub_model_id="me/lcm-tiny", private=True)
    fake = FakeHub()
    assert push_after_training(on, run_copy / "model", api=fake) == {"hub_url": "https://huggingface.co/me/lcm-tiny"}
    off = FakeHub()
    assert push_after_training(SimpleNamespace(push_to_hub=False), run_copy / "model", api=off) == {}
    assert off.calls == []
    failed = push_after_training(on, run_copy / "model", api=FakeHub(fail=True))
    assert "hub unreachable" in failed["hub_error"] and f"python -m lcm_exp.hub {run_copy}" in failed["hub_error"]


def test_refuses_what_is_not_an_exported_model_folder(run_copy, tmp_path):
    with pytest.raises(FileNotFoundError, match="not an exported model folder"):
        push_model_dir(run_copy, "me/x", api=FakeHub())  # the run dir itself
    (run_copy / "model" / "scheduler" / "scheduler_config.json").unlink()
    with pytest.raises(FileNotFoundError, match="scheduler_config.json"):
        push_model_dir(run_copy / "model", "me/x", api=FakeHub())
    outside = tmp_path / "elsewhere.safetensors"
    outside.write_bytes(b"x")
    weights = run_copy / "model" / "unet" / "diffusion_pytorch_model.safetensors"
    weights.unlink()
    weights.symlink_to(outside)
    (run_copy / "model" / "scheduler" / "scheduler_config.json").write_text("{}")
    with pytest.raises(ValueError, match="links outside the model folder"):
        push_model_dir(run_copy / "model", "me/x", api=FakeHub())


def test_config_time_checks(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # no saved login
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(tmp_path / "token"))
    assert any("no Hugging Face token" in p for p in hub_problems("me/x"))
    monkeypatch.setenv("HF_TOKEN", SECRET)
    assert hub_problems("me/x") == []
    assert any("needs export.hub_model_id" in p for p in hub_problems(None))
    assert any("not a valid repo id" in p for p in hub_problems("me/../x"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    assert any("HF_HUB_OFFLINE" in p for p in hub_problems("me/x"))


def test_a_token_cannot_be_put_in_the_config():
    """No token key exists in the schema; a forced ``+`` key is dropped by the typed config the run uses."""
    for override in ("export.hub_token=abc", "export.token=abc"):
        with pytest.raises(ConfigCompositionException):
            compose_config([override])
    forced = OmegaConf.to_object(compose_config(["+export.hub_token=abc"]).export)
    assert isinstance(forced, ExportConfig) and "abc" not in repr(forced)
