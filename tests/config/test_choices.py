"""Each list of allowed values is defined once (lcm_exp/config/choices.py) and every enumerated key is checked by it."""

from __future__ import annotations

import ast
import dataclasses
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lcm_exp.config import choices
from lcm_exp.config.errors import ConfigError
from lcm_exp.config.validate import validate_config
from tests.config.compose import compose_config

# compositions that together hold every schema variant (adapter, loss, launcher, model family)
VARIANTS = [["adapter=full", "loss=huber"], ["adapter=lora", "loss=l2", "launcher=accelerate"],
            ["loss=pseudo_huber", "model=tiny_sdxl"]]  # fmt: skip


def enumerated_keys(node, prefix=""):
    """(key, allowed) of every field declared with choice() in a composed config."""
    schema = OmegaConf.get_type(node)
    for f in dataclasses.fields(schema) if dataclasses.is_dataclass(schema) else ():
        if choices.allowed_values(f) is not None and f.name in node:
            yield f"{prefix}{f.name}", choices.allowed_values(f)
    for key in node:
        if not OmegaConf.is_interpolation(node, key) and OmegaConf.is_dict(node._get_node(key)):
            yield from enumerated_keys(node._get_node(key), f"{prefix}{key}.")


def cases():
    seen = {}
    for overrides in VARIANTS:
        for key, allowed in enumerated_keys(compose_config(overrides)):
            seen.setdefault(key, (overrides, allowed))
    return sorted(seen.items())


CASES = cases()


def test_the_schema_declares_the_enumerations():
    keys = {key for key, _ in CASES}
    assert {"model.attention", "perf.solver_dtype", "data.source", "optim.lr_scheduler", "optim.name",
            "trainer.mixed_precision", "logger.name", "launcher.name", "adapter.name", "loss.name", "model.family",
            "sweep.direction", "adapter.target", "data.filters.on_missing", "data.cache", "perf.frozen_dtype",
            "model.vae_dtype", "objective.name"} <= keys  # fmt: skip
    assert dict(CASES)["model.attention"][1] is choices.ATTENTION_BACKENDS


@pytest.mark.parametrize(("key", "case"), CASES, ids=[k for k, _ in CASES])
def test_every_enumerated_key_refuses_an_unknown_value_naming_it(key, case):
    overrides, allowed = case
    cfg = compose_config(overrides)
    validate_config(cfg)  # the composed defaults are allowed
    OmegaConf.update(cfg, key, "bogus")
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert str(err.value) == f"invalid configuration: {key}='bogus': unknown, choose one of [{', '.join(allowed)}]"


def test_bad_perf_value_is_refused_with_the_other_rules():
    """perf.* used to be checked only after the teacher (and a second UNet) loaded."""
    with pytest.raises(ConfigError) as err:
        validate_config(compose_config(["perf.solver_dtype=fp16", "trainer.batch_size=0"]))
    assert err.value.problems == ["perf.solver_dtype='fp16': unknown, choose one of [fp32, fp64]",
                                  "trainer.batch_size=0: must be >= 1"]  # fmt: skip


def test_lr_schedulers_are_the_diffusers_ones():
    from diffusers.optimization import SchedulerType

    assert set(choices.LR_SCHEDULERS) == {s.value for s in SchedulerType}


def test_objectives_are_the_built_ones():
    from lcm_exp.train.components import OBJECTIVES

    assert set(choices.OBJECTIVES) == set(OBJECTIVES)


def test_families_are_the_registered_ones():
    from lcm_exp.models.registry import FAMILY_NAMES

    assert set(choices.FAMILIES) == set(FAMILY_NAMES)


def test_data_spec_uses_the_same_lists():
    from lcm_exp.data.spec import DataSpec

    for value in choices.CROPS:
        DataSpec(crop=value)
    with pytest.raises(ValueError, match="data.crop"):
        DataSpec(crop="bogus")


def test_choices_imports_only_the_standard_library():
    tree = ast.parse(Path(choices.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert {name.split(".")[0] for name in imported} <= set(sys.stdlib_module_names) | {"__future__"}
