"""A CLIP tokenizer built by the project from a word list: no hub, no shipped fixtures, fully deterministic.

The vocabulary follows CLIP's layout (256 byte symbols, the same with the ``</w>`` end-of-word suffix, BPE merge
results, then ``<|startoftext|>`` and ``<|endoftext|>``). Merges come from a tiny greedy BPE over the given words
(most frequent pair first, ties broken by the pair itself), run until every word is one token, so each listed
word encodes to a single id and any other text still tokenizes through the byte symbols.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from transformers import CLIPTokenizer

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
SUFFIX = "</w>"
MODEL_MAX_LENGTH = 77


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP byte-to-unicode table in byte order: the alphabet CLIP's ByteLevel pre-tokenizer emits."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def _split_words(words: Iterable[str]) -> list[tuple[str, ...]]:
    """Normalize and pre-tokenize exactly like CLIPTokenizer, returning each piece as a tuple of symbols."""
    backend = CLIPTokenizer(vocab={BOS: 0, EOS: 1}, merges=[]).backend_tokenizer
    pieces: set[str] = set()
    for word in words:
        text = backend.normalizer.normalize_str(word)
        pieces.update(piece for piece, _ in backend.pre_tokenizer.pre_tokenize_str(text))
    return [(*piece[:-1], piece[-1] + SUFFIX) for piece in sorted(pieces) if piece]


def _learn_merges(words: list[tuple[str, ...]]) -> list[tuple[str, str]]:
    merges: list[tuple[str, str]] = []
    while True:
        pairs = Counter(pair for word in words for pair in zip(word, word[1:], strict=False))
        if not pairs:
            return merges
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        words = [_apply(word, best) for word in words]


def _apply(word: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    out, i = [], 0
    while i < len(word):
        if word[i : i + 2] == pair:
            out.append(pair[0] + pair[1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def build_clip_tokenizer(words: Iterable[str]) -> CLIPTokenizer:
    """Build a CLIPTokenizer whose vocabulary holds every byte symbol plus one token per given word.

    The same words (in any order, with duplicates) give the same vocabulary, merges and saved files.
    """
    merges = _learn_merges(_split_words(words))
    symbols = _byte_symbols()
    tokens = symbols + [s + SUFFIX for s in symbols] + [a + b for a, b in merges] + [BOS, EOS]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MODEL_MAX_LENGTH)
