"""The network-level perf switches (lcm_exp/perf/switches.py) and the bench's variant names."""

from __future__ import annotations

import pytest
import torch

from lcm_exp.bench.variants import expand, parse_variant, switch_values
from lcm_exp.perf.switches import distinct, set_memory_format


def test_memory_format_switch():
    conv = torch.nn.Conv2d(4, 8, 3)
    set_memory_format([conv], channels_last=False)
    assert conv.weight.is_contiguous()
    set_memory_format([conv], channels_last=True)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_distinct_keeps_each_network_once():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    assert distinct([a, None, a, b]) == [a, b]


def test_variants_map_switches_to_overrides():
    values = switch_values()
    assert values["ema_foreach"] == (False, True) and values["latent_cache"] == ("webdataset", "latent_cache")
    one = dict(o.split("=", 1) for o in parse_variant("parity+ema_foreach").overrides)
    base = dict(o.split("=", 1) for o in parse_variant("parity").overrides)
    assert {k for k in one if one[k] != base[k]} == {"perf.ema_foreach"}
    mixed = dict(o.split("=", 1) for o in parse_variant("optimised+ref:fused_optimizer+trainer.batch_size=2").overrides)
    assert mixed["perf.fused_optimizer"] == "false" and mixed["trainer.batch_size"] == "2"
    assert mixed["data.source"] == "latent_cache" and mixed["perf.ema_foreach"] == "true"
    names = [v.name for v in expand(["ablation"])]
    assert names[0] == "parity" and names[-1] == "optimised" and "parity+latent_cache" in names
    assert "parity+compile" not in names
    with pytest.raises(ValueError, match="unknown switch"):
        parse_variant("parity+warp_drive")
