"""Issue 14 item 9: `python -m lcm_exp.generate` and `python -m lcm_exp.hub` answer a user's mistake with one line
(exit code 2) before any weights load, and a w outside the trained range warns."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from lcm_exp import hub
from lcm_exp.generate import Student, main, resolve_guidance

PROMPT = "a red circle on a blue background"


def _one_line_exit_2(capsys, argv, run=main) -> str:
    with pytest.raises(SystemExit) as stop:
        run(argv)
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(("flag", "value", "needle"), [
    ("--height", "30", "--height 30: must be a multiple of the VAE factor"),
    ("--width", "0", "--width 0: must be a positive number of pixels"),
    ("--height", "-64", "--height -64: must be a positive"),
])  # fmt: skip
def test_a_bad_size_is_one_line_before_loading(full_run, capsys, monkeypatch, flag, value, needle):
    monkeypatch.setattr("lcm_exp.generate.load_pipeline", lambda *a, **k: pytest.fail("weights loaded"))
    assert needle in _one_line_exit_2(capsys, [str(full_run), PROMPT, flag, value])


def test_an_absent_device_is_one_line(full_run, capsys, monkeypatch):
    monkeypatch.setattr("lcm_exp.generate.load_pipeline", lambda *a, **k: pytest.fail("weights loaded"))
    absent = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU (cuda:0 on a machine without one)
    assert f"--device {absent}: not usable on this machine" in _one_line_exit_2(capsys, [str(full_run), PROMPT,
                                                                                      "--device", absent])  # fmt: skip
    assert "--device nonsense" in _one_line_exit_2(capsys, [str(full_run), PROMPT, "--device", "nonsense"])


def _student(adapter: str, embeds_w: bool) -> Student:
    return Student(model_dir=Path("m"), run_dir=None, adapter=adapter, teacher="t", w_range=(3.0, 9.0),
                   embeds_w=embeds_w)  # fmt: skip


@pytest.mark.parametrize(("adapter", "embeds_w", "default"), [("full", True, 8.0), ("lora", True, 8.0),
                                                              ("lora", False, 1.0)])  # fmt: skip
def test_a_chosen_w_outside_the_trained_range_warns(caplog, adapter, embeds_w, default):
    student = _student(adapter, embeds_w)
    inside = 6.0 if embeds_w else 1.0  # w = 5 embedded; a plain LoRA's own scale 1 (no CFG on top)
    with caplog.at_level(logging.WARNING):
        assert resolve_guidance(student) == default  # the recommended value never warns
        assert resolve_guidance(student, guidance_scale=inside) == inside
    assert not [r for r in caplog.records if r.name == "lcm_exp.generate"]
    with caplog.at_level(logging.WARNING):
        resolve_guidance(student, w=20.0)
    if embeds_w:  # a guidance-conditioned LoRA embeds w like a full student
        assert "w = guidance_scale - 1 = 20 is outside the trained range [3, 9]" in caplog.text
    else:
        assert "has no w input (it learned the guided map for w in [3, 9])" in caplog.text


def test_hub_offline_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    err = _one_line_exit_2(capsys, [str(tmp_path), "--repo-id", "me/lcm"], run=hub.main)
    assert "HF_HUB_OFFLINE is set" in err


def test_hub_failure_is_one_line(tmp_path, capsys, monkeypatch):
    class Down:
        def create_repo(self, *a, **k):
            raise ConnectionError("hub unreachable\n  (retries exhausted)")

    monkeypatch.setattr(hub, "check_model_dir", lambda d: ["README.md"])
    with pytest.raises(SystemExit) as stop:
        hub.main([str(tmp_path), "--repo-id", "me/lcm"], api=Down())
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 1 and len(err.splitlines()) == 1 and "ConnectionError: hub unreachable" in err
