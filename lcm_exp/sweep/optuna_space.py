"""Optuna search space hook (``hydra.sweeper.custom_search_space``): w_max is drawn after w_min, from
[w_min, upper end of w_min's interval], so no trial ever has w_min > w_max."""

from __future__ import annotations

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

W_MIN, W_MAX = "guidance.w_min", "guidance.w_max"


def guidance_upper(cfg: DictConfig, trial) -> None:
    spec = (cfg.hydra.sweeper.params or {}).get(W_MIN)
    if spec is None:
        raise ValueError(f"hydra.sweeper.params.{W_MIN} must be an interval(lo, hi): w_max is drawn from [w_min, hi]")
    sweep = OverridesParser.create().parse_override(f"{W_MIN}={spec}").value()
    upper = getattr(sweep, "end", None)
    if upper is None:
        raise ValueError(f"hydra.sweeper.params.{W_MIN}={spec!r}: must be an interval(lo, hi)")
    trial.suggest_float(W_MAX, trial.params[W_MIN], float(upper))
