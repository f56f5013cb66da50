"""Network-level switches: memory format, torch.compile, and the fp32 teacher of reference parity."""

from __future__ import annotations

from collections.abc import Iterable

import torch


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


def teacher_in_fp32(family) -> None:
    """Reference parity under mixed precision: the frozen teacher (for LoRA also the base the student shares) kept
    in float32, so autocast re-casts its weights on every op. Call before the adapter is built."""
    if family.denoiser.dtype == torch.float32:
        return
    family.denoiser = family.load_denoiser(torch.float32).requires_grad_(False).to(family.device).eval()
