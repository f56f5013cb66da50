"""The training loop: build the run, resume it, step it, finish it.

Everything a run is made of comes from ``build_run`` (the benchmark steps the same object); everything around the
steps (data position, logging, checkpoints, validation, export) is the ``Session``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lcm_exp.perf.switches import compile_networks
from lcm_exp.train.build import build_accelerator, build_run
from lcm_exp.train.checkpoint import find_resume_checkpoint
from lcm_exp.train.hooks import HookFactory
from lcm_exp.train.preemption import PreemptionFlag
from lcm_exp.train.session import CHECKPOINTS, Session


def train(cfg, run_dir: Path, hooks: Sequence[HookFactory] = ()) -> dict:
    """Run the distillation described by ``cfg`` (a RunConfig) in ``run_dir``; return the final metrics. ``hooks``:
    factories of what a higher layer wants called during training (the evaluation's learning curve)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    accelerator = build_accelerator(cfg, run_dir)
    resume = find_resume_checkpoint(run_dir / CHECKPOINTS, cfg.trainer.resume_from_checkpoint)
    run = build_run(cfg, accelerator, resume=resume)
    if cfg.perf.compile:
        compile_networks(run.networks)
    with Session(run, run_dir, hooks) as session, PreemptionFlag() as preemption:
        while session.step < cfg.trainer.max_train_steps:
            batch = session.next_batch()
            if session.record(run.step(batch), batch):
                session.after_update(preemption)
        return session.finish()
