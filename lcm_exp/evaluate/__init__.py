"""Few-step fidelity and quality evaluation of a distilled student against fair teacher baselines.

`python -m lcm_exp.evaluate <run dir>`; from code: `evaluate_run(run_dir)`, `evaluate_student(family, unet, ...)`,
or `evaluate_from_loop(cfg, family, adapter, run_dir)` inside the training loop. Heavy imports happen on use.
"""

from lcm_exp.evaluate.settings import METHODS, METRICS, EvalSettings

__all__ = ["METHODS", "METRICS", "EvalResult", "EvalSettings", "evaluate_from_loop", "evaluate_run", "evaluate_student"]


def __getattr__(name: str):
    if name in ("EvalResult", "evaluate_student"):
        from lcm_exp.evaluate import core

        return getattr(core, name)
    if name in ("evaluate_run", "evaluate_from_loop"):
        from lcm_exp.evaluate import run

        return getattr(run, name)
    raise AttributeError(name)
