"""The toy flow teacher's evaluation table over distillation seeds (README "Flow-matching teachers").

    python scripts/toy_flow_eval.py <run dir seed 0> <run dir seed 1> <run dir seed 2> [--num-samples 128] [--out F]

Interim tool until ``python -m lcm_exp.evaluate`` runs flow teachers (lcm_exp/evaluate is being made schedule-
generic); it uses that package's sample set, conditioning and metrics, so the protocol is the toy UNet table's:
the same prompts and initial noise for every method, the reference is the teacher's Euler with 50 steps and CFG at
w = 3 (guidance_scale 4), the fair baseline is the same Euler with CFG at 1-8 steps, the undistilled student is the
teacher's weights under the student's FlowMatchLCMScheduler. Prints the table (mean +- std over the runs where a row
depends on the student) and the issue's comparisons per run; exit 1 if one fails.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

W, STEPS, REFERENCE_STEPS = 3.0, (1, 2, 4, 8), 50
LABELS = {
    "reference": "teacher Euler-50 + CFG (reference)",
    "student": "student, FlowMatchLCMScheduler",
    "euler_cfg": "teacher Euler + CFG (fair baseline)",
    "euler_nocfg": "teacher Euler, no CFG",
    "undistilled": "undistilled student, FlowMatchLCMScheduler",
}
CLAIMS = [(m, b, s) for s in (1, 2) for m in ("latent_rmse", "psnr_db") for b in ("euler_cfg", "undistilled")]


class Evaluation:
    """The teacher's rows once; ``student_rows(run_dir)`` per distilled student."""

    def __init__(self, teacher: str, model_cfg: dict, num_samples: int):
        from lcm_exp.config.schema import SD3ModelConfig
        from lcm_exp.evaluate.core import build_sample_set, conditioning
        from lcm_exp.evaluate.settings import EvalSettings
        from lcm_exp.models.sd3 import SD3Family
        from lcm_exp.toy.build import CLASSIFIER_DIR, read_toy_world
        from lcm_exp.toy.classifier import AttributeClassifier

        keys = ("teacher", "resolution", "max_sequence_length", "uncond")
        self.family = SD3Family(SD3ModelConfig(family="sd3", **{k: model_cfg[k] for k in keys}))
        self.classifier = AttributeClassifier.load(Path(teacher) / CLASSIFIER_DIR)
        self.samples = build_sample_set(self.family, EvalSettings(num_samples=num_samples), read_toy_world(teacher))
        self.cond, self.uncond = conditioning(self.family, self.samples.captions)
        _, self.real_features = self.classifier.predict(self.samples.real_images)
        self.ref = self.euler(self.family.denoiser, REFERENCE_STEPS, W)
        self.ref_images = self.decode(self.ref)

    def call(self, net, x, t, cond, w_emb=None):
        return self.family.denoiser_fn(net)(x, torch.full((x.shape[0],), float(t)), cond, w_emb).float()

    @torch.no_grad()
    def euler(self, net, steps: int, w: float) -> torch.Tensor:
        from diffusers import FlowMatchEulerDiscreteScheduler

        from lcm_exp.objective import apply_cfg

        scheduler = FlowMatchEulerDiscreteScheduler.from_config(self.family.scheduler_config)
        scheduler.set_timesteps(steps)
        x = self.samples.noise.clone()
        for t in scheduler.timesteps:
            if w == 0:
                v = self.call(net, x, t, self.cond)
            else:
                v_c, v_u = self.call(net, torch.cat([x, x]), t, self.cond.cat(self.uncond)).chunk(2)
                v = apply_cfg(v_c, v_u, w)
            x = scheduler.step(v, t, x).prev_sample
        return x

    @torch.no_grad()
    def lcm(self, net, scheduler_dir: Path, steps: int, w_emb=None) -> torch.Tensor:
        from diffusers import FlowMatchLCMScheduler

        scheduler = FlowMatchLCMScheduler.from_pretrained(scheduler_dir, subfolder="scheduler")
        scheduler.set_timesteps(steps)
        generators = [torch.Generator().manual_seed(s) for s in self.samples.seeds]
        x = self.samples.noise.clone()
        for t in scheduler.timesteps:
            x = scheduler.step(self.call(net, x, t, self.cond, w_emb), t, x, generator=generators).prev_sample
        return x

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return (self.family.decode(latents) / 2 + 0.5).clamp(0, 1)

    def row(self, latents: torch.Tensor) -> dict[str, float]:
        from lcm_exp.evaluate.metrics import frechet_distance, latent_rmse, psnr_db
        from lcm_exp.toy.classifier import attribute_accuracy

        images = self.decode(latents)
        predicted, features = self.classifier.predict(images * 2 - 1)
        return {
            "latent_rmse": latent_rmse(latents, self.ref).mean().item(),
            "psnr_db": psnr_db(images, self.ref_images).mean().item(),
            "attr_acc": attribute_accuracy(predicted, self.samples.attributes)["mean"],
            "fd": frechet_distance(features, self.real_features),
        }

    def teacher_rows(self, scheduler_dir: Path) -> dict[tuple[str, int], dict]:
        rows = {("reference", REFERENCE_STEPS): self.row(self.ref)}
        for steps in STEPS:
            rows[("euler_cfg", steps)] = self.row(self.euler(self.family.denoiser, steps, W))
            rows[("euler_nocfg", steps)] = self.row(self.euler(self.family.denoiser, steps, 0.0))
            rows[("undistilled", steps)] = self.row(self.lcm(self.family.denoiser, scheduler_dir, steps))
        return rows

    def student_rows(self, run_dir: Path) -> dict[tuple[str, int], dict]:
        from diffusers import StableDiffusion3Pipeline

        from lcm_exp.adapters.full import saved_network_class
        from lcm_exp.objective import guidance_embedding

        model = Path(run_dir) / "model"
        w_emb = None
        if (model / "transformer").is_dir():  # a full student embeds w
            net = saved_network_class(model / "transformer").from_pretrained(model, subfolder="transformer")
            w_emb = guidance_embedding(torch.full((len(self.samples.captions),), W), net.config.guidance_embedding_dim)
        else:
            pipe = StableDiffusion3Pipeline.from_pretrained(self.family.teacher)
            pipe.load_lora_weights(model)
            net = pipe.transformer
        return {("student", s): self.row(self.lcm(net, model, s, w_emb)) for s in STEPS}


