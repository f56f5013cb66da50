"""The bridge from the typed ``data`` config to the data pipeline's own spec."""

from __future__ import annotations

from dataclasses import asdict

from lcm_exp.data.spec import DataSpec, FilterSpec

# config keys that belong to the loop, not the pipeline
_LOOP_KEYS = {"source", "max_skip_fraction"}


def data_spec_from_config(cfg) -> DataSpec:
    fields = {k: v for k, v in asdict(cfg).items() if k not in _LOOP_KEYS}
    fields["filters"] = FilterSpec(**fields["filters"])
    return DataSpec(**fields)
