"""The dtype the frozen networks (teacher, text encoders, the target's copy, the VAE's encoder) are stored and run
in: ``perf.frozen_dtype``.

``auto`` takes the mixed-precision dtype when training in mixed precision; in full precision it takes bf16 where
the device runs bf16 matmuls fast (CUDA with bf16 support; a CPU with AMX or AVX512-BF16, where oneDNN's bf16
kernels ran convolutions and matmuls 4-6x faster than fp32 here), else fp32. The student always trains in its own
precision; only networks that take no gradient change dtype. The public diffusers scripts already run their teacher
in bf16 on such CPUs, by accident: its dtype-less ``torch.autocast("cpu")`` means bf16.
"""

from __future__ import annotations

import torch

FROZEN_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
MIXED = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def fast_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 matmuls faster than fp32 (hardware support, not a measurement)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        checks = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
        return torch.backends.mkldnn.is_available() and any(check is not None and check() for check in checks)
    return False


def frozen_dtype(setting: str, mixed_precision: str, device: torch.device) -> torch.dtype:
    """The dtype of the frozen networks for ``perf.frozen_dtype`` = ``setting`` (auto | fp32 | bf16 | fp16)."""
    if setting != "auto":
        return FROZEN_DTYPES[setting]
    if mixed_precision != "no":
        return MIXED[mixed_precision]
    return torch.bfloat16 if fast_bf16(device) else torch.float32