def _cell(values: list[float], spread: bool) -> str:
    fmt = (lambda v: f"{v:.3f}") if abs(values[0]) < 10 else (lambda v: f"{v:.1f}")  # noqa: E731
    if len(values) == 1 or not spread:
        return fmt(values[0])
    return f"{fmt(statistics.mean(values))} ± {fmt(statistics.stdev(values))}"


def table(teacher: dict, students: list[dict]) -> str:
    lines = ["| method | steps | NFE | latent RMSE | PSNR dB | attr acc | FD |", "|---|---|---|---|---|---|---|"]
    keys = [("reference", REFERENCE_STEPS), *[("student", s) for s in STEPS],
            *[(m, s) for m in ("euler_cfg", "euler_nocfg", "undistilled") for s in STEPS]]  # fmt: skip
    for method, steps in keys:
        rows = [r[(method, steps)] for r in students] if method == "student" else [teacher[(method, steps)]]
        nfe = 2 * steps if method in ("reference", "euler_cfg") else steps
        cells = ["-" if method == "reference" and m in ("latent_rmse", "psnr_db") else
                 _cell([r[m] for r in rows], method == "student") for m in ("latent_rmse", "psnr_db", "attr_acc", "fd")]  # fmt: skip
        lines.append(f"| {LABELS[method]} | {steps} | {nfe} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def claims(teacher: dict, students: list[dict]) -> tuple[list[str], bool]:
    lines, ok = ["| claim | " + " | ".join(f"run {i}" for i in range(len(students))) + " | holds |", "|---|" + "---|" * (len(students) + 1)], True
    for metric, baseline, steps in CLAIMS:
        lower = metric == "latent_rmse"
        cells, holds = [], True
        for student in students:
            s, b = student[("student", steps)][metric], teacher[(baseline, steps)][metric]
            holds &= s < b if lower else s > b
            cells.append(f"{s:.3g} vs {b:.3g}")
        ok &= holds
        lines.append(f"| student beats {baseline} on {metric} at {steps} step{'s' * (steps > 1)} | "
                     + " | ".join(cells) + f" | {'yes' if holds else 'NO'} |")  # fmt: skip
    return lines, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run dirs of one toy flow teacher (different seeds)")
    parser.add_argument("--num-samples", type=int, default=128)
    parser.add_argument("--out", type=Path, help="also write the table and the comparisons (Markdown) here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    configs = [json.loads((run / "run.json").read_text())["config"]["model"] for run in args.runs]
    if len({c["teacher"] for c in configs}) != 1:
        parser.error("the runs must share one teacher")
    evaluation = Evaluation(configs[0]["teacher"], configs[0], args.num_samples)
    teacher = evaluation.teacher_rows(args.runs[0] / "model")
    students = [evaluation.student_rows(run) for run in args.runs]
    comparison, ok = claims(teacher, students)
    text = table(teacher, students) + "\n\n" + "\n".join(comparison) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
