"""NaN/inf policy: skip a bad step (counted, abort after K in a row) or stop at once."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class NonFiniteLoss(FloatingPointError):
    pass


class NonFiniteGuard:
    def __init__(self, policy: str, max_consecutive: int):
        self.policy, self.max_consecutive = policy, max_consecutive
        self.skipped = 0
        self.consecutive = 0
        self.first_bad: dict | None = None

    def check(self, out, step: int, all_finite: bool) -> bool:
        """True if the step may proceed (``all_finite``: the loss is finite on every process); otherwise log the
        diagnostics and skip (or raise under ``stop``)."""
        if all_finite:
            self.consecutive = 0
            return True
        diag = {
            "step": step,
            "loss": float(out.loss),
            "per_sample_loss": out.per_sample_loss.tolist(),
            "start_timesteps": out.start_timesteps.tolist(),
            "w": out.w.tolist(),
            "pred_rms": out.pred_rms.tolist(),
            "target_rms": out.target_rms.tolist(),
        }
        if self.first_bad is None:
            self.first_bad = diag
            log.error("first non-finite loss: %s", diag)
        if self.policy == "stop":
            raise NonFiniteLoss(f"non-finite loss at step {step} (trainer.nonfinite=stop): {diag}")
        self.skipped += 1
        self.consecutive += 1
        if self.consecutive >= self.max_consecutive:
            raise NonFiniteLoss(
                f"{self.consecutive} non-finite steps in a row (trainer.max_consecutive_nonfinite="
                f"{self.max_consecutive}); first bad step: {self.first_bad}"
            )
        log.warning("skipping step %d: non-finite loss (%d skipped so far)", step, self.skipped)
        return False
