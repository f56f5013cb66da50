import hashlib
import random

from transformers import CLIPTokenizer

from lcm_exp.models.tokenizer import build_clip_tokenizer

WORDS = ["a", "red", "circle", "blue", "square", "on", "the", "background"]


def _hashes(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_merges_and_vocab_pinned_by_hand():
    # words: (a, b</w>) and (a, b, c</w>); all pairs count 1, so ties go to the smallest pair:
    # (a, b) < (a, b</w>) < (ab, c</w>).
    tok = build_clip_tokenizer(["ab", "abc"])
    vocab = tok.get_vocab()
    assert [vocab["ab"], vocab["ab</w>"], vocab["abc</w>"]] == [512, 513, 514]
    assert (tok.bos_token_id, tok.eos_token_id, len(tok)) == (515, 516, 517)
    assert vocab["a"] == ord("a") and vocab["a</w>"] == 256 + ord("a")  # CLIP byte order, then the </w> copies
    assert tok.convert_ids_to_tokens(tok("abc ab").input_ids) == [
        "<|startoftext|>",
        "abc</w>",
        "ab</w>",
        "<|endoftext|>",
    ]


def test_same_words_give_identical_files(tmp_path):
    shuffled = WORDS[::-1] + WORDS[:3]
    random.Random(0).shuffle(shuffled)
    build_clip_tokenizer(WORDS).save_pretrained(tmp_path / "a")
    build_clip_tokenizer(shuffled).save_pretrained(tmp_path / "b")
    assert _hashes(tmp_path / "a") == _hashes(tmp_path / "b")


def test_clip_conventions_and_distinct_ids():
    tok = build_clip_tokenizer(WORDS)
    ids = tok("A  Red circle", padding="max_length", max_length=tok.model_max_length).input_ids
    assert tok.model_max_length == 77 and len(ids) == 77
    assert tok.pad_token == tok.eos_token == "<|endoftext|>" and tok.bos_token == "<|startoftext|>"
    assert ids[0] == tok.bos_token_id and ids[4:] == [tok.eos_token_id] * 73  # lowercased: one token per word
    assert tok.convert_ids_to_tokens(ids[1:4]) == ["a</w>", "red</w>", "circle</w>"]
    assert len(set(ids[1:4])) == 3


def test_unknown_words_fall_back_to_characters():
    tok = build_clip_tokenizer(WORDS)
    tokens = tok.convert_ids_to_tokens(tok("zebra 42!").input_ids)
    assert tokens == ["<|startoftext|>", "z", "e", "b", "r", "a</w>", "4</w>", "2</w>", "!</w>", "<|endoftext|>"]
    assert tok.unk_token_id not in tok("zebra 42!").input_ids[1:-1]


def test_save_load_roundtrip(tmp_path):
    tok = build_clip_tokenizer(WORDS)
    tok.save_pretrained(tmp_path)
    loaded = CLIPTokenizer.from_pretrained(tmp_path)
    text = ["a red circle on the background", "zebra square"]
    assert loaded(text, padding="max_length").input_ids == tok(text, padding="max_length").input_ids
    assert loaded.model_max_length == 77 and loaded.pad_token_id == tok.pad_token_id
