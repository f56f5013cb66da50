"""Name -> model family class, importing a family (and diffusers) only when it is looked up.

Config validation lists and checks family names, their schedule kind and denoiser folder without paying for the
heavy imports (``FAMILY_FACTS``); a new family is one entry here plus its module.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lcm_exp.models.family import ModelFamily


@dataclass(frozen=True)
class FamilyFacts:
    path: str  # "module:Class"
    schedule_kind: str  # NoiseSchedule.kind of its teachers: which samplers each objective can export
    denoiser: str  # the denoiser's subfolder in the teacher's folder
    guidance_conditioned_lora: bool = True  # the LoRA adapter can add its w embedding (a UNet's cond_proj)


FAMILY_FACTS: dict[str, FamilyFacts] = {
    "sd15": FamilyFacts("lcm_exp.models.sd15:SD15Family", "ddpm", "unet"),
    "sdxl": FamilyFacts("lcm_exp.models.sdxl:SDXLFamily", "ddpm", "unet"),
    "sd3": FamilyFacts("lcm_exp.models.sd3:SD3Family", "flow", "transformer", guidance_conditioned_lora=False),
}
FAMILY_NAMES: tuple[str, ...] = tuple(FAMILY_FACTS)
DENOISERS: tuple[str, ...] = tuple(dict.fromkeys(f.denoiser for f in FAMILY_FACTS.values()))  # unet, transformer


#: the project's own networks (students extending a diffusers class), by the ``_class_name`` their config saves
PROJECT_NETWORKS = {"GuidedSD3Transformer2DModel": "lcm_exp.models.sd3_guided"}


def network_class(name: str) -> type:
    """The class of a saved network from its config's ``_class_name``: a project student, else diffusers'."""
    return getattr(importlib.import_module(PROJECT_NETWORKS.get(name, "diffusers")), name)


class _LazyFamilies(Mapping):
    def __getitem__(self, name: str) -> type[ModelFamily]:
        module, cls = FAMILY_FACTS[name].path.split(":")
        return getattr(importlib.import_module(module), cls)

    def __iter__(self) -> Iterator[str]:
        return iter(FAMILY_FACTS)

    def __len__(self) -> int:
        return len(FAMILY_FACTS)


FAMILIES: Mapping[str, type[ModelFamily]] = _LazyFamilies()


def get_family(name: str) -> type[ModelFamily]:
    if name not in FAMILY_FACTS:
        raise ValueError(f"unknown model family {name!r}; valid: {', '.join(FAMILY_NAMES)}")
    return FAMILIES[name]
