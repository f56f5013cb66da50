"""Name -> model family class, importing a family (and diffusers) only when it is looked up.

Config validation lists and checks family names without paying for the heavy imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lcm_exp.models.family import ModelFamily

_PATHS = {"sd15": "lcm_exp.models.sd15:SD15Family", "sdxl": "lcm_exp.models.sdxl:SDXLFamily"}
FAMILY_NAMES: tuple[str, ...] = tuple(_PATHS)


class _LazyFamilies(Mapping):
    def __getitem__(self, name: str) -> type[ModelFamily]:
        module, cls = _PATHS[name].split(":")
        return getattr(importlib.import_module(module), cls)

    def __iter__(self) -> Iterator[str]:
        return iter(_PATHS)

    def __len__(self) -> int:
        return len(_PATHS)


FAMILIES: Mapping[str, type[ModelFamily]] = _LazyFamilies()


def get_family(name: str) -> type[ModelFamily]:
    if name not in _PATHS:
        raise ValueError(f"unknown model family {name!r}; valid: {', '.join(FAMILY_NAMES)}")
    return FAMILIES[name]
