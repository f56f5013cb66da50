"""What an evaluation runs: step counts, the guidance scale, the reference, the sample set, optional judges.

Guidance convention (LCM paper): guided = (1 + w) * cond - w * uncond = cond + w * (cond - uncond). diffusers'
``guidance_scale`` is w + 1, and the student embeds w itself (no CFG pass). Every guided method below uses the
same w, so the comparison is between samplers of the same guided ODE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from lcm_exp.evaluate.baselines import baseline_methods

#: method key -> label printed in tables and plots (an LCD student's; a student's rows name the scheduler it
#: exported, e.g. "student, TCDScheduler (gamma 0.3)"); "reference" is the teacher's many-step result. The teacher
#: baselines are those of every schedule kind; an evaluation runs the ones of its teacher's kind.
METHODS: dict[str, str] = {
    "student": "student, LCMScheduler",
    "student_det": "student, deterministic (own noise estimate)",
    **baseline_methods(),  # the teacher's few-step samplers, per schedule kind (baselines.py)
    "undistilled": "undistilled student, LCMScheduler",
}
REFERENCE = "reference"
#: run metrics of an evaluation at the end of training: eval_objective, eval:<metric>:<method>:<steps>
EVAL_METRIC_PREFIX = "eval"
METRICS = ("latent_rmse", "psnr_db", "attr_acc", "fd", "clip_score", "fid")
LOWER_IS_BETTER = {
    "latent_rmse": True, "psnr_db": False, "attr_acc": False, "fd": True, "clip_score": False, "fid": True,
}  # fmt: skip


@dataclass
class EvalSettings:
    """Settings of one evaluation; the defaults are the documented toy evaluation (docs/toy.md)."""

    steps: list[int] = field(default_factory=lambda: [1, 2, 4, 8])  # the step counts every few-step method runs at
    w: float = 3.0  # LCM-paper guidance scale of the reference and of every guided method (guidance_scale = w + 1)
    reference_steps: int = 50  # teacher's reference sampler (DDIM trailing; flow: Euler), CFG at w
    num_samples: int = 128  # prompt/seed pairs (the toy world draws a random caption per sample)
    seed: int = 0  # prompts, initial noise, LCM re-noising and the undistilled student's cond_proj all derive from it
    batch_size: int = 128  # samples per sampler call (memory, not results)
    methods: list[str] = field(default_factory=lambda: list(METHODS))  # the table's rows (METHODS keys)
    prompts: Optional[list[str]] = None  # real teachers: cycled over the samples (None: the reference's prompts)
    clip_model: Optional[str] = None  # local folder of a transformers CLIPModel: adds CLIP score (never downloaded)
    fid_model: Optional[str] = None  # TorchScript feature extractor (images in [0, 1] -> (n, d)): adds FID
    grid_samples: int = 8  # columns of the picture grid
    cache_teacher: bool = True  # reuse the student-independent rows (reference, teacher baselines) across students
    objective: str = "latent_rmse:student:1,2"  # metric:method:steps -> mean, the number a sweep job returns
    at_end: bool = False  # evaluate the exported student when training ends (toy presets: on; a real teacher's
    # 50-step reference costs GPU minutes, so real runs opt in); its numbers become run metrics (eval:...)
    every_n_steps: int = 0  # learning curve: evaluate the live student every n optimizer steps (0: off); rows in
    # metrics.jsonl ("eval": true), eval_curve.png, run metrics eval_objective_best(_step) (evaluate/curve.py)
    export_best: bool = False  # with every_n_steps: export each new best student into <run dir>/best/

    def __post_init__(self) -> None:
        problems = []
        if not self.steps or any(int(s) < 1 for s in self.steps):
            problems.append(f"steps={self.steps}: must be a non-empty list of ints >= 1")
        if self.w < 0:
            problems.append(f"w={self.w}: must be >= 0 (LCM convention, guidance_scale = w + 1)")
        if self.reference_steps < 1:
            problems.append(f"reference_steps={self.reference_steps}: must be >= 1")
        if self.num_samples < 2:
            problems.append(f"num_samples={self.num_samples}: must be >= 2 (Frechet distance needs a covariance)")
        if self.every_n_steps < 0:
            problems.append(f"every_n_steps={self.every_n_steps}: must be >= 0 (0: no learning curve)")
        if self.batch_size < 1:
            problems.append(f"batch_size={self.batch_size}: must be >= 1")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            problems.append(f"methods: unknown {unknown}; valid: {', '.join(METHODS)}")
        if self.prompts is not None and not self.prompts:
            problems.append("prompts: must be null or a non-empty list")
        try:
            self.parse_objective()
        except ValueError as err:
            problems.append(str(err))
        if problems:
            raise ValueError("evaluation settings: " + "; ".join(problems))
        self.steps = sorted({int(s) for s in self.steps})

    def parse_objective(self) -> tuple[str, str, list[int]]:
        """(metric, method, steps) of ``objective`` = "metric:method:s1,s2,..."."""
        parts = self.objective.split(":")
        if len(parts) != 3:
            raise ValueError(
                f"objective={self.objective!r}: expected 'metric:method:steps', e.g. 'latent_rmse:student:1,2'"
            )
        metric, method, steps = parts
        if metric not in METRICS:
            raise ValueError(f"objective={self.objective!r}: unknown metric {metric!r}; valid: {', '.join(METRICS)}")
        if method not in METHODS:
            raise ValueError(f"objective={self.objective!r}: unknown method {method!r}; valid: {', '.join(METHODS)}")
        try:
            step_list = [int(s) for s in steps.split(",")]
        except ValueError as err:
            raise ValueError(f"objective={self.objective!r}: steps must be comma-separated ints") from err
        return metric, method, step_list

    def objective_problems(self, toy_teacher: bool | None = None) -> list[str]:
        """Why this evaluation could not compute its objective: a method or step count it does not run, or (when
        ``toy_teacher`` is known) a metric this teacher and these settings cannot give."""
        metric, method, steps = self.parse_objective()
        problems = []
        if method not in self.methods:
            problems.append(f"evaluation.objective={self.objective!r}: method {method!r} is not in methods "
                            f"{self.methods}")
        missing = sorted(set(steps) - set(self.steps))
        if missing:
            problems.append(f"evaluation.objective={self.objective!r}: steps {missing} are not in steps {self.steps}")
        needs = {"attr_acc": (toy_teacher, "a toy-world teacher (its classifier)"),
                 "fd": (toy_teacher, "a toy-world teacher (its classifier)"),
                 "clip_score": (self.clip_model is not None, "evaluation.clip_model (a local CLIPModel folder)"),
                 "fid": (self.fid_model is not None,
                         "evaluation.fid_model (a local TorchScript extractor)")}  # fmt: skip
        available, what = needs.get(metric, (True, ""))
        if available is False:
            problems.append(f"evaluation.objective={self.objective!r}: metric {metric!r} needs {what}")
        return problems
