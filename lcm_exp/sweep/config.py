"""The ``sweep`` config node: what one job needs to know about the sweep it belongs to.

Job-level settings live here (recorded in every run's config): name (deterministic dir, resume, tracker group),
objective, seed derivation; the root ``force`` redoes finished jobs. Sweep-level settings (which jobs, stop on
failure, batch size) belong to the sweeper: ``hydra.sweeper.*``.
"""

from __future__ import annotations

from lcm_exp.config.errors import ConfigError
from lcm_exp.config.schema import SweepConfig  # noqa: F401  (re-exported for lcm_exp.sweep)

DIRECTIONS = ("minimize", "maximize")


def validate_sweep(sweep) -> None:
    problems = []
    if not sweep.objective:
        problems.append("sweep.objective is empty: name a metric, e.g. final_loss")
    if sweep.direction not in DIRECTIONS:
        problems.append(f"sweep.direction={sweep.direction!r}: unknown, choose one of [{', '.join(DIRECTIONS)}]")
    if sweep.name is not None and (not str(sweep.name).strip() or "/" in str(sweep.name)):
        problems.append(f"sweep.name={sweep.name!r}: must be a non-empty name without '/'")
    if problems:
        raise ConfigError(problems)
