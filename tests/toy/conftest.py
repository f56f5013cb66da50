"""A toy teacher built with a tiny recipe (seconds): the real layout and code path, untrained weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from lcm_exp.toy.build import ToyRecipe, ensure_toy_teacher

TINY_RECIPE = ToyRecipe(
    train_images=128, vae_steps=2, vae_batch=8, classifier_steps=2, classifier_batch=8,
    teacher_steps=2, teacher_batch=8, heldout_images=16,
)  # fmt: skip


@pytest.fixture(scope="session")
def tiny_toy_teacher(cache_dir) -> Path:
    return ensure_toy_teacher(cache_dir, seed=0, recipe=TINY_RECIPE)
