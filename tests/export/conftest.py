"""In-process students on the tiny teachers: a composed RunConfig, its family and adapter, no training needed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lcm_exp.adapters import AdapterOptions, build_adapter
from lcm_exp.models.registry import get_family
from tests.config.compose import compose_config


def run_config(cache_dir: str, out: Path, *overrides: str):
    cfg = compose_config([f"paths.cache_dir={cache_dir}", f"paths.log_dir={out}", f"paths.output_dir={out}",
                          *overrides])  # fmt: skip
    return OmegaConf.to_object(cfg)


def student(cfg):
    family = get_family(cfg.model.family)(cfg.model, device="cpu", weight_dtype="fp32")
    return family, build_adapter(cfg.adapter, family, AdapterOptions())


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


@pytest.fixture
def make(cache_dir, tmp_path):
    """make(*overrides) -> (cfg, family, adapter, run_dir)."""

    def _make(*overrides: str):
        run_dir = tmp_path / "run"
        cfg = run_config(cache_dir, run_dir, *overrides)
        return (cfg, *student(cfg), run_dir)

    return _make
