"""UNet-level switches: memory format, attention kernel, torch.compile, and the fp32 teacher of reference parity."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

from lcm_exp.perf.components import check_perf


def distinct(modules: Iterable[torch.nn.Module | None]) -> list[torch.nn.Module]:
    """Each module once (the LoRA adapter's student, teacher and target are one UNet), Nones dropped."""
    seen: dict[int, torch.nn.Module] = {}
    for m in modules:
        if m is not None:
            seen.setdefault(id(m), m)
    return list(seen.values())


def configure_unets(unets: Iterable[torch.nn.Module], perf) -> None:
    """Attention processor and memory format, in place. Call before the optimizer sees the parameters."""
    check_perf(perf)
    processor = AttnProcessor2_0() if perf.attention == "sdpa" else AttnProcessor()
    for unet in unets:
        unet.set_attn_processor(processor)
        if perf.channels_last:
            unet.to(memory_format=torch.channels_last)


def compile_unets(unets: Iterable[torch.nn.Module]) -> None:
    """``torch.compile`` each UNet in place (``nn.Module.compile``), so every holder of the module uses it."""
    for unet in unets:
        unet.compile()


def teacher_in_fp32(family) -> None:
    """Reference parity under mixed precision: the frozen teacher (for LoRA also the base the student shares) kept
    in float32, so autocast re-casts its weights on every op. Call before the adapter is built."""
    if family.unet.dtype == torch.float32:
        return
    fresh = family.load_unet(torch.float32).requires_grad_(False)
    family.unet = fresh.to(family.device).eval()
