"""A tiny random SD3.5-layout teacher in the real diffusers folder layout (``tiny-sd3`` of ``ensure_tiny_teacher``).

Everything the real checkpoint has, at toy width: an SD3Transformer2DModel (patch size 2, QK RMS-norm and one
dual-attention block as in SD3.5), a 16-channel VAE with SD3's scaling and shift factors, CLIP-L and CLIP-G text
encoders with projections and a T5 encoder, a FlowMatchEulerDiscreteScheduler with SD3's shift 3.0. Widths differ
on purpose (CLIP 32 + 48 -> 80, padded to T5's 96; pooled 16 + 24 = 40), so a mix-up shows as a shape error.
Tokenizers are built offline (CLIP BPE and a T5 Unigram over the same word list).
"""

from __future__ import annotations

SHIFT = 3.0  # SD3 / SD3.5 scheduler shift
VAE_SCALING, VAE_SHIFT = 1.5305, 0.0609  # SD3's VAE config (objectives-facts 4.2)
CLIP_WIDTHS, CLIP_PROJECTIONS, T5_WIDTH = (32, 48), (16, 24), 96


def _clip(tokenizer, hidden: int, projection: int):
    from transformers import CLIPTextModelWithProjection

    from lcm_exp.models.tiny import _text_encoder_config

    return CLIPTextModelWithProjection(_text_encoder_config(tokenizer, hidden=hidden, projection_dim=projection))


def _t5(tokenizer):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(
        vocab_size=len(tokenizer), d_model=T5_WIDTH, d_kv=16, d_ff=2 * T5_WIDTH, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, feed_forward_proj="gated-gelu", pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id,
    ))  # fmt: skip


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(32, 32, 64, 64), layers_per_block=1,
        latent_channels=16, norm_num_groups=32, sample_size=64, scaling_factor=VAE_SCALING, shift_factor=VAE_SHIFT,
        use_quant_conv=False, use_post_quant_conv=False, force_upcast=True,
    )  # fmt: skip


def _transformer():
    from diffusers import SD3Transformer2DModel

    heads, head_dim = 4, 8
    return SD3Transformer2DModel(
        sample_size=8, patch_size=2, in_channels=16, out_channels=16, num_layers=2, attention_head_dim=head_dim,
        num_attention_heads=heads, joint_attention_dim=T5_WIDTH, caption_projection_dim=heads * head_dim,
        pooled_projection_dim=sum(CLIP_PROJECTIONS), pos_embed_max_size=16, dual_attention_layers=(0,),
        qk_norm="rms_norm",
    )  # fmt: skip


def build_tiny_sd3():
    """The pipeline (random weights from the caller's seeded RNG)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline

    from lcm_exp.models.t5_tokenizer import build_t5_tokenizer
    from lcm_exp.models.tiny import WORDS
    from lcm_exp.models.tokenizer import build_clip_tokenizer

    clip_tokenizer, t5_tokenizer = build_clip_tokenizer(WORDS), build_t5_tokenizer(WORDS)
    return StableDiffusion3Pipeline(
        transformer=_transformer(), scheduler=FlowMatchEulerDiscreteScheduler(shift=SHIFT), vae=_vae(),
        text_encoder=_clip(clip_tokenizer, CLIP_WIDTHS[0], CLIP_PROJECTIONS[0]), tokenizer=clip_tokenizer,
        text_encoder_2=_clip(clip_tokenizer, CLIP_WIDTHS[1], CLIP_PROJECTIONS[1]), tokenizer_2=clip_tokenizer,
        text_encoder_3=_t5(t5_tokenizer), tokenizer_3=t5_tokenizer,
    )  # fmt: skip
