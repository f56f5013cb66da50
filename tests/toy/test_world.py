import torch

from lcm_exp.toy.text import MAX_LENGTH, build_tokenizer
from lcm_exp.toy.world import (
    ATTRIBUTES,
    BACKGROUNDS,
    COLOURS,
    all_attributes,
    caption,
    combination_index,
    make_images,
    render,
    vocabulary,
)  # fmt: skip


def test_caption_grammar_and_vocabulary():
    assert caption([0, 0, 0, 0]) == "a red circle on the left on a white background"
    assert caption([2, 3, 4, 2]) == "a yellow triangle in the center on a gray background"
    words = set(vocabulary())
    for attrs in all_attributes():
        assert set(caption(attrs).split()) <= words


def test_every_word_is_one_token_and_captions_fit():
    tokenizer = build_tokenizer()
    for word in vocabulary():
        assert len(tokenizer(word).input_ids) == 3, word  # bos, word, eos
    longest = max((caption(a) for a in all_attributes()), key=lambda c: len(c.split()))
    assert len(tokenizer(longest).input_ids) <= MAX_LENGTH


def test_combination_index_is_the_row_of_all_attributes():
    table = all_attributes()
    assert table.shape == (3 * 4 * 5 * 3, 4)
    assert torch.equal(combination_index(table), torch.arange(table.shape[0]))
    assert int(combination_index(torch.tensor([[2, 3, 4, 2]]))) == 179  # last row: every digit at its maximum


def test_render_is_deterministic_and_in_range():
    a, b = make_images(64, seed=3), make_images(64, seed=3)
    assert torch.equal(a.pixels, b.pixels) and torch.equal(a.attributes, b.attributes)
    assert a.pixels.shape == (64, 3, 32, 32) and a.pixels.min() >= -1 and a.pixels.max() <= 1
    assert not torch.equal(a.pixels, make_images(64, seed=4).pixels)


def test_pixels_show_what_the_caption_says():
    """A shape in the centre covers the centre pixel with its colour; the corners show the background colour."""
    rows = torch.tensor([[s, c, 4, b] for s in range(3) for c in range(4) for b in range(3)])
    images = (render(rows, torch.Generator().manual_seed(0)) + 1) / 2
    colours, backgrounds = list(COLOURS.values()), list(BACKGROUNDS.values())
    for image, (_, c, _, b) in zip(images, rows.tolist(), strict=True):
        centre = image[:, 17, 16]  # just below the middle: inside every shape, triangles included
        assert torch.allclose(centre, torch.tensor(colours[c]), atol=0.05)
        for y, x in [(0, 0), (0, 31), (31, 0), (31, 31)]:
            assert torch.allclose(image[:, y, x], torch.tensor(backgrounds[b]), atol=1e-6)


def test_render_rejects_bad_rows():
    import pytest

    with pytest.raises(ValueError, match="colour"):
        render(torch.tensor([[0, len(ATTRIBUTES["colour"]), 0, 0]]), torch.Generator())
    with pytest.raises(ValueError, match="shape"):
        render(torch.zeros(2, 3, dtype=torch.long), torch.Generator())
