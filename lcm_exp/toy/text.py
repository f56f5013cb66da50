"""The toy world's text side: a word-level CLIP tokenizer and a frozen random CLIP text encoder.

The tokenizer comes from ``build_clip_tokenizer`` over the world's vocabulary, so it is identical on every
rebuild (the probe's trained BPE was not). Captions are at most 12 tokens, so sequences are 16 long.
The encoder is never trained: with CLIP's default init (std 0.02) its outputs barely differ between words, so the
token embedding is re-drawn with std 1.0 (the probe: the teacher then followed the background word 69 % instead of
53 % of the time).
"""

from __future__ import annotations

import torch
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from lcm_exp.models.tokenizer import build_clip_tokenizer
from lcm_exp.toy.world import vocabulary

MAX_LENGTH = 16
HIDDEN = 64
TOKEN_EMBEDDING_STD = 1.0


def build_tokenizer() -> CLIPTokenizer:
    tokenizer = build_clip_tokenizer(vocabulary())
    tokenizer.model_max_length = MAX_LENGTH
    return tokenizer


def build_text_encoder(tokenizer: CLIPTokenizer, generator: torch.Generator) -> CLIPTextModel:
    """A 2-layer CLIP text encoder (width 64) with weights drawn from ``generator``-seeded init."""
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_LENGTH,
        projection_dim=HIDDEN,
        hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        encoder = CLIPTextModel(config)
    with torch.no_grad():
        encoder.get_input_embeddings().weight.normal_(0.0, TOKEN_EMBEDDING_STD, generator=generator)
    return encoder.eval().requires_grad_(False)


@torch.no_grad()
def encode(tokenizer: CLIPTokenizer, encoder: CLIPTextModel, captions: list[str]) -> torch.Tensor:
    """Last hidden state (n, 16, 64), exactly what the SD1.5 family feeds the UNet."""
    ids = tokenizer(captions, padding="max_length", max_length=MAX_LENGTH, truncation=True, return_tensors="pt")
    return encoder(ids.input_ids)[0]
