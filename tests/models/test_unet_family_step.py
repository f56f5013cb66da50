"""distill_step end to end with real tiny diffusers UNets through the UNet families' call convention (unet_fn)."""

import copy

import pytest
import torch
from diffusers import DDPMScheduler, UNet2DConditionModel

from lcm_exp.conditioning import Conditioning
from lcm_exp.models.unet_family import unet_fn
from lcm_exp.objective import DDIMSolver, DDPMSchedule, DistillModels, ObjectiveSpec, build_loss, distill_step

B, TXT = 2, 32


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_unet(seed: int, sdxl: bool, time_cond_proj_dim: int | None = None) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    extra = dict(addition_embed_type="text_time", addition_time_embed_dim=8,
                 projection_class_embeddings_input_dim=6 * 8 + TXT) if sdxl else {}
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TXT, attention_head_dim=8, time_cond_proj_dim=time_cond_proj_dim, **extra)


def conditioning(g: torch.Generator, sdxl: bool, scale: float) -> Conditioning:
    prompt = torch.randn(B, 5, TXT, generator=g) * scale
    if not sdxl:
        return Conditioning(prompt)
    time_ids = torch.tensor([[64.0, 80.0, 0.0, 8.0, 64.0, 64.0]]).repeat(B, 1)
    return Conditioning(prompt, torch.randn(B, TXT, generator=g) * scale, time_ids)


@pytest.mark.parametrize("sdxl", [False, True])
def test_full_student_with_guidance_embedding(sdxl):
    teacher = tiny_unet(0, sdxl).requires_grad_(False)
    student = tiny_unet(0, sdxl, time_cond_proj_dim=16)
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    assert not unexpected and all("cond_proj" in k for k in missing)
    target = copy.deepcopy(student).requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(B, 4, 8, 8, generator=g)
    cond, uncond = conditioning(g, sdxl, 1.0), conditioning(g, sdxl, 0.0)
    models = DistillModels(unet_fn(student), unet_fn(teacher), unet_fn(target), guidance_embedding_dim=16)
    solver = DDIMSolver(DDPMSchedule(DDPMScheduler(beta_schedule="scaled_linear").alphas_cumprod), 50)
    spec = ObjectiveSpec(loss=build_loss("huber", huber_c=0.001), w_min=3.0, w_max=15.0)

    out = distill_step(z0, cond, uncond, models, solver, spec, torch.Generator().manual_seed(1))
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.per_sample_loss.shape == (B,)
    assert student.time_embedding.cond_proj.weight.grad.abs().sum() > 0  # w_emb reached the student
    assert all(p.grad is None for p in target.parameters())

    # two teacher calls in the reference order give the same loss through real UNets
    spec.teacher_single_pass, spec.no_grad_first = False, False
    student.zero_grad()
    again = distill_step(z0, cond, uncond, models, solver, spec, torch.Generator().manual_seed(1))
    torch.testing.assert_close(again.loss, out.loss, rtol=1e-5, atol=1e-6)


def test_lora_style_student_is_target_without_embedding():
    unet = tiny_unet(0, sdxl=False)
    teacher = copy.deepcopy(unet).requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(B, 4, 8, 8, generator=g)
    models = DistillModels(unet_fn(unet), unet_fn(teacher), unet_fn(unet), guidance_embedding_dim=None)
    solver = DDIMSolver(DDPMSchedule(DDPMScheduler(beta_schedule="scaled_linear").alphas_cumprod, "v_prediction"), 50)
    spec = ObjectiveSpec(loss=build_loss("l2"), w_min=8.0, w_max=8.0)
    out = distill_step(z0, conditioning(g, False, 1.0), conditioning(g, False, 0.0), models, solver, spec,
                       torch.Generator().manual_seed(2))
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.w.tolist() == [8.0, 8.0]
    assert unet.conv_in.weight.grad.abs().sum() > 0
