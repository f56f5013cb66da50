"""TCD and PCM students export TCDScheduler: the card's snippet (with the objective's eta) runs as written in plain
diffusers, and the pipeline samples exactly what the objective trained (PCM: each step lands on its phase edge) and
what the evaluation measures (TCD with gamma)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline, TCDScheduler, UNet2DConditionModel

from lcm_exp.evaluate import samplers
from lcm_exp.evaluate.core import conditioning
from lcm_exp.objective import PCM
from lcm_exp.train.components import build_solver
from lcm_exp.train.export import export_model, load_exported_scheduler
from tests.export.conftest import python_blocks

PROMPT = "a photo of a cat"


@pytest.mark.parametrize(("model", "adapter", "objective", "call"), [
    ("tiny_sd15", "full", "objective=tcd objective.gamma=0.4", "eta=0.4"),
    ("tiny_sd15", "lora", "objective=pcm objective.phases=2 objective.num_ddim_timesteps=10", "eta=0.0"),
    ("tiny_sdxl", "lora", "objective=tcd", "eta=0.3"),
])  # fmt: skip
def test_card_snippet_with_the_objectives_scheduler_runs_as_written(make, tmp_path, monkeypatch, model, adapter,
                                                                    objective, call):  # fmt: skip
    cfg, family, student, run_dir = make(f"model={model}", f"adapter={adapter}", *objective.split())
    model_dir = export_model(cfg, family, student, run_dir)
    assert isinstance(load_exported_scheduler(model_dir), TCDScheduler)
    card = (model_dir / "README.md").read_text()
    (snippet,) = python_blocks(card)
    assert "TCDScheduler.from_pretrained(model_id" in snippet and f"{call}).images[0]" in snippet
    assert f"objective `{cfg.objective.name}`" in card and f"`{call}`" in card
    if cfg.objective.name == "pcm":
        assert "2, 4, 6, 8, 10 steps land exactly on the phase edges" in card
    namespace: dict = {}
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "model-card-snippet", "exec"), namespace)
    assert np.asarray(namespace["image"]).std() > 0


def _pipeline(family, model_dir):
    unet = UNet2DConditionModel.from_pretrained(model_dir, subfolder="unet")
    pipe = StableDiffusionPipeline.from_pretrained(family.teacher, unet=unet, safety_checker=None)
    pipe.scheduler = TCDScheduler.from_pretrained(model_dir, subfolder="scheduler")
    pipe.set_progress_bar_config(disable=True)
    return pipe, unet


def _noise(family):
    side = family.cfg.resolution // 2 ** (len(family.vae.config.block_out_channels) - 1)
    return torch.randn(1, family.denoiser.config.in_channels, side, side, generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize("phases", [2, 5])
def test_plain_diffusers_samples_a_pcm_student_along_its_phase_edges(make, phases):
    """K steps of the exported TCDScheduler (eta 0) = from the grid's top, the trained map to the phase edge, then
    from that edge the map to the next, down to t = 0: the objective's own output at its own end points."""
    cfg, family, student, run_dir = make("model=tiny_sd15", "adapter=full", "objective=pcm",
                                         f"objective.phases={phases}", "objective.num_ddim_timesteps=10")  # fmt: skip
    with torch.no_grad():
        student.target.time_embedding.cond_proj.weight.normal_()  # the exported (EMA) student, not the teacher
    pipe, unet = _pipeline(family, export_model(cfg, family, student, run_dir))
    cond, _ = conditioning(family, [PROMPT])
    x = _noise(family) * pipe.scheduler.init_noise_sigma
    res = family.cfg.resolution
    got = pipe(prompt_embeds=cond.prompt_embeds, num_inference_steps=phases, guidance_scale=4.0, eta=0.0,
               latents=x.clone(), output_type="latent", height=res, width=res).images  # fmt: skip

    objective, solver = PCM(phases=phases), build_solver(family.schedule, 10, "cpu")
    w_emb = samplers.student_embedding(samplers.Denoiser(family, unet), 3.0, 1, "cpu")
    t = solver.timesteps[-1:].clone()
    visited = []
    with torch.no_grad():
        while True:
            x0, eps = solver.x0_eps(unet(x, t, cond.prompt_embeds, timestep_cond=w_emb).sample, x, t)
            s = objective.end_points(torch.div(t + 1, solver.step_ratio, rounding_mode="floor") - 1, solver, None)
            x = objective.output(solver, x, x0, eps, t, s)
            visited.append(int(t))
            if int(s) == 0:
                break
            t = s
    assert len(visited) == phases
    torch.testing.assert_close(got, x, rtol=1e-4, atol=1e-4)


def test_plain_diffusers_samples_a_tcd_student_as_the_evaluation_does(make):
    """gamma > 0: the pipeline called with eta = gamma re-noises as the evaluation's sampler does (same generator)."""
    cfg, family, student, run_dir = make("model=tiny_sd15", "adapter=full", "objective=tcd", "objective.gamma=0.5",
                                         "objective.num_ddim_timesteps=10")  # fmt: skip
    with torch.no_grad():
        student.target.time_embedding.cond_proj.weight.normal_()
    pipe, unet = _pipeline(family, export_model(cfg, family, student, run_dir))
    cond, _ = conditioning(family, [PROMPT])
    x = _noise(family)
    res = family.cfg.resolution
    got = pipe(prompt_embeds=cond.prompt_embeds, num_inference_steps=4, guidance_scale=4.0, eta=0.5, latents=x.clone(),
               generator=torch.Generator().manual_seed(9), output_type="latent", height=res,
               width=res).images  # fmt: skip
    ours = samplers.student_sample(samplers.Denoiser(family, unet), load_exported_scheduler(run_dir / "model"), x, 4,
                                   cond, 3.0, [torch.Generator().manual_seed(9)], eta=0.5)  # fmt: skip
    torch.testing.assert_close(got, ours, rtol=1e-4, atol=1e-4)
    no_noise = samplers.student_sample(samplers.Denoiser(family, unet), load_exported_scheduler(run_dir / "model"), x,
                                       4, cond, 3.0, [torch.Generator().manual_seed(9)], eta=0.0)  # fmt: skip
    assert not torch.allclose(got, no_noise, atol=1e-3)  # gamma reached the scheduler
