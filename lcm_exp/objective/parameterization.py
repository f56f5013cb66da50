"""Turn a raw network output into (x0, eps) for each prediction type (lcd-facts item 9, objectives-facts 3.1).

The official LCM repo used the raw output as eps, which is wrong for v-prediction teachers; converting through
the schedule at the output's own timestep is right for every type. ``flow`` is the flow-matching velocity
v = eps - x0 of a schedule with alpha + sigma = 1 (x_t = (1 - sigma) * x0 + sigma * eps).
"""

from __future__ import annotations

import torch

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample", "flow")


def predicted_x0_eps(
    out: torch.Tensor, x_t: torch.Tensor, a_t: torch.Tensor, s_t: torch.Tensor, prediction_type: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0, eps) given x_t = a_t * x0 + s_t * eps and the model output ``out`` at that timestep."""
    if prediction_type == "epsilon":
        return (x_t - s_t * out) / a_t, out
    if prediction_type == "v_prediction":
        return a_t * x_t - s_t * out, a_t * out + s_t * x_t
    if prediction_type == "sample":
        return out, (x_t - a_t * out) / s_t
    if prediction_type == "flow":
        return x_t - s_t * out, x_t + a_t * out
    raise ValueError(f"unknown prediction_type {prediction_type!r}; valid: {', '.join(PREDICTION_TYPES)}")
