"""Benchmark LCD training steps: ``python -m lcm_exp.bench [options] [-- hydra overrides]``.

Composes conf/ with the overrides (as launch.py would), then, in this one process, measures each variant
(``--variants``, see lcm_exp/bench/variants.py) on identical data and seeds: median warm step, samples/s, a phase
breakdown, peak memory (max allocated on CUDA, peak RSS on CPU), FLOPs per step and achieved TFLOP/s (with the
fraction of the card's peak on known GPUs). Writes a Markdown table (and a .json twin) to ``--out``.

    python -m lcm_exp.bench --teacher-preset cpu_small --variants parity,optimised --steps 10 \\
        --out outputs/bench/cpu.md -- model.resolution=128 trainer.batch_size=8
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--variants",
        default="parity,optimised",
        help="comma-separated variants; 'ablation' = parity, each switch alone, optimised",
    )
    parser.add_argument(
        "--teacher-preset",
        default=None,
        choices=("cpu_small", "sd15", "sdxl"),
        help="random-init teacher of that size (lcm_exp/bench/teachers.py) instead of model.teacher",
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per variant (after one FLOP-count step)")
    parser.add_argument("--cache-samples", type=int, default=256, help="samples in the bench's latent cache")
    parser.add_argument("--no-flops", action="store_true", help="skip the FLOP-counting step")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU; default: torch's)")
    parser.add_argument("--repeat", type=int, default=1, help="measure the variant list this many times, in turn")
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="time the variants again side by side, one step of each in turn (fair on a busy shared machine)",
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/bench.md"))
    parser.add_argument("--title", default="", help="heading written above the table")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (after --)")
    return parser.parse_args(argv)


def run(args) -> list:
    import torch

    from lcm_exp.bench.runner import BenchOptions
    from lcm_exp.bench.session import preset_overrides, run_bench

    if args.threads:
        torch.set_num_threads(args.threads)
    opts = BenchOptions(
        steps=args.steps, warmup=args.warmup, cache_samples=args.cache_samples, count_flops=not args.no_flops
    )
    names = [v.strip() for v in args.variants.split(",") if v.strip()] * args.repeat
    base = preset_overrides(args.teacher_preset, list(args.overrides))
    return run_bench(base, names, opts, args.out, title=args.title, interleave=args.interleave)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from lcm_exp.runlog.logs import quiet_third_party

    quiet_third_party()  # the console is ours: diffusers' empty-list dtype notes and the like are dropped
    args = parse_args(argv)
    results = run(args)
    print(args.out.read_text())
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
