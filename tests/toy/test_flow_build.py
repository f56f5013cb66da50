"""The toy flow teacher (toy/flow_*.py) on a tiny recipe: layout, reuse of the toy UNet teacher, determinism, the
rectified-flow training formula; the end-to-end distillation and evaluation on it is slow."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
import torch
from diffusers import StableDiffusion3Pipeline
from transformers import CLIPTextModel

from lcm_exp.toy.build import CLASSIFIER_DIR, WORLD_FILE, read_toy_world
from lcm_exp.toy.flow_build import MARKER, ToyFlowRecipe, ensure_toy_sd3_teacher
from lcm_exp.toy.flow_teacher import sample_sigmas, train_flow_teacher
from tests.toy.conftest import TINY_RECIPE
from tests.train.runner import ROOT, launch

TINY_FLOW = ToyFlowRecipe(world=TINY_RECIPE, train_images=64, teacher_steps=2, teacher_batch=4)


@pytest.fixture(scope="session")
def tiny_flow_teacher(tiny_toy_teacher):
    return ensure_toy_sd3_teacher(tiny_toy_teacher.parent, seed=0, recipe=TINY_FLOW)


def _hashes(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != WORLD_FILE}  # fmt: skip


def test_layout_reuses_the_toy_unet_teachers_vae_text_side_and_judge(tiny_flow_teacher, tiny_toy_teacher):
    from lcm_exp.config.schema import SD3ModelConfig
    from lcm_exp.models.sd3 import SD3Family

    assert (tiny_flow_teacher / MARKER).is_file() and (tiny_flow_teacher / CLASSIFIER_DIR).is_dir()
    flow, unet = _hashes(tiny_flow_teacher), _hashes(tiny_toy_teacher)
    for same in ("vae/diffusion_pytorch_model.safetensors", f"{CLASSIFIER_DIR}/model.safetensors"):
        assert flow[same] == unet[same]
    pipe = StableDiffusion3Pipeline.from_pretrained(tiny_flow_teacher)
    clip_l = {k.removeprefix("text_model."): v for k, v in pipe.text_encoder.state_dict().items()}
    toy_clip = CLIPTextModel.from_pretrained(tiny_toy_teacher / "text_encoder").state_dict()
    assert all(torch.equal(clip_l[k], v) for k, v in toy_clip.items())  # the CLIP-L slot is the toy's encoder
    assert pipe.scheduler.config.shift == 1.0 and pipe.transformer.config.patch_size == 2
    world = read_toy_world(tiny_flow_teacher)
    assert world["flow_teacher"]["max_sequence_length"] == 16 and world["attributes"]
    family = SD3Family(SD3ModelConfig(family="sd3", teacher=str(tiny_flow_teacher), resolution=32,
                                      max_sequence_length=16))  # fmt: skip
    cond = family.encode_text({"captions": ["a red circle on the left on a white background"]})
    assert cond.prompt_embeds.shape == (1, 16 + 16, 128) and cond.pooled_embeds.shape == (1, 128)
    assert family.encode_images(torch.zeros(1, 3, 32, 32)).shape == (1, 4, 8, 8)


def test_build_is_deterministic_and_cached(tiny_flow_teacher, tiny_toy_teacher, tmp_path):
    import shutil

    shutil.copytree(tiny_toy_teacher, tmp_path / tiny_toy_teacher.name)  # the base is reused, not rebuilt
    again = ensure_toy_sd3_teacher(tmp_path, seed=0, recipe=TINY_FLOW)
    assert again != tiny_flow_teacher and _hashes(again) == _hashes(tiny_flow_teacher)
    stamp = (again / MARKER).stat().st_mtime_ns
    assert ensure_toy_sd3_teacher(tmp_path, seed=0, recipe=TINY_FLOW) == again
    assert (again / MARKER).stat().st_mtime_ns == stamp


def test_sigmas_are_logit_normal_then_shifted():
    sigmas = sample_sigmas(20000, torch.Generator().manual_seed(0), shift=1.0)
    assert sigmas.median().item() == pytest.approx(0.5, abs=0.01) and 0 < sigmas.min() and sigmas.max() <= 1
    shifted = sample_sigmas(20000, torch.Generator().manual_seed(0), shift=3.0)
    assert shifted.median().item() == pytest.approx(0.75, abs=0.01)  # 3 * 0.5 / (1 + 2 * 0.5)


class _Recorder(torch.nn.Module):
    """Stands in for the transformer: records its inputs and predicts a learnable constant velocity."""

    def __init__(self):
        super().__init__()
        self.v = torch.nn.Parameter(torch.zeros(1))
        self.calls: list[dict] = []

    @property
    def device(self):
        return self.v.device

    def forward(self, hidden_states, timestep, encoder_hidden_states, pooled_projections):
        self.calls.append({"x": hidden_states.detach(), "t": timestep.detach(), "p": pooled_projections.detach()})
        return type("Out", (), {"sample": self.v.expand_as(hidden_states)})()


def test_training_noises_on_the_flow_path_at_timestep_1000_sigma_and_targets_eps_minus_x0():
    """Replays the documented draw order (batch rows, caption dropout, sigma, noise) and checks each call."""
    from lcm_exp.toy.training import index_batches

    latents = torch.randn(8, 4, 2, 2, generator=torch.Generator().manual_seed(1))
    prompts, pooled = torch.randn(3, 5, 6), torch.arange(3.0).view(3, 1).expand(3, 4)
    ids = torch.tensor([1, 2, 1, 2, 1, 2, 1, 2])
    net = _Recorder()
    train_flow_teacher(net, latents, prompts, pooled, ids, steps=2, batch=4, lr=0.0, caption_dropout=0.5,
                       ema_decay=0.0, generator=torch.Generator().manual_seed(5))  # fmt: skip
    g = torch.Generator().manual_seed(5)
    batches = index_batches(8, 4, g)
    for call in net.calls:
        idx = next(batches)
        kept = torch.where(torch.rand(4, generator=g) < 0.5, 0, ids[idx])
        sigma = sample_sigmas(4, g)
        noise = torch.randn(4, 4, 2, 2, generator=g)
        s = sigma.view(-1, 1, 1, 1)
        torch.testing.assert_close(call["x"], (1 - s) * latents[idx] + s * noise)
        torch.testing.assert_close(call["t"], sigma * 1000)
        torch.testing.assert_close(call["p"][:, 0], kept.float())  # row 0 = the empty prompt when dropped


@pytest.mark.slow
def test_toy_sd3_distills_exports_evaluates_and_its_claims_read(tiny_flow_teacher, cache_dir, tmp_path):
    """The README's flow commands on a 2-step budget: experiment=toy_sd3 ends with its Euler table (evaluation.at_end
    is the preset's), and the claims CLI reads it with the flow teacher's claims."""
    run_dir = tmp_path / "run"
    launch(run_dir, cache_dir, "experiment=toy_sd3", f"model.teacher={tiny_flow_teacher}", "trainer.max_train_steps=2",
           "trainer.checkpointing_steps=2", "validation.at_end=false", "evaluation.num_samples=4",
           "evaluation.reference_steps=4", "evaluation.batch_size=4")  # fmt: skip
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    assert (run_dir / "eval" / "table.txt").read_text().startswith("reference: teacher Euler-4")
    out = subprocess.run([sys.executable, "-m", "lcm_exp.evaluate.claims", str(run_dir)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode in (0, 1), out.stderr[-3000:]  # 1: an untrained teacher may fail a comparison
    assert "student beats euler_cfg on latent_rmse at 1 step" in out.stdout and "ddim" not in out.stdout
