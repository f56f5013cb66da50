"""Running launch.py itself under `accelerate launch` / `torchrun`: one run dir, one record, a log per rank.

Every rank runs Hydra. Before it composes, the ranks agree on rank 0's run id (so `${run_id:}` and the run dir
are the same everywhere), ranks > 0 write no .hydra/ files and log to their own file (launch_rank<N>.log), rank 0
claims the run dir for all (lcm_exp.task.claim_on_all_ranks), and `-m` is refused:
a multirun inside a distributed launch would run the whole sweep on every rank (use launcher=accelerate).
"""

from __future__ import annotations

import os
import sys

from lcm_exp.config.resolvers import RUN_ID_ENV, new_run_id

MULTIRUN_FLAGS = ("-m", "--multirun")


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) from the launcher's environment; (0, 1) outside a distributed launch."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def prepare_distributed_launch(argv: list[str]) -> list[str]:
    """Agree on the run id across ranks and return the argv this rank should give Hydra."""
    rank, world = distributed_rank()
    if world == 1:
        return argv
    if any(a in MULTIRUN_FLAGS for a in argv[1:]):
        sys.exit("error: -m/--multirun cannot run inside a distributed launch (every rank would run the whole "
                 "sweep); run `python launch.py -m ... launcher=accelerate launcher.num_processes=N` instead")
    if RUN_ID_ENV not in os.environ:
        os.environ[RUN_ID_ENV] = broadcast_from_rank0(new_run_id())
    if rank == 0:
        return argv
    return [*argv, f"hydra.job.name=launch_rank{rank}"]


def broadcast_from_rank0(value):
    """One (picklable) value from rank 0 to all ranks through the process group the launcher's env describes."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
