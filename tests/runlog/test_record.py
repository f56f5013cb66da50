"""Issue 2 item 6: the run record has every field and never a secret."""

from __future__ import annotations

import os
from pathlib import Path

from lcm_exp.runlog.secrets import REDACTED, redact, redact_override
from tests.train.runner import launch, record

FIELDS = {"status", "attempts", "start_time", "end_time", "command", "cwd", "overrides", "seed", "teacher", "git",
          "python", "packages", "hardware", "config", "metrics", "error"}  # fmt: skip
SECRET = "hf_SECRETvalue123"


def test_redaction_of_config_and_overrides():
    cfg = {"hub": {"hf_token": SECRET, "api_key": SECRET, "caption_keys": ["txt"]}, "password": SECRET, "name": "x"}
    clean = redact(cfg)
    assert SECRET not in str(clean)
    assert clean["hub"]["caption_keys"] == ["txt"] and clean["name"] == "x"
    assert redact_override(f"+hub.hf_token={SECRET}") == f"+hub.hf_token={REDACTED}"
    assert redact_override("guidance.w_min=3") == "guidance.w_min=3"


def test_run_record_is_complete_and_secret_free(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    launch(tmp_path, cache_dir, "trainer.max_train_steps=1", "logger=tensorboard", "seed=7")
    rec = record(tmp_path)
    assert FIELDS <= set(rec)
    assert rec["status"] == "completed" and rec["seed"] == 7 and rec["metrics"]["steps"] == 1
    assert Path(rec["teacher"]["teacher"]).is_absolute() and rec["teacher"]["prediction_type"] == "epsilon"
    assert rec["packages"]["torch"] and rec["packages"]["diffusers"] and rec["hardware"]["devices"]
    assert "trainer.max_train_steps=1" in rec["overrides"] and "launch.py" in rec["command"]
    assert {"commit", "dirty"} <= set(rec["git"])
    assert (tmp_path / "config.yaml").exists() and list((tmp_path / "logs").rglob("events.out.tfevents*"))
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            assert SECRET.encode() not in path.read_bytes(), path
    assert os.environ["HF_TOKEN"] == SECRET  # the run saw it, and wrote it nowhere
