"""python -m lcm_exp.generate with a TCD student: the exported TCDScheduler, called with the objective's eta (gamma),
pinned against a plain diffusers pipeline built by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline, TCDScheduler, UNet2DConditionModel
from PIL import Image

from lcm_exp.generate import load_pipeline, locate_student, main
from tests.train.runner import launch, record

PROMPT = "a red circle on a blue background"


@pytest.fixture(scope="module")
def tcd_run(tmp_path_factory, cache_dir):
    run_dir = tmp_path_factory.mktemp("gen_tcd")
    launch(run_dir, cache_dir, "model=tiny_sd15", "trainer.max_train_steps=2", "validation.at_end=false",
           "adapter=full", "objective=tcd", "objective.gamma=0.7", "objective.num_ddim_timesteps=10")  # fmt: skip
    return run_dir


def test_a_tcd_run_generates_with_its_scheduler_and_gamma(tcd_run, tmp_path):
    student = locate_student(tcd_run)
    assert student.sampling == {"eta": 0.7}
    assert isinstance(load_pipeline(student).scheduler, TCDScheduler)
    main([str(tcd_run), PROMPT, "--w", "3", "--seeds", "4", "--steps", "4", "--out", str(tmp_path)])
    ours = np.asarray(Image.open(tmp_path / "p00_s4.png").convert("RGB"))

    unet = UNet2DConditionModel.from_pretrained(tcd_run / "model", subfolder="unet")
    pipe = StableDiffusionPipeline.from_pretrained(record(tcd_run)["teacher"]["teacher"], unet=unet)
    pipe.scheduler = TCDScheduler.from_pretrained(tcd_run / "model", subfolder="scheduler")
    pipe.set_progress_bar_config(disable=True)

    def plain(eta):
        return np.asarray(pipe(PROMPT, num_inference_steps=4, guidance_scale=4.0, height=32, width=32, eta=eta,
                               generator=torch.Generator("cpu").manual_seed(4)).images[0])  # fmt: skip

    np.testing.assert_array_equal(ours, plain(0.7))
    assert not np.array_equal(ours, plain(0.0)), "gamma reaches the scheduler"
    assert json.loads((tmp_path / "generate.json").read_text())["steps"] == 4
