"""FLOPs of one training step (torch.utils.flop_counter: matmuls, convolutions, attention; forward and backward)
and the dense peak of known accelerators, for achieved TFLOP/s and the fraction of the card's peak."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

# Dense (no sparsity) tensor-core peaks in TFLOP/s from the vendors' data sheets: (bf16/fp16, tf32, fp32).
PEAK_TFLOPS: dict[str, tuple[float, float, float]] = {
    "H200": (989.4, 494.7, 66.9),
    "GH200": (989.4, 494.7, 66.9),
    "H100 NVL": (835.0, 417.5, 60.0),
    "H100 PCIe": (756.0, 378.0, 51.2),
    "H100": (989.4, 494.7, 66.9),  # SXM (HBM3), e.g. "NVIDIA H100 80GB HBM3"
    "A100": (312.0, 156.0, 19.5),
    "L40S": (362.1, 183.0, 91.6),
    "L4": (121.0, 60.0, 30.3),
}


def count_flops(fn: Callable[[], object]) -> int:
    """Total FLOPs of the aten ops ``fn`` runs (run it eagerly: compiled graphs bypass the counter)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def peak_tflops(device_name: str, mixed_precision: str, allow_tf32: bool) -> float | None:
    """The card's dense peak for the run's math, None for an unknown device (CPUs included)."""
    for key, (half, tf32, fp32) in PEAK_TFLOPS.items():  # first match wins: specific names come first
        if key in device_name:
            if mixed_precision in ("bf16", "fp16"):
                return half
            return tf32 if allow_tf32 else fp32
    return None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    model = platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {model}, {torch.get_num_threads()} threads"
