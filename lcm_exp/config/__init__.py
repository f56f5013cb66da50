"""Typed run configuration: schemas, ConfigStore registration and cross-field validation."""

from lcm_exp.config.errors import ConfigError
from lcm_exp.config.schema import RunConfig

__all__ = ["ConfigError", "RunConfig"]
