"""The classifier learns the toy world: held-out renders are classified as their captions say (about 20 s on a
quiet 2-core machine, a minute when it is shared)."""

import pytest
import torch

from lcm_exp.toy.classifier import AttributeClassifier, attribute_accuracy, train_classifier
from lcm_exp.toy.world import ATTRIBUTES, make_images


def test_attribute_accuracy_counts():
    expected = torch.tensor([[0, 0, 0, 0], [1, 1, 1, 1]])
    predicted = torch.tensor([[0, 0, 0, 1], [1, 1, 1, 1]])
    acc = attribute_accuracy(predicted, expected)
    assert acc["background"] == 0.5 and acc["shape"] == 1.0
    assert acc["mean"] == 7 / 8 and acc["all"] == 0.5


@pytest.mark.slow
def test_captions_match_images_by_the_classifier(tmp_path):
    torch.manual_seed(0)
    model = AttributeClassifier()
    data = make_images(2048, seed=11)
    train_classifier(model, data.pixels, data.attributes, steps=600, batch=64, lr=2e-3,
                     generator=torch.Generator().manual_seed(0))  # fmt: skip
    model.save(tmp_path / "clf")
    loaded = AttributeClassifier.load(tmp_path / "clf")
    heldout = make_images(256, seed=12)
    predicted, features = loaded.predict(heldout.pixels)
    assert features.shape == (256, 64)
    acc = attribute_accuracy(predicted, heldout.attributes)
    for name in ATTRIBUTES:
        assert acc[name] > 0.9, acc
