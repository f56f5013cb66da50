"""The prepared GPU check: ``python -m lcm_exp.bench.gpu_check --out DIR`` (scripts/gpu_check.sh), sized to fit about
four minutes of a lent GPU after its start.

One process, one bf16 Accelerator, random-init teachers built from the real configs on the GPU (no hub), every
variant built by ``lcm_exp.train.build.build_run`` (what ``launch.py`` runs). First the card's measured bf16 matmul
peak (the MFU denominator), then, in priority order, each section's numbers written to DIR as soon as they exist:
SD1.5-size full student at 512 px, ``launch.py`` defaults vs ``perf=reference_parity`` (batch 8); the same full
student at batch 16 and 32 (MFU); the SD1.5-size LoRA student (default vs parity, and its step against the full
one); SDXL-size LoRA at 1024 px batch 4 (peak memory, the < 24 GB target). A section starts only while the budget
allows it.
"""

from __future__ import annotations

import argparse
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
    steps: int = 5
    warmup: int = 2
    min_left_s: float = 30.0  # a variant starts only with this much of the budget left
    interleave: bool = True
    count_flops: bool = True


SD15 = ["trainer.mixed_precision=bf16", "model.resolution=512", "trainer.batch_size=8", "data.num_workers=4",
        "trainer.max_train_steps=100000"]  # fmt: skip
SDXL = ["trainer.mixed_precision=bf16", "model.resolution=1024", "trainer.batch_size=4", "data.num_workers=4",
        "trainer.max_train_steps=100000", "trainer.gradient_checkpointing=true"]  # fmt: skip  (the SDXL LoRA recipe)

PLAN = [
    Section("sd15_full_512", "sd15", ["adapter=full", *SD15], ["default", "parity"]),
    Section("sd15_full_512_batch", "sd15", ["adapter=full", *SD15],
            ["default+trainer.batch_size=16", "default+trainer.batch_size=32"], steps=3, interleave=False),
    Section("sd15_lora_512", "sd15", ["adapter=lora", *SD15], ["default", "parity", "default+adapter=full"]),
    Section("sdxl_lora_1024", "sdxl", ["adapter=lora", *SDXL], ["default"], steps=2, warmup=1, interleave=False,
            count_flops=False),
]  # fmt: skip


def measured_bf16_peak_tflops() -> float | None:
    """The card's bf16 matmul rate (8192^3, mean of 10 after 3 warm-ups): the denominator of MFU here."""
    if not torch.cuda.is_available():
        return None
    a, b = (torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(10):
        a @ b
    torch.cuda.synchronize()
    return 10 * 2 * 8192**3 / (time.perf_counter() - t0) / 1e12


def smoke(sec: Section) -> Section:
    """The section at toy size on the CPU: same variants and code path, tiny offline teachers."""
    model = "model=tiny_sdxl" if sec.preset == "sdxl" else "model=tiny_sd15"
    keep = [o for o in sec.overrides if o.startswith("adapter=")]
    tiny = [model, *keep, "model.resolution=32", "trainer.batch_size=2", "trainer.mixed_precision=no",
            "data.num_workers=0"]  # fmt: skip
    variants = [v.replace("batch_size=16", "batch_size=3").replace("batch_size=32", "batch_size=4")
                for v in sec.variants]  # fmt: skip
    return Section(sec.name, None, tiny, variants, steps=1, warmup=0, min_left_s=0.0, interleave=sec.interleave,
                   count_flops=sec.count_flops)  # fmt: skip


@dataclass
class Report:
    started: float = field(default_factory=time.time)
    environment: dict = field(default_factory=dict)
    bf16_peak_tflops: float | None = None
    sections: dict = field(default_factory=dict)  # name -> {"markdown": ..., "results": [...]}

    def write(self, out: Path) -> None:
        peak = f"{self.bf16_peak_tflops:.0f} TFLOP/s" if self.bf16_peak_tflops else "not measured"
        lines = ["# GPU check (lcm_exp.bench.gpu_check)", "", *(f"- {k}: {v}" for k, v in self.environment.items()),
                 f"- measured bf16 matmul peak (8192^3): {peak}", ""]  # fmt: skip
        for name, sec in self.sections.items():
            lines += [f"## {name}", "", sec["markdown"], "", *self._mfu(sec["results"]), ""]
        (out / "gpu_results.md").write_text("\n".join(lines))
        (out / "gpu_results.json").write_text(json.dumps(asdict(self), indent=1, default=str))

    def _mfu(self, results: list[dict]) -> list[str]:
        """MFU against the measured peak, and the step ratio of each variant to the section's first."""
        if not results:
            return []
        first = results[0]
        lines = ["| variant | MFU (measured peak) | samples/s vs first | peak GiB |", "|---|---:|---:|---:|"]
        for r in results:
            mfu = r["tflops"] / self.bf16_peak_tflops if r.get("tflops") and self.bf16_peak_tflops else None
            ratio = r["samples_per_s"] / first["samples_per_s"] if first["samples_per_s"] else None
            lines.append(f"| {r['name']} | {'-' if mfu is None else f'{mfu:.1%}'} | "
                         f"{'-' if ratio is None else f'{ratio:.2f}x'} | {r['peak_bytes'] / 2**30:.1f} |")  # fmt: skip
        return lines


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
            capture_output=True, text=True, timeout=20,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError) as err:
        env["nvidia-smi"] = f"unavailable: {err}"
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget-s", type=float, default=200.0, help="stop starting variants after this long")
    parser.add_argument("--sections", default="", help="comma-separated section names (default: the whole plan)")
    parser.add_argument("--smoke", action="store_true",
                        help="rehearse the whole plan on the CPU with the tiny teachers (32 px, 1 step per variant)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from lcm_exp.bench.runner import BenchOptions
    from lcm_exp.bench.session import make_accelerator, preset_overrides, run_bench

    deadline = time.monotonic() + args.budget_s
    args.out.mkdir(parents=True, exist_ok=True)
    report = Report(environment=environment(), bf16_peak_tflops=measured_bf16_peak_tflops())
    report.write(args.out)
    wanted = {s for s in args.sections.split(",") if s}
    plan = [s for s in PLAN if not wanted or s.name in wanted]
    if args.smoke:
        plan = list(map(smoke, plan))
    accelerator = make_accelerator("no" if args.smoke else "bf16")
    for sec in plan:
        if deadline - time.monotonic() < sec.min_left_s:
            log.info("section %s skipped: time budget spent", sec.name)
            continue
        log.info("section %s", sec.name)
        opts = BenchOptions(steps=sec.steps, warmup=sec.warmup, count_flops=sec.count_flops)
        tmp = args.out / f"{sec.name}.md"
        try:
            results = run_bench(preset_overrides(sec.preset, sec.overrides), sec.variants, opts, tmp,
                                deadline=deadline, min_left_s=sec.min_left_s, accelerator=accelerator,
                                interleave=sec.interleave)  # fmt: skip
            report.sections[sec.name] = {"markdown": tmp.read_text(), "results": [asdict(r) for r in results]}
        except Exception as err:  # noqa: BLE001 - e.g. out of memory: report it and go on
            log.exception("section %s failed", sec.name)
            report.sections[sec.name] = {"markdown": f"failed: {type(err).__name__}: {err}", "results": []}
        report.write(args.out)
    print((args.out / "gpu_results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
