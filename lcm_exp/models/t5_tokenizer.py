"""A T5 tokenizer built by the project from a word list: the `tokenizers` Unigram model T5 uses, no sentencepiece.

transformers' T5Tokenizer is a `tokenizers` backend that takes a (piece, score) vocabulary directly. Each listed word
is one piece ("▁word", score -1), single characters are the fallback (score -5, so a word always wins over its
letters), and anything else maps to <unk>. T5's special tokens keep their ids (pad 0, </s> 1, <unk> 2); no sentinel
tokens (SD3 only encodes). The same words in any order give the same vocabulary and files.
"""

from __future__ import annotations

from collections.abc import Iterable

from transformers import T5Tokenizer

SPECIAL = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]


def build_t5_tokenizer(words: Iterable[str], model_max_length: int = 256) -> T5Tokenizer:
    """A T5Tokenizer with one token per word (case-sensitive, like T5) and each of their characters as a fallback."""
    vocab_words = sorted({w for w in words if w.strip()})
    chars = sorted({c for w in vocab_words for c in w})
    vocab = [*SPECIAL, *[(f"▁{w}", -1.0) for w in vocab_words], *[(c, -5.0) for c in chars]]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=model_max_length)
