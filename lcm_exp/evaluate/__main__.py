"""`python -m lcm_exp.evaluate <run dir> [options]`: evaluate a run's exported student, print the table.

Writes <run dir>/eval/{table.txt, results.csv, summary.json, metrics.png, grid.png}. Settings default to the run
config's `evaluation` node (when it has one), else to EvalSettings' defaults; options override them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lcm_exp.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a run directory with config.yaml and model/")
    parser.add_argument("--steps", type=int, nargs="+", help="step counts to compare (default 1 2 4 8)")
    parser.add_argument("--w", type=float, help="LCM-convention guidance scale w (diffusers guidance_scale = w + 1)")
    parser.add_argument("--reference-steps", type=int, help="steps of the reference teacher DDIM (default 50)")
    parser.add_argument("--num-samples", type=int, help="prompt/seed pairs (default 128)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--methods", nargs="+", help="rows to compute (default: the run config's, else all)")
    parser.add_argument("--prompts", nargs="+", help="prompts for a real teacher (cycled over the samples)")
    parser.add_argument("--clip-model", help="local transformers CLIPModel folder: adds CLIP score")
    parser.add_argument("--fid-model", help="local TorchScript feature extractor: adds FID")
    parser.add_argument("--objective", help="metric:method:steps, e.g. latent_rmse:student:1,2")
    parser.add_argument("--no-cache", action="store_true", help="recompute the teacher rows")
    parser.add_argument("--device", help="cpu | cuda (default: cuda when available)")
    parser.add_argument("--out", help="report folder (default <run dir>/eval)")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from lcm_exp.runlog.logs import quiet_third_party

    quiet_third_party()  # the console is ours: diffusers' empty-list dtype notes and the like are dropped
    from pathlib import Path

    import yaml

    from lcm_exp.evaluate.report import format_table
    from lcm_exp.evaluate.run import evaluate_run, settings_from

    run_dir = Path(args.run_dir)
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        parser.error(f"{run_dir} is not a run dir (no config.yaml)")
    node = yaml.safe_load(config_file.read_text()).get("evaluation")
    try:
        settings = settings_from(
            node, steps=args.steps, w=args.w, reference_steps=args.reference_steps, num_samples=args.num_samples,
            seed=args.seed, batch_size=args.batch_size, methods=args.methods, prompts=args.prompts,
            clip_model=args.clip_model, fid_model=args.fid_model, objective=args.objective,
            cache_teacher=False if args.no_cache else None,
        )  # fmt: skip
    except ValueError as err:
        parser.error(str(err))
    result = evaluate_run(run_dir, settings, device=args.device, out_dir=args.out)
    print(format_table(result))
    skipped = settings.objective_problems()
    if skipped:  # e.g. --steps 4 with the default objective at 1 and 2 steps
        print(f"\nobjective not computed: {'; '.join(skipped)}")
    else:
        print(f"\nobjective {settings.objective} = {result.objective():.4f} ({result.objective_direction()})")
    print(f"time: {result.timings}")
    for name, path in result.files.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
