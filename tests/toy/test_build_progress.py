"""Issue 14 item 10: the toy-teacher build shows a progress bar per phase with an ETA, not a log line per N steps."""

from __future__ import annotations

import logging

from lcm_exp.toy.build import ToyRecipe, build_toy_teacher

RECIPE = ToyRecipe(train_images=64, vae_steps=3, vae_batch=4, classifier_steps=3, classifier_batch=4,
                   teacher_steps=3, teacher_batch=4, heldout_images=8)  # fmt: skip


def test_each_build_phase_has_a_bar_with_an_eta_and_no_step_log_lines(tmp_path, capsys, caplog, one_thread):
    with caplog.at_level(logging.INFO):
        build_toy_teacher(tmp_path, seed=0, recipe=RECIPE)
    bars = capsys.readouterr().err.replace("\r", "\n")
    for phase in ("toy build 1/3: VAE", "toy build 2/3: classifier", "toy build 3/3: teacher"):
        final = [line for line in bars.splitlines() if line.startswith(phase) and "3/3 [" in line]
        assert final, f"no finished bar for {phase}:\n{bars[-2000:]}"
        assert "<" in final[-1] and ("step/s" in final[-1] or "s/step" in final[-1])  # elapsed<remaining, rate
    assert "loss" in bars  # the phases' own progress lines feed the bars instead of the log
    assert not [r for r in caplog.records if "step 3/3" in r.getMessage()]
