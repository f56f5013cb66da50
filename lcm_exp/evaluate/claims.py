"""The comparisons a distilled student must win (issue 7), checked on evaluation rows of one or more runs.

`python -m lcm_exp.evaluate.claims <run dir> [<run dir> ...]` reads each ``<run dir>/eval/results.csv`` and prints a
markdown table: every claim, the student's and the baseline's value per run, and whether it holds in all runs.
The baselines are never weakened: "fair" means the teacher's DDIM with trailing spacing and the same CFG.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lcm_exp.evaluate.settings import LOWER_IS_BETTER


@dataclass(frozen=True)
class Claim:
    metric: str
    steps: int
    baseline: str
    student: str = "student"
    must_hold: bool = True

    @property
    def text(self) -> str:
        return f"{self.student} beats {self.baseline} on {self.metric} at {self.steps} step{'s' * (self.steps > 1)}"


MUST_HOLD = (
    [Claim(m, s, b) for s in (1, 2) for m in ("latent_rmse", "psnr_db") for b in ("ddim_trailing", "undistilled")]
    + [Claim(m, s, "ddim_trailing") for s in (1, 2, 4) for m in ("attr_acc", "fd")]
)  # fmt: skip
STRETCH = (Claim("latent_rmse", 4, "ddim_trailing", must_hold=False),
           Claim("latent_rmse", 4, "ddim_trailing", student="student_det", must_hold=False))  # fmt: skip


def read_rows(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "eval" / "results.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `python -m lcm_exp.evaluate {run_dir}` first")
    with path.open() as fh:
        return list(csv.DictReader(fh))


def _value(rows: list[dict], method: str, steps: int, metric: str) -> float | None:
    for row in rows:
        if row["method"] == method and int(row["steps"]) == steps:
            return float(row[metric]) if row.get(metric) not in (None, "") else None
    return None


def check(rows: list[dict], claim: Claim) -> tuple[float | None, float | None, bool | None]:
    """(student value, baseline value, holds); None where a row or metric is missing."""
    ours, theirs = (_value(rows, m, claim.steps, claim.metric) for m in (claim.student, claim.baseline))
    if ours is None or theirs is None:
        return ours, theirs, None
    return ours, theirs, ours < theirs if LOWER_IS_BETTER[claim.metric] else ours > theirs


def claims_table(runs: dict[str, list[dict]]) -> str:
    """Markdown: one line per claim, "student / baseline" per run, and whether it holds in every run."""
    names = list(runs)
    lines = ["| claim | " + " | ".join(names) + " | holds |", "|---" * (len(names) + 2) + "|"]
    for claim in (*MUST_HOLD, *STRETCH):
        cells, verdicts = [], []
        for name in names:
            ours, theirs, holds = check(runs[name], claim)
            cells.append("n/a" if holds is None else f"{ours:.3g} vs {theirs:.3g}")
            verdicts.append(holds)
        verdict = "n/a" if None in verdicts else ("yes" if all(verdicts) else "NO")
        label = claim.text + ("" if claim.must_hold else " (stretch)")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {verdict} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    dirs = list(sys.argv[1:] if argv is None else argv)
    if not dirs:
        print("usage: python -m lcm_exp.evaluate.claims <run dir> [<run dir> ...]", file=sys.stderr)
        return 2
    runs = {Path(d).name: read_rows(d) for d in dirs}
    print(claims_table(runs))
    failed = [c.text for c in MUST_HOLD for rows in runs.values() if check(rows, c)[2] is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
