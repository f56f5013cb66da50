"""``python -m lcm_exp.sweep.summarize <sweep dir>``: (re)write a sweep's summary from its job dirs.

Works on a finished, failed, interrupted or still running sweep; the objective defaults to the one the sweep
was started with (its multirun.yaml).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from lcm_exp.sweep.config import DIRECTIONS


def _recorded(sweep_dir: Path) -> dict:
    path = sweep_dir / "multirun.yaml"
    data = yaml.safe_load(path.read_text()) if path.is_file() else None
    return (data or {}).get("sweep") or {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lcm_exp.sweep.summarize", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a multirun / named sweep dir (holds one dir per job)")
    parser.add_argument("--objective", help="metric to rank jobs by (default: the sweep's sweep.objective)")
    parser.add_argument("--direction", choices=DIRECTIONS, help="default: the sweep's sweep.direction")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"{args.sweep_dir}: not a directory")
    from lcm_exp.sweep.summary import write_summary

    recorded = _recorded(args.sweep_dir)
    paths = write_summary(
        args.sweep_dir,
        objective=args.objective or recorded.get("objective") or "final_loss",
        direction=args.direction or recorded.get("direction") or "minimize",
    )
    if not paths:
        print(f"{args.sweep_dir}: no job dirs yet", file=sys.stderr)
        return 1
    print(paths["markdown"].read_text())
    print("written: " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
