"""The teacher's own few-step samplers the student is compared with, per kind of noise schedule.

A baseline is a diffusers scheduler made from the teacher's scheduler config, stepped with or without CFG at the
evaluation's w. The reference is one baseline at ``reference_steps``; that baseline at the student's step counts is
the fair one (the same sampler of the same guided ODE), which the claims compare against. A kind of teacher adds
one entry to ``TEACHER_BASELINES`` and ``REFERENCE``; nothing else in the evaluation changes:
- "ddpm" (SD1.5, SDXL): DDIM, eta 0, trailing and leading spacing; CFG on the noise prediction.
- "flow" (SD3-class): Euler on FlowMatchEulerDiscreteScheduler (with the teacher's shift), what
  StableDiffusion3Pipeline runs; CFG on the velocity, v_c + w (v_c - v_u) (the LCM convention).
Light module: diffusers is imported only when a scheduler is made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Baseline:
    label: str  # printed in tables and plots
    make_scheduler: Callable[[dict], Any]  # the teacher's scheduler config -> a diffusers scheduler
    guided: bool = True  # CFG at the evaluation's w (two UNet evaluations per step); False: cond only
    step_kwargs: dict[str, Any] = field(default_factory=dict)  # passed to scheduler.step


def _ddim(spacing: str) -> Callable[[dict], Any]:
    """DDIM (eta 0) from the teacher's own scheduler config, as a diffusers user gets it with
    ``DDIMScheduler.from_config(pipe.scheduler.config)``; clip_sample forced off (DDIM's default would clip latents)."""

    def make(config: dict):
        from diffusers import DDIMScheduler

        return DDIMScheduler.from_config(config, timestep_spacing=spacing, clip_sample=False)

    return make


def _euler(config: dict):
    """The flow teacher's own FlowMatchEulerDiscreteScheduler (its shift and T): n steps are its n sigmas from 1."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler.from_config(config)


@dataclass(frozen=True)
class Reference:
    method: str  # the baseline whose sampler makes the reference (and is the fair baseline at few steps)
    label: str  # the reference row's label, with {n} steps
    header: str  # how the table's first line names it, with {n} steps


#: schedule kind -> method key -> baseline (the order is the table's)
TEACHER_BASELINES: dict[str, dict[str, Baseline]] = {
    "ddpm": {
        "ddim_trailing": Baseline("teacher DDIM trailing + CFG (fair baseline)", _ddim("trailing"), True, {"eta": 0.0}),
        "ddim_leading": Baseline("teacher DDIM leading + CFG (SD default)", _ddim("leading"), True, {"eta": 0.0}),
        "teacher_nocfg": Baseline("teacher DDIM trailing, no CFG", _ddim("trailing"), False, {"eta": 0.0}),
    },
    "flow": {
        "euler_cfg": Baseline("teacher Euler + CFG (fair baseline)", _euler, True),
        "euler_nocfg": Baseline("teacher Euler, no CFG", _euler, False),
    },
}
#: schedule kind -> its reference
REFERENCE: dict[str, Reference] = {
    "ddpm": Reference("ddim_trailing", "teacher DDIM-{n} trailing + CFG (reference)", "teacher DDIM-{n} trailing"),
    "flow": Reference("euler_cfg", "teacher Euler-{n} + CFG (reference)",
                      "teacher Euler-{n} (FlowMatchEulerDiscreteScheduler)"),
}


def baseline_methods() -> dict[str, str]:
    """Every baseline method key of every kind -> its label."""
    return {method: b.label for kinds in TEACHER_BASELINES.values() for method, b in kinds.items()}


def kind_of_methods(methods) -> str | None:
    """The schedule kind whose baselines appear among ``methods`` (e.g. the rows of a results.csv); None if none."""
    present = set(methods)
    return next((kind for kind, baselines in TEACHER_BASELINES.items() if present & set(baselines)), None)


def baselines_for(kind: str) -> dict[str, Baseline]:
    if kind not in TEACHER_BASELINES:
        raise ValueError(f"the evaluation has no teacher baselines for a {kind!r} schedule; known: "
                         f"{', '.join(TEACHER_BASELINES)} (add them in lcm_exp/evaluate/baselines.py)")  # fmt: skip
    return TEACHER_BASELINES[kind]
