"""A training worker started by `accelerate launch`: reads the run dir's resolved config, never Hydra.

`python -m lcm_exp.launchers.worker <run dir>`; every rank logs to <run dir>/rank_logs/rank<N>.log and rank 0
writes the final metrics to <run dir>/result.json for the parent. A stop signal before the training steps (while
the teacher loads) ends the worker 'preempted' too, as in an inline run.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from pathlib import Path

from lcm_exp.launchers.accelerate_child import HIDDEN_ENV, RANK_LOGS, RESULT
from lcm_exp.runlog.logs import RedactingFormatter, quiet_third_party
from lcm_exp.runlog.record import RESOLVED_CONFIG
from lcm_exp.train.preemption import StopOnSignal, StopRequested


def load_config(run_dir: Path):
    """The saved config, with the values it shows as *** (a secret in no environment variable) put back from the
    parent's environment hand-over."""
    from omegaconf import OmegaConf

    from lcm_exp.config.typed import typed_config

    container = OmegaConf.to_container(OmegaConf.load(run_dir / RESOLVED_CONFIG))
    for key, value in json.loads(os.environ.get(HIDDEN_ENV, "{}")).items():
        *parents, last = key.split(".")
        node = container
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[int(last) if isinstance(node, list) else last] = value
    return OmegaConf.to_object(typed_config(container))


def main(run_dir: str) -> None:
    run_dir = Path(run_dir)
    rank = int(os.environ.get("RANK", 0))
    with StopOnSignal():
        (run_dir / RANK_LOGS).mkdir(exist_ok=True)
        handlers = [logging.FileHandler(run_dir / RANK_LOGS / f"rank{rank}.log"), logging.StreamHandler()]
        line = f"[%(asctime)s][rank {rank}][%(name)s][%(levelname)s] - %(message)s"
        for handler in handlers:
            handler.setFormatter(RedactingFormatter(line))
        logging.basicConfig(level=logging.INFO, handlers=handlers)
        quiet_third_party()
        from lcm_exp.train.loop import train
        from lcm_exp.train.preemption import Preempted

        try:
            result = train(load_config(run_dir), run_dir)
        except Preempted as stop:
            result = {"status": "preempted", "steps": stop.step, "checkpoint": str(stop.checkpoint)}
        except StopRequested as stop:
            logging.getLogger(__name__).warning("%s", stop)
            result = {"status": "preempted", "stopped_by": stop.signame}
        except BaseException:
            logging.getLogger(__name__).error("worker failed:\n%s", traceback.format_exc())
            raise
    if rank == 0:
        (run_dir / RESULT).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
