"""Consistency-distillation objectives: pure tensor functions and one `distill_step` (no I/O, no logging)."""

from lcm_exp.objective.consistency import ConsistencyObjective
from lcm_exp.objective.guidance import apply_cfg, guidance_embedding, sample_guidance
from lcm_exp.objective.lcd import LCD
from lcm_exp.objective.losses import LossFn, build_loss, huber, l2, pseudo_huber
from lcm_exp.objective.parameterization import PREDICTION_TYPES, predicted_x0_eps
from lcm_exp.objective.pcm import PCM
from lcm_exp.objective.scalings import boundary_scalings
from lcm_exp.objective.schedule import DDPMSchedule, NoiseSchedule
from lcm_exp.objective.solver import DDIMSolver, ddim_timesteps
from lcm_exp.objective.step import DistillModels, ObjectiveSpec, StepOutput, distill_step
from lcm_exp.objective.tcd import TCD

__all__ = [
    "LCD",
    "PCM",
    "PREDICTION_TYPES",
    "ConsistencyObjective",
    "DDIMSolver",
    "DDPMSchedule",
    "DistillModels",
    "LossFn",
    "NoiseSchedule",
    "ObjectiveSpec",
    "StepOutput",
    "TCD",
    "apply_cfg",
    "boundary_scalings",
    "build_loss",
    "ddim_timesteps",
    "distill_step",
    "guidance_embedding",
    "huber",
    "l2",
    "predicted_x0_eps",
    "pseudo_huber",
    "sample_guidance",
]
