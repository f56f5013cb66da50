"""The prepared GPU check (issue 8, item 5): ``python -m lcm_exp.bench.gpu_check --out DIR`` (scripts/gpu_check.sh).

One process, one bf16 Accelerator, random-init teachers built from the real configs on the GPU (no hub):
SD1.5-size UNet full and LoRA at 512 px (batch 8) and SDXL-size LoRA at 1024 px (batch 4), each reference-parity
vs optimised, with samples/s, peak memory, TFLOP/s and the fraction of the card's peak; SDXL LoRA runs with
gradient checkpointing (its recipe), also with 8-bit AdamW (the < 24 GB target) and also without checkpointing.
Sections run in priority order against a time
budget; extras (an SD1.5 ablation, channels_last, torch.compile) only while time is left. A quick CUDA equal-math
check runs first. Writes DIR/gpu_results.md and DIR/gpu_results.json after every section.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

log = logging.getLogger("lcm_exp.bench.gpu_check")


@dataclass
class Section:
    name: str
    preset: str | None
    overrides: list[str]
    variants: list[str]
    steps: int = 10
    warmup: int = 3
    cache_samples: int = 64
    min_left_s: float = 45.0  # a variant starts only with this much of the budget left
    extra: bool = False  # runs only after every core section


SD15 = [
    "trainer.mixed_precision=bf16",
    "model.resolution=512",
    "trainer.batch_size=8",
    "model.vae_dtype=bf16",
    "data.num_workers=4",
    "trainer.max_train_steps=100000",
]  # the SD scripts run their VAE in half precision
SDXL = [
    "trainer.mixed_precision=bf16",
    "model.resolution=1024",
    "trainer.batch_size=4",
    "data.num_workers=4",
    "trainer.max_train_steps=100000",
    "trainer.gradient_checkpointing=true",
]  # the SDXL LoRA recipe's settings;
# the SDXL scripts keep their VAE in fp32

PLAN = [
    Section("sd15_full_512", "sd15", ["adapter=full", *SD15], ["parity", "optimised"]),
    Section("sd15_lora_512", "sd15", ["adapter=lora", *SD15], ["parity", "optimised"]),
    Section(
        "sdxl_lora_1024",
        "sdxl",
        ["adapter=lora", *SDXL],
        ["parity", "optimised", "optimised+optim=adamw8bit", "optimised+trainer.gradient_checkpointing=false"],
        steps=6,
        warmup=2,
        cache_samples=32,
        min_left_s=60.0,
    ),
    Section(
        "sd15_full_512_switches",
        "sd15",
        ["adapter=full", *SD15],
        ["ablation", "optimised+channels_last"],
        steps=8,
        warmup=2,
        extra=True,
    ),
    Section(
        "sd15_full_512_compile",
        "sd15",
        ["adapter=full", *SD15],
        ["optimised+perf.compile=true"],
        steps=8,
        warmup=3,
        min_left_s=240.0,
        extra=True,
    ),
]


def smoke(sec: Section) -> Section:
    """The section at toy size on the CPU: same variants and code path, tiny offline teachers."""
    model = "model=tiny_sdxl" if sec.preset == "sdxl" else "model=tiny_sd15"
    keep = [o for o in sec.overrides if o.startswith(("adapter=", "model.vae_dtype"))]
    tiny = [
        model,
        *keep,
        "model.resolution=32",
        "trainer.batch_size=2",
        "trainer.mixed_precision=no",
        "data.num_workers=0",
    ]
    variants = [v for v in sec.variants if "compile" not in v]
    return Section(sec.name, None, tiny, variants, steps=1, warmup=0, cache_samples=4, min_left_s=0.0, extra=sec.extra)


@dataclass
class Report:
    started: float = field(default_factory=time.time)
    environment: dict = field(default_factory=dict)
    equal_math: dict = field(default_factory=dict)
    sections: dict = field(default_factory=dict)  # name -> {"markdown": ..., "results": [...]}

    def write(self, out: Path) -> None:
        lines = [
            "# GPU check (lcm_exp.bench.gpu_check)",
            "",
            *(f"- {k}: {v}" for k, v in self.environment.items()),
            "",
            "## Equal math on CUDA (fp32, TF32 off): parity vs optimised (+channels_last)",
            "",
            *(f"- {k}: {v}" for k, v in self.equal_math.items()),
            "",
        ]
        for name, sec in self.sections.items():
            lines += [f"## {name}", "", sec["markdown"], ""]
        (out / "gpu_results.md").write_text("\n".join(lines))
        (out / "gpu_results.json").write_text(json.dumps(asdict(self), indent=1, default=str))


def environment() -> dict:
    import diffusers

    env = {
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "diffusers": diffusers.__version__,
    }
    try:
        env["nvidia-smi"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as err:
        env["nvidia-smi"] = f"unavailable: {err}"
    try:
        import bitsandbytes  # noqa: F401

        env["bitsandbytes"] = bitsandbytes.__version__
    except Exception as err:  # noqa: BLE001 - any import failure means no 8-bit Adam here
        env["bitsandbytes"] = f"unavailable: {type(err).__name__}"
    return env


def equal_math_cuda() -> dict:
    """distill_step on CUDA in fp32 (TF32 off): reference parity vs optimised + channels_last, same weights (on the
    CPU when there is no GPU, for the --smoke rehearsal)."""
    from diffusers import DDPMScheduler, UNet2DConditionModel

    from lcm_exp.bench.variants import _perf_file
    from lcm_exp.conditioning import Conditioning
    from lcm_exp.config.schema import PerfConfig
    from lcm_exp.models.unet_family import make_student_unet, unet_fn
    from lcm_exp.objective import DDPMSchedule, DistillModels, ObjectiveSpec, build_loss, distill_step
    from lcm_exp.perf.switches import set_memory_format
    from lcm_exp.train.components import build_solver

    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    teacher = UNet2DConditionModel(
        sample_size=16,
        block_out_channels=(64, 128, 256),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=256,
        attention_head_dim=8,
    ).requires_grad_(False)
    student = make_student_unet(teacher, 256, "random").train()
    target = copy.deepcopy(student).requires_grad_(False)
    with torch.no_grad():
        for p in target.parameters():
            p.add_(torch.randn_like(p) * 0.1 * p.abs().mean())
    g = torch.Generator().manual_seed(1)
    z0 = torch.randn(4, 4, 16, 16, generator=g).to(dev)
    cond = Conditioning(torch.randn(4, 77, 256, generator=g).to(dev))
    uncond = Conditioning(torch.zeros(4, 77, 256, device=dev))

    parity = PerfConfig(**_perf_file("reference_parity"))
    optimised = PerfConfig(channels_last=True)
    schedule = DDPMSchedule(DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).alphas_cumprod)
    runs = []
    for perf in (parity, optimised):
        t, s, tg = (copy.deepcopy(m).to(dev) for m in (teacher, student, target))
        set_memory_format([t, s, tg], perf.channels_last)
        spec = ObjectiveSpec(build_loss("l2"), 5.0, 15.0, teacher_single_pass=perf.teacher_single_pass,
                             no_grad_first=perf.no_grad_first, host_side_sampling=perf.host_side_sampling)
        models = DistillModels(unet_fn(s), unet_fn(t), unet_fn(tg), 256)
        # a CPU generator: host-side sampling (parity) can only use a CPU one, and the same generator on both
        # sides gives both variants the same grid indices, noise and w (the draws are moved to the device)
        gen = torch.Generator().manual_seed(0)
        out = distill_step(z0, cond, uncond, models, build_solver(schedule, 50, dev, perf.solver_dtype), spec, gen)
        out.loss.backward()
        runs.append((out.loss.item(), torch.cat([p.grad.flatten() for p in s.parameters()])))
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    (l_ref, g_ref), (l_opt, g_opt) = runs
    return {
        "loss parity": l_ref,
        "loss optimised": l_opt,
        "loss relative difference": abs(l_ref - l_opt) / l_ref,
        "gradient relative difference": ((g_ref - g_opt).norm() / g_ref.norm()).item(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop starting variants after this long")
    parser.add_argument("--sections", default="", help="comma-separated section names (default: the whole plan)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="rehearse the whole plan on the CPU with the tiny teachers (32 px, 1 step per variant)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from lcm_exp.bench.runner import BenchOptions
    from lcm_exp.bench.session import make_accelerator, preset_overrides, run_bench

    deadline = time.monotonic() + args.budget_s
    args.out.mkdir(parents=True, exist_ok=True)
    report = Report(environment=environment())
    try:
        report.equal_math = equal_math_cuda()
    except Exception as err:  # noqa: BLE001 - report and go on to the timings
        report.equal_math = {"error": f"{type(err).__name__}: {err}"}
    report.write(args.out)
    wanted = {s for s in args.sections.split(",") if s}
    plan = [s for s in PLAN if not wanted or s.name in wanted]
    plan = [s for s in plan if not s.extra] + [s for s in plan if s.extra]
    if args.smoke:
        plan = [t for t in map(smoke, plan) if t.variants]
    accelerator = make_accelerator("no" if args.smoke else "bf16")
    for sec in plan:
        if deadline - time.monotonic() < sec.min_left_s:
            log.info("section %s skipped: time budget spent", sec.name)
            continue
        log.info("section %s", sec.name)
        opts = BenchOptions(steps=sec.steps, warmup=sec.warmup, cache_samples=sec.cache_samples)
        tmp = Path("/tmp/lcm_exp_gpu_check") / f"{sec.name}.md"
        try:
            results = run_bench(
                preset_overrides(sec.preset, sec.overrides),
                sec.variants,
                opts,
                tmp,
                deadline=deadline,
                min_left_s=sec.min_left_s,
                accelerator=accelerator,
            )
            report.sections[sec.name] = {"markdown": tmp.read_text(), "results": [asdict(r) for r in results]}
        except Exception as err:  # noqa: BLE001 - e.g. the latent cache build ran out of memory
            log.exception("section %s failed", sec.name)
            report.sections[sec.name] = {"markdown": f"failed: {type(err).__name__}: {err}", "results": []}
        report.write(args.out)
    print((args.out / "gpu_results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
