"""Runs every sampler of an evaluation over its sample set in batches: the teacher's baselines of its schedule kind
(baselines.py) and the student's exported scheduler (samplers.StudentSampling)."""

from __future__ import annotations

import torch

from lcm_exp.evaluate import samplers
from lcm_exp.evaluate.baselines import REFERENCE as REFERENCE_BASELINE
from lcm_exp.evaluate.baselines import baselines_for
from lcm_exp.evaluate.settings import REFERENCE, EvalSettings


def teacher_scheduler_config(family) -> dict:
    """The teacher's own scheduler_config.json (SD: PNDM with steps_offset 1, set_alpha_to_one false; SD3:
    FlowMatchEulerDiscreteScheduler with its shift), so the baselines are what ``<Scheduler>.from_config(
    pipe.scheduler.config)`` gives a diffusers user."""
    from lcm_exp.models.teacher_files import read_json

    return read_json(family.teacher, "scheduler_config.json", family.revision, subfolder="scheduler")


def conditioning(family, captions: list[str]):
    """Cond and uncond for prompts at the model resolution (SDXL: original = target size, no crop)."""
    n, res = len(captions), family.cfg.resolution
    batch = {"captions": captions, "original_size": torch.full((n, 2), res), "crop_top_left": torch.zeros(n, 2)}
    cond = family.encode_text(batch)
    return cond, family.unconditional(cond)


class Runner:
    def __init__(self, family, samples, settings: EvalSettings, sampling: samplers.StudentSampling,
                 teacher: samplers.Denoiser):  # fmt: skip
        self.family, self.samples, self.settings, self.sampling = family, samples, settings, sampling
        self.device = family.device
        self.cond, self.uncond = conditioning(family, samples.captions)
        self.kind = family.schedule.kind
        self.baselines = baselines_for(self.kind)
        self.teacher_net = teacher
        self._teacher_config = teacher_scheduler_config(family)

    def teacher_methods(self) -> list[str]:
        return [m for m in self.baselines if m in self.settings.methods]

    def reference_label(self, steps: int) -> str:
        return REFERENCE_BASELINE[self.kind].label.format(n=steps)

    def _baseline(self, method: str):
        return self.baselines[REFERENCE_BASELINE[self.kind].method if method == REFERENCE else method]

    def nfe(self, method: str, steps: int) -> int:
        """UNet evaluations per sample: guided teacher steps cost two (cond + uncond); the student embeds w."""
        guided = (method == REFERENCE or method in self.baselines) and self._baseline(method).guided
        return 2 * steps if guided and self.settings.w > 0 else steps

    def _batched(self, fn) -> torch.Tensor:
        out, bs = [], self.settings.batch_size
        for i in range(0, self.samples.noise.shape[0], bs):
            sl = slice(i, i + bs)
            x = self.samples.noise[sl].to(self.device)
            out.append(fn(x, sl).float().cpu())
        return torch.cat(out)

    def teacher(self, method: str, steps: int) -> torch.Tensor:
        """A baseline (or the reference) from the same noise, with CFG at w when the baseline is guided."""
        baseline = self._baseline(method)
        scheduler = baseline.make_scheduler(self._teacher_config)
        w = self.settings.w if baseline.guided else 0.0
        return self._batched(lambda x, sl: samplers.teacher_sample(
            self.teacher_net, scheduler, x, steps, self.cond[sl], self.uncond[sl], w, **baseline.step_kwargs))

    def student(self, net: samplers.Denoiser, sampler, steps: int) -> torch.Tensor:
        """A student sampler on the exported scheduler; its fresh noise from one generator per sample."""
        scheduler, kwargs, w = self.sampling.scheduler, self.sampling.step_kwargs, self.settings.w

        def run(x, sl):
            gens = [torch.Generator().manual_seed(s) for s in self.samples.seeds[sl]]
            return sampler(net, scheduler, x, steps, self.cond[sl], w, gens, **kwargs)

        return self._batched(run)
