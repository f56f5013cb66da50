"""Network-level switches: memory format, torch.compile, and the reference scripts' autocast of their teacher."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import torch

from lcm_exp.objective import DistillModels


def distinct(modules: Iterable[torch.nn.Module | None]) -> list[torch.nn.Module]:
    """Each module once (the LoRA adapter's student, teacher and target are one network), Nones dropped."""
    seen: dict[int, torch.nn.Module] = {}
    for m in modules:
        if m is not None:
            seen.setdefault(id(m), m)
    return list(seen.values())


def set_memory_format(networks: Iterable[torch.nn.Module], channels_last: bool) -> None:
    """channels_last in place (``perf.channels_last``). Call before the optimizer sees the parameters."""
    if channels_last:
        for net in networks:
            net.to(memory_format=torch.channels_last)


def compile_networks(networks: Iterable[torch.nn.Module]) -> None:
    """``torch.compile`` each network in place (``nn.Module.compile``), so every holder of the module uses it."""
    for net in networks:
        net.compile()


def reference_autocast(models: DistillModels, device_type: str, target_too: bool) -> DistillModels:
    """The public scripts' dtype-less ``torch.autocast(device_type)`` around the teacher's passes (and, in the LoRA
    scripts, the target pass): bf16 on a CPU, fp16 on CUDA, whatever the run's precision (reference parity)."""

    def wrapped(fn):
        def call(*args):
            with torch.autocast(device_type):
                return fn(*args)

        return call

    target = wrapped(models.target) if target_too else models.target
    return replace(models, teacher=wrapped(models.teacher), target=target)
