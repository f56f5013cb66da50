"""Perf tests: one torch thread (tiny ops on two busy shared cores), PerfConfig presets from conf/perf/."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lcm_exp.config.schema import PerfConfig

CONF = Path(__file__).resolve().parents[2] / "conf"


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every perf test runs with one torch thread (the shared fixture in tests/conftest.py)."""


def reference_parity() -> PerfConfig:
    """The reference's settings as conf/perf/reference_parity.yaml spells them."""
    return PerfConfig(**yaml.safe_load((CONF / "perf" / "reference_parity.yaml").read_text())["perf"])


@pytest.fixture
def parity() -> PerfConfig:
    return reference_parity()


@pytest.fixture
def optimised() -> PerfConfig:
    return PerfConfig()
