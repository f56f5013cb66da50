"""Named benchmark variants as Hydra overrides on top of the run's own.

A variant is ``base`` or ``base+modifier+...``:
  bases      default    the run exactly as ``launch.py`` composes it (perf defaults, data.cache as configured)
             parity     perf=reference_parity (conf/perf/reference_parity.yaml: data.cache=never too), VAE and
                        text encoders on every step (data from images)
             optimised  conf/perf/default.yaml, data from the latent cache
  modifiers  <switch>      that switch at its optimised value (e.g. parity+ema_foreach)
             ref:<switch>  that switch at its reference value (e.g. optimised+ref:channels_last)
             <key>=<value> any Hydra override (e.g. optimised+perf.compile=true, optimised+optim=adamw8bit)
  switches   the PerfConfig fields, plus latent_cache (data.source)
``ablation`` expands to parity, parity + each switch alone, optimised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from lcm_exp.bench.compose import CONF

LATENT_CACHE = "latent_cache"
IMAGES = "webdataset"
_NOT_ABLATED = ("attention", "compile")  # parity and default agree (sdpa) / opt-in only


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: tuple[str, ...]

    @property
    def latent_cache(self) -> bool:
        return f"data.source={LATENT_CACHE}" in self.overrides


def _perf_file(name: str) -> dict:
    """The perf switches a conf/perf/ option sets (reference_parity is a global package: its ``perf:`` block)."""
    raw = yaml.safe_load((Path(CONF) / "perf" / f"{name}.yaml").read_text()) or {}
    return raw.get("perf", raw)


def switch_values() -> dict[str, tuple[object, object]]:
    """switch -> (reference value, optimised value), from conf/perf/ and the schema's defaults."""
    from dataclasses import fields

    from lcm_exp.config.schema import PerfConfig

    defaults = {f.name: f.default for f in fields(PerfConfig)}
    optimised = {**defaults, **_perf_file("default")}
    reference = {**defaults, **_perf_file("reference_parity")}
    values = {k: (reference[k], optimised[k]) for k in defaults}
    values[LATENT_CACHE] = (IMAGES, LATENT_CACHE)
    return values


def _override(switch: str, value: object) -> str:
    if switch == LATENT_CACHE:
        return f"data.source={value}"
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return f"perf.{switch}={text}"


def parse_variant(name: str) -> Variant:
    base, *mods = name.split("+")
    values = switch_values()
    if base not in ("default", "parity", "optimised"):
        raise ValueError(f"variant {name!r}: base must be default, parity or optimised, got {base!r}")
    pick = 0 if base == "parity" else 1
    overrides = [] if base == "default" else [_override(k, v[pick]) for k, v in values.items()]
    if base == "parity":  # the preset itself too: it also turns the shared latent cache off, as the scripts have none
        overrides.insert(0, "perf=reference_parity")
    for mod in mods:
        if "=" in mod:
            overrides.append(mod)
            continue
        key, which = (mod[4:], 0) if mod.startswith("ref:") else (mod, 1)
        if key not in values:
            raise ValueError(f"variant {name!r}: unknown switch {key!r}; known: {', '.join(values)}")
        overrides.append(_override(key, values[key][which]))
    last = {o.split("=", 1)[0]: o for o in overrides}  # a modifier replaces the base's value of its key
    return Variant(name, tuple(last.values()))


def expand(names: list[str]) -> list[Variant]:
    """Variants in order; a name given again (``--repeat``) is measured again, as ``name #2``, ..."""
    out: list[str] = []
    for name in names:
        if name == "ablation":
            switches = [k for k, (ref, opt) in switch_values().items() if ref != opt and k not in _NOT_ABLATED]
            out += ["parity", *(f"parity+{k}" for k in switches), "optimised"]
        else:
            out.append(name)
    seen: dict[str, int] = {}
    variants = []
    for name in out:
        seen[name] = seen.get(name, 0) + 1
        v = parse_variant(name)
        variants.append(v if seen[name] == 1 else Variant(f"{name} #{seen[name]}", v.overrides))
    return variants
