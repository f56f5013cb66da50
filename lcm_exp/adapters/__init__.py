"""Students: full network or LoRA, behind one interface (``StudentAdapter``)."""

from __future__ import annotations

import importlib

from lcm_exp.adapters.base import AdapterOptions, StudentAdapter

_PATHS = {"full": "lcm_exp.adapters.full:FullAdapter", "lora": "lcm_exp.adapters.lora:LoraAdapter"}

__all__ = ["AdapterOptions", "StudentAdapter", "adapter_class", "build_adapter"]


def adapter_class(name: str) -> type[StudentAdapter]:
    """The adapter class named by ``adapter.name`` (imported on use: peft loads only for LoRA)."""
    if name not in _PATHS:
        raise ValueError(f"adapter.name={name!r}: unknown, choose one of [{', '.join(_PATHS)}]")
    module, cls = _PATHS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def build_adapter(cfg, family, options: AdapterOptions) -> StudentAdapter:
    """The adapter named by ``adapter.name``, made from the family's teacher."""
    return adapter_class(cfg.name)(cfg, family, options)
