"""The toy flow teacher's three text encoders in SD3's layout, all frozen and random like the toy's own.

CLIP-L slot: the toy UNet teacher's CLIP text encoder itself (same weights), given the projection SD3 reads its
pooled embedding from; CLIP-G slot: a second toy CLIP drawn from another stream; T5 slot: a small T5 encoder over
the toy vocabulary (tokenizer built offline, no sentencepiece), 128 wide so the two 64-wide CLIPs fit beside it
without SD3's crop of the CLIP features. Captions are at most 13 T5 tokens, so T5 sequences are 16 long.
"""

from __future__ import annotations

import torch
from transformers import CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel, T5Tokenizer

from lcm_exp.models.t5_tokenizer import build_t5_tokenizer
from lcm_exp.toy.world import vocabulary

MAX_SEQUENCE_LENGTH = 16
T5_WIDTH = 128


def with_projection(encoder: CLIPTextModel, generator: torch.Generator) -> CLIPTextModelWithProjection:
    """The same CLIP text encoder plus a (seeded, random) ``text_projection``: what SD3 pools from."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        projected = CLIPTextModelWithProjection(encoder.config)
    projected.text_model.load_state_dict(getattr(encoder, "text_model", encoder).state_dict())  # transformers 4 / 5
    return projected.eval().requires_grad_(False)


def build_t5_tokenizer_for_world() -> T5Tokenizer:
    return build_t5_tokenizer(vocabulary(), model_max_length=MAX_SEQUENCE_LENGTH)


def build_t5(tokenizer: T5Tokenizer, generator: torch.Generator) -> T5EncoderModel:
    config = T5Config(vocab_size=len(tokenizer), d_model=T5_WIDTH, d_kv=32, d_ff=2 * T5_WIDTH, num_layers=2,
                      num_heads=4, relative_attention_num_buckets=8, feed_forward_proj="gated-gelu",
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id)  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        return T5EncoderModel(config).eval().requires_grad_(False)
