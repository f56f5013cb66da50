"""A training worker started by `accelerate launch`: reads the run dir's resolved config, never Hydra.

`python -m lcm_exp.launchers.worker <run dir>`; every rank logs to <run dir>/rank_logs/rank<N>.log and rank 0
writes the final metrics to <run dir>/result.json for the parent.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from pathlib import Path

from lcm_exp.config.typed import load_run_config
from lcm_exp.launchers.accelerate_child import RANK_LOGS, RESULT
from lcm_exp.runlog.record import RESOLVED_CONFIG


def main(run_dir: str) -> None:
    run_dir = Path(run_dir)
    rank = int(os.environ.get("RANK", 0))
    (run_dir / RANK_LOGS).mkdir(exist_ok=True)
    logging.basicConfig(
        level=logging.INFO, format=f"[%(asctime)s][rank {rank}][%(name)s][%(levelname)s] - %(message)s",
        handlers=[logging.FileHandler(run_dir / RANK_LOGS / f"rank{rank}.log"), logging.StreamHandler()],
    )  # fmt: skip
    from lcm_exp.train.loop import train
    from lcm_exp.train.preemption import Preempted

    try:
        result = train(load_run_config(run_dir / RESOLVED_CONFIG), run_dir)
    except Preempted as stop:
        result = {"status": "preempted", "steps": stop.step, "checkpoint": str(stop.checkpoint)}
    except BaseException:
        logging.getLogger(__name__).error("worker failed:\n%s", traceback.format_exc())
        raise
    if rank == 0:
        (run_dir / RESULT).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
