"""Attention kernels and VAE decode memory switches.

``model.attention``: sdpa (PyTorch's fused scaled_dot_product_attention, diffusers' default), xformers (its
memory-efficient kernel; needs the package and a CUDA device, refused with a clear message otherwise), or classic
(the unfused bmm + softmax of the reference scripts' era, for comparisons; SD3's joint-attention layers have no
unfused kernel and keep SDPA). Every diffusers ``Attention`` layer of the given modules is switched;
the run builder passes every network that runs (teacher, student, EMA target, its compute-dtype copy, the VAE).

VAE slicing decodes a batch one image at a time; tiling decodes large images tile by tile (tiles are blended, so
seams are rare but possible). Both only cut memory at decode; ``vae_decode_mode`` scopes them so training's VAE
encode is never affected.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch

from lcm_exp.config.choices import ATTENTION_BACKENDS

log = logging.getLogger(__name__)

BACKENDS = ATTENTION_BACKENDS


def check_backend(backend: str) -> None:
    """Raise a clear error when ``backend`` cannot run here (before any layer is touched)."""
    if backend not in BACKENDS:
        raise ValueError(f"model.attention={backend!r}: unknown, choose one of [{', '.join(BACKENDS)}]")
    if backend == "xformers":
        if importlib.util.find_spec("xformers") is None:
            raise ImportError(
                "model.attention=xformers: the xformers package is not installed (install the build "
                "matching your torch and CUDA), or use model.attention=sdpa"
            )
        if not torch.cuda.is_available():
            raise RuntimeError(
                "model.attention=xformers: xformers kernels run on CUDA GPUs only; use model.attention=sdpa here"
            )


def set_attention_backend(backend: str, modules: Iterable[torch.nn.Module]) -> int:
    """Switch every diffusers ``Attention`` layer inside ``modules`` (each module once); return how many."""
    from diffusers.models.attention_processor import (
        Attention,
        AttnProcessor,
        JointAttnProcessor2_0,
        XFormersJointAttnProcessor,
    )

    check_backend(backend)
    seen: set[int] = set()
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, Attention) and id(layer) not in seen:
                seen.add(id(layer))
                joint = isinstance(layer.processor, (JointAttnProcessor2_0, XFormersJointAttnProcessor))
                if joint and backend != "xformers":  # SD3's joint attention: diffusers' switch-back would drop
                    layer.set_processor(JointAttnProcessor2_0())  # the text stream; it has no unfused kernel
                elif backend == "classic":
                    layer.set_processor(AttnProcessor())
                else:  # diffusers' own switch: xformers, or back to its default (SDPA) processor of each layer kind
                    layer.set_use_memory_efficient_attention_xformers(backend == "xformers")
    log.info("attention backend %s on %d attention layer(s)", backend, len(seen))
    return len(seen)


@contextmanager
def vae_decode_mode(vae, *, slicing: bool, tiling: bool) -> Iterator[None]:
    """Decode with slicing/tiling on inside the block, then restore the VAE's previous settings."""
    before = (vae.use_slicing, vae.use_tiling)
    vae.use_slicing, vae.use_tiling = slicing, tiling
    try:
        yield
    finally:
        vae.use_slicing, vae.use_tiling = before
