"""The teacher's own few-step samplers the student is compared with, per kind of noise schedule.

A baseline is a diffusers scheduler made from the teacher's scheduler config, stepped with or without CFG at the
evaluation's w. The reference is one baseline at ``reference_steps``. A new kind of teacher (e.g. flow matching:
Euler on FlowMatchEulerDiscreteScheduler) adds one entry to ``TEACHER_BASELINES`` and ``REFERENCE``; nothing else
in the evaluation changes. Light module: diffusers is imported only when a scheduler is made.
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


#: schedule kind -> method key -> baseline (the order is the table's)
TEACHER_BASELINES: dict[str, dict[str, Baseline]] = {
    "ddpm": {
        "ddim_trailing": Baseline("teacher DDIM trailing + CFG (fair baseline)", _ddim("trailing"), True, {"eta": 0.0}),
        "ddim_leading": Baseline("teacher DDIM leading + CFG (SD default)", _ddim("leading"), True, {"eta": 0.0}),
        "teacher_nocfg": Baseline("teacher DDIM trailing, no CFG", _ddim("trailing"), False, {"eta": 0.0}),
    },
}
#: schedule kind -> (the baseline whose sampler makes the reference, the reference's label with {n} steps)
REFERENCE: dict[str, tuple[str, str]] = {"ddpm": ("ddim_trailing", "teacher DDIM-{n} trailing + CFG (reference)")}


def baseline_methods() -> dict[str, str]:
    """Every baseline method key of every kind -> its label."""
    return {method: b.label for kinds in TEACHER_BASELINES.values() for method, b in kinds.items()}


def baselines_for(kind: str) -> dict[str, Baseline]:
    if kind not in TEACHER_BASELINES:
        raise ValueError(f"the evaluation has no teacher baselines for a {kind!r} schedule; known: "
                         f"{', '.join(TEACHER_BASELINES)} (add them in lcm_exp/evaluate/baselines.py)")  # fmt: skip
    return TEACHER_BASELINES[kind]
