"""Students: full UNet or LoRA, behind one interface (``StudentAdapter``)."""

from __future__ import annotations

from lcm_exp.adapters.base import StudentAdapter


def build_adapter(cfg, family, gradient_checkpointing: bool = False) -> StudentAdapter:
    """The adapter named by ``adapter.name``, made from the family's teacher."""
    if cfg.name == "full":
        from lcm_exp.adapters.full import FullAdapter

        return FullAdapter(cfg, family, gradient_checkpointing)
    if cfg.name == "lora":
        from lcm_exp.adapters.lora import LoraAdapter

        return LoraAdapter(cfg, family, gradient_checkpointing)
    raise ValueError(f"adapter.name={cfg.name!r}: unknown, choose one of [full, lora]")
