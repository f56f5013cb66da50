"""Which jobs a sweep launches: a grid of axes, linked axes (guidance pairs, variants), and the w_min <= w_max rule.

An axis is one key with its values (``loss.huber_c=0.001,0.01``). A linked axis sets several keys together: each
guidance pair ``[w_min, w_max]`` is one value, and a variant is any list of overrides (``[loss=l2]`` next to
``[loss=huber, loss.huber_c=0.01]``, where a plain grid would ask for ``huber_c`` on the l2 loss). Jobs are the
cartesian product of all axes; a combination with ``w_min > w_max`` is dropped before anything is launched.
Pure functions: the sweeper passes in how to read a job's effective guidance when the overrides do not say.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hydra.core.override_parser.overrides_parser import OverridesParser

from lcm_exp.config.validate import guidance_problems
from lcm_exp.runlog.secrets import redact_override

W_MIN, W_MAX = "guidance.w_min", "guidance.w_max"
MAX_DIR_NAME = 160


class SweepPlanError(ValueError):
    """A sweep definition that cannot be launched (bad pair, conflicting axes, nothing left to run)."""


@dataclass
class Job:
    overrides: list[str]  # everything this job gets
    swept: list[str]  # the overrides that vary across the sweep: they name the job's dir

    @property
    def dirname(self) -> str:
        return job_dirname(self.swept)


@dataclass
class Plan:
    jobs: list[Job]
    dropped: list[list[str]] = field(default_factory=list)  # swept overrides of combinations with w_min > w_max


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~").split("@", 1)[0]


def parse_axes(arguments: Sequence[str], parser: OverridesParser | None = None) -> OrderedDict[str, list[str]]:
    """``a=1,2 b=3`` -> {a: [a=1, a=2], b: [b=3]}; a later override of the same key replaces the earlier one."""
    parser = parser or OverridesParser.create()
    axes: OrderedDict[str, list[str]] = OrderedDict()
    for ov in parser.parse_overrides(list(arguments)):
        key = ov.get_key_element()
        if ov.is_sweep_override():
            if not ov.is_discrete_sweep():
                raise SweepPlanError(f"{ov.input_line}: only lists of values sweep here (no interval/range of floats)")
            axes[key] = [f"{key}={v}" for v in ov.sweep_string_iterator()]
        else:
            axes[key] = [f"{key}={ov.get_value_element_as_str()}"]
    return axes


def pair_axis(pairs: Sequence[Sequence[float]]) -> list[list[str]]:
    """Each [w_min, w_max] becomes one linked value; an inverted or malformed pair stops the sweep here."""
    out = []
    for i, pair in enumerate(pairs):
        if len(pair) != 2:
            raise SweepPlanError(f"hydra.sweeper.guidance_pairs[{i}]={list(pair)}: a pair is [w_min, w_max]")
        try:
            w_min, w_max = float(pair[0]), float(pair[1])
        except (TypeError, ValueError):
            raise SweepPlanError(f"hydra.sweeper.guidance_pairs[{i}]={list(pair)}: values must be numbers") from None
        problems = guidance_problems(w_min, w_max, f"hydra.sweeper.guidance_pairs[{i}].")
        if problems:  # the single run's rules: w >= 0 (LCM convention), w_min <= w_max
            raise SweepPlanError(problems[0])
        out.append([f"{W_MIN}={pair[0]}", f"{W_MAX}={pair[1]}"])
    return out


def _explicit(overrides: Sequence[str], key: str) -> float | None:
    value = None
    for o in overrides:
        if _key(o) == key:
            value = o.split("=", 1)[1]
    try:
        return None if value is None else float(value)
    except ValueError:
        return None  # an interpolation or expression: ask the composed config


def plan_jobs(
    arguments: Sequence[str],
    guidance_pairs: Sequence[Sequence[float]] | None = None,
    variants: dict[str, Sequence[Sequence[str]]] | None = None,
    effective_guidance: Callable[[list[str]], tuple[float, float]] | None = None,
    parser: OverridesParser | None = None,
) -> Plan:
    """Expand the sweep into jobs, dropping every combination whose effective w_min > w_max.

    ``effective_guidance(overrides)`` returns (w_min, w_max) of the composed job config; it is called only for
    combinations that do not set both values explicitly (e.g. a sweep of ``model=`` that changes the defaults).
    """
    axes = parse_axes(arguments, parser)
    linked: list[tuple[str, list[list[str]]]] = []
    if guidance_pairs:
        linked.append(("guidance_pairs", pair_axis(guidance_pairs)))
    for name, values in (variants or {}).items():
        vals = [[v] if isinstance(v, str) else list(v) for v in values]
        if not vals:
            raise SweepPlanError(f"hydra.sweeper.variants.{name} is empty")
        linked.append((f"variants.{name}", vals))

    plain_keys = {_key(k) for k in axes}
    seen: dict[str, str] = {}
    for name, values in linked:
        for key in {_key(o) for v in values for o in v}:
            if key in plain_keys or key in seen:
                other = seen.get(key, "a command-line/params override")
                raise SweepPlanError(f"{key} is set both by hydra.sweeper.{name} and by {other}: keep one")
            seen[key] = f"hydra.sweeper.{name}"

    columns = [[[o] for o in values] for values in axes.values()] + [values for _, values in linked]
    varying = [len(c) > 1 for c in columns]
    jobs, dropped = [], []
    for combo in itertools.product(*columns):
        overrides = [o for part in combo for o in part]
        swept = [o for part, v in zip(combo, varying, strict=False) if v for o in part]
        w_min, w_max = _explicit(overrides, W_MIN), _explicit(overrides, W_MAX)
        if (w_min is None or w_max is None) and effective_guidance is not None:
            eff_min, eff_max = effective_guidance(overrides)
            w_min = eff_min if w_min is None else w_min
            w_max = eff_max if w_max is None else w_max
        if w_min is not None and w_max is not None and w_min > w_max:
            dropped.append(swept)
            continue
        jobs.append(Job(overrides, swept))
    if not jobs:
        raise SweepPlanError(f"every combination has w_min > w_max ({len(dropped)} dropped): nothing to launch")
    return Plan(jobs, dropped)


def job_dirname(swept: Sequence[str]) -> str:
    """A readable, deterministic dir name from the varying overrides (secrets redacted: a dir name lands in every
    path, log and tracker); long ones keep a prefix and a hash."""
    if not swept:
        return "job"
    name = re.sub(r"[^A-Za-z0-9=,._+\-]", "_", ",".join(redact_override(o) for o in swept))
    if len(name) > MAX_DIR_NAME:
        digest = hashlib.sha256(name.encode()).hexdigest()[:10]
        name = f"{name[: MAX_DIR_NAME - 11]}-{digest}"
    return name
