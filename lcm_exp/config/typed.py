"""A saved (resolved) config back into the typed tree Hydra would have composed, without Hydra.

Groups with one schema per variant (model by family, adapter/loss/launcher by name) are typed by the variant
the saved config names; a key or type this code does not know fails with a ConfigError naming it.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from lcm_exp.config.errors import ConfigError
from lcm_exp.config.schema import RunConfig
from lcm_exp.config.store import GROUP_SCHEMAS

VARIANT_KEYS = {"model": "family", "adapter": "name", "loss": "name", "launcher": "name", "objective": "name"}


def typed_config(container: dict) -> DictConfig:
    typed = {}
    for group, key in VARIANT_KEYS.items():
        values = container.get(group) or {}
        schema = GROUP_SCHEMAS[group].get(values.get(key))
        if schema is None:
            raise ConfigError([f"{group}.{key}={values.get(key)!r}: unknown, choose one of "
                               f"[{', '.join(GROUP_SCHEMAS[group])}]"])  # fmt: skip
        try:
            typed[group] = OmegaConf.merge(OmegaConf.structured(schema), values)
        except Exception as err:
            raise ConfigError([f"{group}: {err}"]) from None
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(RunConfig), {k: v for k, v in container.items() if k not in typed})
    except Exception as err:  # a key this code no longer has, or a changed type
        raise ConfigError([f"the config does not fit this code's schema: {err}"]) from None
    for group, node in typed.items():
        cfg[group] = node
    return cfg


def load_run_config(path) -> RunConfig:
    """The RunConfig object saved as YAML at ``path`` (a run dir's resolved config.yaml)."""
    return OmegaConf.to_object(typed_config(OmegaConf.to_container(OmegaConf.load(path))))
