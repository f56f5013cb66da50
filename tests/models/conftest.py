"""Tiny teachers built once per test session; families loaded once per configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from lcm_exp.config.schema import ModelConfig, SDXLModelConfig
from lcm_exp.models.tiny import ensure_tiny_teacher

RES = 64  # tests/models/test_*.py repeat it as a literal: 8x8 latents at the VAE's factor 8


@pytest.fixture(scope="session")
def tiny_cache(cache_dir):
    """The session cache of tests/conftest.py (offline hub), shared with the other rooms' tests."""
    return Path(cache_dir)


@pytest.fixture(scope="session")
def sd15_teacher(tiny_cache):
    return ensure_tiny_teacher("sd15", tiny_cache)


@pytest.fixture(scope="session")
def sd15_v_teacher(tiny_cache):
    return ensure_tiny_teacher("sd15_v", tiny_cache)


@pytest.fixture(scope="session")
def sdxl_teacher(tiny_cache):
    return ensure_tiny_teacher("sdxl", tiny_cache)


@pytest.fixture(scope="session")
def sd3_teacher(tiny_cache):
    return ensure_tiny_teacher("sd3", tiny_cache)


def _sd15_cfg(teacher, **overrides) -> ModelConfig:
    return ModelConfig(family="sd15", teacher=str(teacher), resolution=RES, **overrides)


def _sdxl_cfg(teacher, **overrides) -> SDXLModelConfig:
    return SDXLModelConfig(family="sdxl", teacher=str(teacher), resolution=RES, **overrides)


@pytest.fixture(scope="session")
def sd15_cfg():
    """Factory: the project's model schema for a tiny SD1.5 teacher at RES px, with overrides."""
    return _sd15_cfg


@pytest.fixture(scope="session")
def sdxl_cfg():
    return _sdxl_cfg


@pytest.fixture(scope="session")
def sd15_family(sd15_teacher):
    from lcm_exp.models.sd15 import SD15Family

    return SD15Family(_sd15_cfg(sd15_teacher))


@pytest.fixture(scope="session")
def sdxl_family(sdxl_teacher):
    from lcm_exp.models.sdxl import SDXLFamily

    return SDXLFamily(_sdxl_cfg(sdxl_teacher))  # uncond=zeros, the SDXL default


from tests.export.conftest import make  # noqa: E402,F401  (in-process family + adapter, for the attention tests)
