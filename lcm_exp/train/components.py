"""Config -> the objective's parts: the teacher's solver, the consistency objective, the loss, the step's spec."""

from __future__ import annotations

import dataclasses

import torch

from lcm_exp.config import choices
from lcm_exp.objective import LCD, ConsistencyObjective, DDIMSolver, ObjectiveSpec, build_loss
from lcm_exp.objective.losses import LossFn
from lcm_exp.objective.pcm import PCM
from lcm_exp.objective.tcd import TCD

SOLVER_DTYPES = dict(zip(choices.SOLVER_DTYPES, (torch.float32, torch.float64), strict=True))
OBJECTIVES: dict[str, type[ConsistencyObjective]] = {"lcd": LCD, "tcd": TCD, "pcm": PCM}


def build_solver(schedule, num_ddim_timesteps: int, device, solver_dtype: str = "fp32") -> DDIMSolver:
    """The teacher's jump solver, its jump table in float32 on the device, or float64 (``perf.solver_dtype=fp64``,
    the reference's numpy table)."""
    return DDIMSolver(schedule, num_ddim_timesteps, device=device, dtype=SOLVER_DTYPES[solver_dtype])


def objective_from_config(objective_cfg) -> ConsistencyObjective:
    """The consistency objective named by ``objective.name`` with its parameters (the grid size is the solver's);
    ``objective_cfg`` is the config node or a plain mapping (a run record's)."""
    values = dataclasses.asdict(objective_cfg) if dataclasses.is_dataclass(objective_cfg) else dict(objective_cfg)
    cls = OBJECTIVES[values["name"]]
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def loss_from_config(loss_cfg) -> LossFn:
    """The loss named by the ``loss`` group, with its variant's parameters (huber_c, scale, ...)."""
    params = {k: v for k, v in dataclasses.asdict(loss_cfg).items() if k != "name"}
    return build_loss(loss_cfg.name, **params)


def objective_spec(cfg) -> ObjectiveSpec:
    """``ObjectiveSpec`` of a RunConfig: loss, guidance range, objective, and the step-order perf switches."""
    perf = cfg.perf
    return ObjectiveSpec(
        loss=loss_from_config(cfg.loss),
        w_min=cfg.guidance.w_min,
        w_max=cfg.guidance.w_max,
        objective=objective_from_config(cfg.objective),
        teacher_single_pass=perf.teacher_single_pass,
        no_grad_first=perf.no_grad_first,
        host_side_sampling=perf.host_side_sampling,
    )


def inference_scheduler(cfg, family):
    """The diffusers scheduler that samples this run's student: the objective's, on the teacher's schedule kind."""
    objective = objective_from_config(cfg.objective)
    steps = cfg.objective.num_ddim_timesteps
    return objective.inference_scheduler(family.schedule.kind, family.scheduler_config, steps)
