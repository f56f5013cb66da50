"""A tiny toy teacher (untrained weights, real layout) and its SD1.5 family, shared by the evaluation tests."""

from __future__ import annotations

import pytest
from diffusers import LCMScheduler

from lcm_exp.config.schema import ModelConfig
from tests.toy.conftest import tiny_toy_teacher  # noqa: F401  (session fixture)


@pytest.fixture(scope="session")
def toy_family(tiny_toy_teacher):  # noqa: F811
    from lcm_exp.models.sd15 import SD15Family

    return SD15Family(ModelConfig(family="sd15", teacher=str(tiny_toy_teacher), resolution=32))


@pytest.fixture()
def lcm(toy_family):
    return LCMScheduler.from_config(toy_family.scheduler_config, original_inference_steps=10)
