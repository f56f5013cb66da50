"""SDXL family: two-encoder embeddings, micro-conditioning order, both unconditional modes."""

import pytest
import torch
from diffusers import LCMScheduler, StableDiffusionXLPipeline
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from lcm_exp.models.sdxl import SDXLFamily
from lcm_exp.models.unet_family import unet_kwargs

RES = 64


def _batch(captions=("a red circle", "blue square")):
    return {
        "captions": list(captions),
        "original_size": torch.tensor([[300, 200], [64, 64]]),  # (h, w): a portrait original
        "crop_top_left": torch.tensor([[3, 4], [0, 0]]),
        "keys": ["s0", "s1"],
    }


def test_time_ids_are_height_width_ordered(sdxl_family):
    cond = sdxl_family.encode_text(_batch())
    expected = torch.tensor([[300.0, 200.0, 3.0, 4.0, RES, RES], [64.0, 64.0, 0.0, 0.0, RES, RES]])
    assert torch.equal(cond.time_ids, expected) and cond.time_ids.dtype == torch.float32


def test_fixed_crop_and_size(sdxl_teacher, sdxl_cfg):
    fam = SDXLFamily(sdxl_cfg(sdxl_teacher, fixed_crop_and_size=True))
    cond = fam.encode_text({"captions": ["a", "b"]})  # the size keys are not needed then
    assert torch.equal(cond.time_ids, torch.tensor([[RES, RES, 0.0, 0.0, RES, RES]] * 2))


def test_bad_size_keys(sdxl_family):
    batch = _batch()
    batch["crop_top_left"] = torch.tensor([[3, 4]])
    with pytest.raises(ValueError, match="crop_top_left.*s0"):
        sdxl_family.encode_text(batch)
    del batch["original_size"]
    with pytest.raises(KeyError, match="original_size"):
        sdxl_family.encode_text(batch)


def test_embeddings_match_both_encoders(sdxl_family, sdxl_teacher):
    captions = ["a red circle", "zebra"]
    cond = sdxl_family.encode_text(_batch(captions))
    assert cond.prompt_embeds.shape == (2, 77, 32 + 64) and cond.pooled_embeds.shape == (2, 48)
    tok = CLIPTokenizer.from_pretrained(sdxl_teacher / "tokenizer")
    ids = tok(captions, padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        one = CLIPTextModel.from_pretrained(sdxl_teacher / "text_encoder")(ids, output_hidden_states=True)
        two = CLIPTextModelWithProjection.from_pretrained(sdxl_teacher / "text_encoder_2")(
            ids, output_hidden_states=True
        )
    assert len(one.hidden_states) == 3  # embeddings + 2 layers: [-2] is the first layer's output
    torch.testing.assert_close(cond.prompt_embeds[..., :32], one.hidden_states[1])
    torch.testing.assert_close(cond.prompt_embeds[..., 32:], two.hidden_states[1])
    torch.testing.assert_close(cond.pooled_embeds, two.text_embeds)


def test_zeros_uncond_keeps_time_ids(sdxl_family):
    cond = sdxl_family.encode_text(_batch())
    uncond = sdxl_family.unconditional(cond)
    assert torch.count_nonzero(uncond.prompt_embeds) == 0 and torch.count_nonzero(uncond.pooled_embeds) == 0
    assert uncond.pooled_embeds.shape == cond.pooled_embeds.shape
    assert torch.equal(uncond.time_ids, cond.time_ids)


def test_empty_prompt_uncond(sdxl_teacher, sdxl_cfg):
    fam = SDXLFamily(sdxl_cfg(sdxl_teacher, uncond="empty_prompt"))
    cond = fam.encode_text(_batch())
    empty = fam.encode_text(_batch(["", ""]))
    uncond = fam.unconditional(cond)
    torch.testing.assert_close(uncond.prompt_embeds, empty.prompt_embeds)
    torch.testing.assert_close(uncond.pooled_embeds, empty.pooled_embeds)
    assert torch.equal(uncond.time_ids, cond.time_ids)
    assert torch.count_nonzero(uncond.pooled_embeds) > 0


def test_unet_accepts_conditioning_and_pipeline(sdxl_family):
    cond = sdxl_family.encode_text(_batch())
    both = cond.cat(sdxl_family.unconditional(cond))
    latents = sdxl_family.encode_images(torch.zeros(2, 3, RES, RES))
    with torch.no_grad():
        out = sdxl_family.denoiser(latents.repeat(2, 1, 1, 1), torch.tensor([999] * 4), **unet_kwargs(both)).sample
    assert out.shape == (4, 4, RES // 8, RES // 8) and torch.isfinite(out).all()
    pipe = sdxl_family.build_pipeline(sdxl_family.denoiser, LCMScheduler.from_config(sdxl_family.scheduler_config))
    assert isinstance(pipe, StableDiffusionXLPipeline) and pipe.text_encoder_2 is sdxl_family.text_encoders[1]
    pipe.set_progress_bar_config(disable=True)
    images = pipe(
        "a red circle", num_inference_steps=2, guidance_scale=1.0, height=64, width=64, output_type="np"
    ).images
    assert images.shape == (1, 64, 64, 3) and torch.isfinite(torch.from_numpy(images)).all()
