"""Wall time of one sweep with and without the shared latent cache (data.cache), measured in one invocation.

    python scripts/sweep_cache_timing.py [--repeats 1] [--out FILE] [-- extra launch.py overrides]

Runs the same 6-job sweep (experiment=tiny, center crop so the cache may freeze it; 3 huber_c x 2 guidance pairs)
with data.cache=never and data.cache=auto, alternating, through launch.py as a user would. The teacher and shards
are built once beforehand; the latent cache is deleted before every auto run, so its build is in the time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ["experiment=tiny", "data.crop=center", "loss.huber_c=0.001,0.01,0.1", "guidance.w_min=3,5",
         "validation.at_end=false"]  # fmt: skip


def sweep(cache_dir: Path, log_dir: Path, mode: str, extra: list[str]) -> float:
    cmd = [sys.executable, "launch.py", "-m", *SWEEP, f"data.cache={mode}", f"paths.cache_dir={cache_dir}",
           f"paths.log_dir={log_dir}", f"name=cache_{mode}", *extra]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"sweep with data.cache={mode} failed:\n{out.stderr[-4000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1, help="pairs of (never, auto) sweeps, alternating")
    parser.add_argument("--out", type=Path, help="also write the table here")
    parser.add_argument("extra", nargs="*", help="launch.py overrides for every job (after --)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sweep-cache-"))
    cache = work / "cache"
    warm = [sys.executable, "launch.py", "experiment=tiny", "trainer.max_train_steps=1", "validation.at_end=false",
            "export.enabled=false", f"paths.cache_dir={cache}", f"paths.log_dir={work / 'warm'}"]  # fmt: skip
    subprocess.run(warm, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=True, capture_output=True)
    rows = []
    for i in range(args.repeats):
        for mode in ("never", "auto") if i % 2 == 0 else ("auto", "never"):
            shutil.rmtree(cache / "latents", ignore_errors=True)
            rows.append((mode, sweep(cache, work / f"logs-{i}-{mode}", mode, args.extra)))
    never = [s for m, s in rows if m == "never"]
    auto = [s for m, s in rows if m == "auto"]
    table = "| data.cache | wall s (6 jobs) |\n|---|---:|\n" + "".join(f"| {m} | {s:.1f} |\n" for m, s in rows)
    table += f"\nmean never {sum(never) / len(never):.1f} s, auto {sum(auto) / len(auto):.1f} s: "
    table += f"{sum(never) / sum(auto):.2f}x\n"
    print(table)
    if args.out:
        args.out.write_text(table)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
