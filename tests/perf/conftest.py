"""Perf tests: one torch thread (tiny ops on two busy shared cores), PerfConfig presets from conf/perf/."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from lcm_exp.config.schema import PerfConfig

CONF = Path(__file__).resolve().parents[2] / "conf"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def reference_parity() -> PerfConfig:
    """The reference's settings as conf/perf/reference_parity.yaml spells them."""
    return PerfConfig(**yaml.safe_load((CONF / "perf" / "reference_parity.yaml").read_text()))


@pytest.fixture
def parity() -> PerfConfig:
    return reference_parity()


@pytest.fixture
def optimised() -> PerfConfig:
    return PerfConfig()
