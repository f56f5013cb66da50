"""Samplers against independent re-derivations from alphas_cumprod (no diffusers stepping in the expectations)."""

import torch
from diffusers import DDIMScheduler

from lcm_exp.evaluate import samplers
from lcm_exp.evaluate.core import conditioning
from lcm_exp.objective import guidance_embedding


def _setup(toy_family, n=3):
    x = torch.randn(n, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    cond, uncond = conditioning(toy_family, ["a red circle on the left on a white background"] * n)
    return x, cond, uncond


def test_ddim_trailing_matches_hand_written_ddim(toy_family):
    unet, ac = toy_family.denoiser, toy_family.schedule.alphas_cumprod.float()
    x, cond, uncond = _setup(toy_family)
    scheduler = DDIMScheduler.from_config(toy_family.scheduler_config, timestep_spacing="trailing",
                                          set_alpha_to_one=False, clip_sample=False)  # fmt: skip
    got = samplers.teacher_sample(samplers.Denoiser(toy_family, unet), scheduler, x, 2, cond, uncond, 3.0, eta=0.0)
    z = x
    for t, prev in [(999, 499), (499, None)]:  # trailing: round(arange(1000, 0, -500)) - 1
        with torch.no_grad():
            out_c = unet(z, torch.full((3,), t), encoder_hidden_states=cond.prompt_embeds).sample
            out_u = unet(z, torch.full((3,), t), encoder_hidden_states=uncond.prompt_embeds).sample
        eps = 4.0 * out_c - 3.0 * out_u  # (1 + w) cond - w uncond
        x0 = (z - (1 - ac[t]).sqrt() * eps) / ac[t].sqrt()
        a_prev = ac[prev] if prev is not None else ac[0]  # set_alpha_to_one=False: the final alpha is alpha_bar[0]
        z = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    torch.testing.assert_close(got, z, rtol=1e-4, atol=1e-4)


def _consistency_student(toy_family):
    return toy_family.guided_student(toy_family.load_denoiser(), 32, "zero").eval()


def test_deterministic_variant_reuses_the_model_noise(toy_family, lcm):
    """x_next = a * (c_skip x + c_out x0) + s * eps_model on the LCM timesteps (N=10, 2 steps: 999, 499)."""
    student = _consistency_student(toy_family)
    ac = toy_family.schedule.alphas_cumprod.float()
    x, cond, _ = _setup(toy_family)
    got = samplers.lcm_deterministic_sample(samplers.Denoiser(toy_family, student), lcm, x, 2, cond, w=3.0)
    w_emb = guidance_embedding(torch.full((3,), 3.0), 32)
    z = x
    for t, nxt in [(999, 499), (499, None)]:
        with torch.no_grad():
            eps = student(z, torch.full((3,), t), timestep_cond=w_emb, encoder_hidden_states=cond.prompt_embeds).sample
        x0 = (z - (1 - ac[t]).sqrt() * eps) / ac[t].sqrt()
        scaled = 10.0 * t
        c_skip, c_out = 0.25 / (scaled**2 + 0.25), scaled / (scaled**2 + 0.25) ** 0.5
        denoised = c_skip * z + c_out * x0
        z = denoised if nxt is None else ac[nxt].sqrt() * denoised + (1 - ac[nxt]).sqrt() * eps
    torch.testing.assert_close(got, z, rtol=1e-4, atol=1e-4)


def test_lcm_one_step_has_no_noise_and_equals_the_deterministic_variant(toy_family, lcm):
    student = samplers.Denoiser(toy_family, _consistency_student(toy_family))
    x, cond, _ = _setup(toy_family)
    gens = [torch.Generator().manual_seed(i) for i in range(3)]
    one = samplers.student_sample(student, lcm, x, 1, cond, 3.0, gens)
    torch.testing.assert_close(one, samplers.lcm_deterministic_sample(student, lcm, x, 1, cond, 3.0))


def test_lcm_noise_is_per_sample(toy_family, lcm):
    """The re-noising of sample i depends only on its own generator, not on the batch it is in."""
    student = samplers.Denoiser(toy_family, _consistency_student(toy_family))
    x, cond, _ = _setup(toy_family)
    full = samplers.student_sample(student, lcm, x, 2, cond, 3.0, [torch.Generator().manual_seed(i) for i in range(3)])
    gens = [torch.Generator().manual_seed(i) for i in (1, 2)]
    part = samplers.student_sample(student, lcm, x[1:], 2, cond[1:], 3.0, gens)
    torch.testing.assert_close(full[1:], part, rtol=1e-4, atol=1e-5)


def test_teacher_without_cond_proj_gets_no_embedding(toy_family):
    assert samplers.student_embedding(samplers.Denoiser(toy_family, toy_family.denoiser), 3.0, 2, "cpu") is None


def test_the_generic_student_sampler_is_the_old_lcm_loop_bitwise(toy_family, lcm):
    """LCD's table must not move: with LCMScheduler the generic sampler returns exactly what the LCM-only loop did
    (its last step's denoised sample), from the same per-sample generators."""
    student = samplers.Denoiser(toy_family, _consistency_student(toy_family))
    x, cond, _ = _setup(toy_family)
    got = samplers.student_sample(student, lcm, x, 4, cond, 3.0, [torch.Generator().manual_seed(i) for i in range(3)])
    lcm.set_timesteps(4)
    w_emb = guidance_embedding(torch.full((3,), 3.0), 32)
    gens = [torch.Generator().manual_seed(i) for i in range(3)]
    z = x
    for t in lcm.timesteps:  # the loop as it was before the evaluation became scheduler-generic
        with torch.no_grad():
            out = student.network(z, torch.full((3,), int(t)), timestep_cond=w_emb,
                                  encoder_hidden_states=cond.prompt_embeds).sample.float()  # fmt: skip
        z, denoised = lcm.step(out, t, z, generator=gens, return_dict=False)
    assert torch.equal(got, denoised)


def test_student_sampling_names_its_scheduler_and_deterministic_variant(lcm):
    from diffusers import TCDScheduler

    assert samplers.StudentSampling(lcm).name == "LCMScheduler"
    assert samplers.StudentSampling(lcm).sampler(True)[0] == "deterministic (own noise estimate)"
    tcd = samplers.StudentSampling(TCDScheduler(), {"eta": 0.3})
    assert tcd.name == "TCDScheduler (gamma 0.3)" and tcd.sampler(True)[0] == "TCDScheduler, gamma 0 (deterministic)"
    assert samplers.StudentSampling(object()).sampler(True) is None  # no deterministic variant known: rows skipped
