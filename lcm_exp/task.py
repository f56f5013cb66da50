"""One job: validate the composed config, record the run, train, record the outcome, return the objective."""

from __future__ import annotations

import logging
import shlex
import shutil
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lcm_exp.config.errors import ConfigError
from lcm_exp.config.schema import RunConfig
from lcm_exp.config.validate import validate_against_teacher, validate_config
from lcm_exp.launchers.distributed import distributed_rank
from lcm_exp.runlog.record import RunRecord

log = logging.getLogger(__name__)


def resolve(cfg: DictConfig) -> RunConfig:
    """Fast checks first, then resolution (which may build a tiny teacher or shards), as a typed object."""
    validate_config(cfg)
    return OmegaConf.to_object(cfg)


def teacher_record(model_cfg, facts: dict) -> dict:
    teacher = model_cfg.teacher
    local = Path(teacher).expanduser()
    return {
        "teacher": str(local.resolve()) if local.exists() else teacher,
        "source": "local folder" if local.exists() else "hub",
        "revision": model_cfg.revision,
        "variant": model_cfg.variant,
        "vae": model_cfg.vae,
        **facts,
    }


# what a forced re-run removes from a run dir before it starts again
RUN_OUTPUTS = ("checkpoints", "model", "validation", "logs", "metrics.jsonl", "git.diff")


def claim_run_dir(run_dir: Path, run_cfg: RunConfig, owner: bool = True) -> None:
    """A run dir belongs to one run: a finished run is kept unless resumed or ``force``d; an interrupted one is
    continued.

    An interrupted run (preempted, failed, or killed while 'running') resumes from its last checkpoint, so the
    same command continues it (SLURM requeue, Ctrl-C, a crash).
    """
    previous = RunRecord(run_dir).data.get("status")
    if previous is None:
        return
    if run_cfg.force:
        if not owner:
            return
        log.warning("force=true: replacing the %s run in %s", previous, run_dir)
        for name in RUN_OUTPUTS:
            path = run_dir / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        (run_dir / "run.json").unlink()
        return
    if previous == "completed" and run_cfg.trainer.resume_from_checkpoint is None:
        raise ConfigError([f"hydra.run.dir={str(run_dir)!r} already holds a completed run; choose another dir, "
                           "continue it with trainer.resume_from_checkpoint=latest, or replace it with force=true"])
    if run_cfg.trainer.resume_from_checkpoint is None:
        log.warning("%s holds a %s run: resuming it from its latest checkpoint", run_dir, previous)
        run_cfg.trainer.resume_from_checkpoint = "latest"


def outcome(err: BaseException) -> str:
    """The status a run that raised ends with; all but 'completed' resume when the same command runs again."""
    return "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"


def run_task(cfg: DictConfig, overrides: list[str], multirun: bool = False) -> dict:
    """In a multirun the sweep sets the job's seed first, and may skip it (done) or resume it (interrupted)."""
    if multirun:
        from lcm_exp.sweep.job import prepare_job

        recorded = prepare_job(cfg, overrides)
        if recorded is not None:
            return recorded
    return execute(resolve(cfg), overrides, sys.argv)


def execute(run_cfg: RunConfig, overrides: list[str], argv: list[str]) -> dict:
    """Record, train, record the outcome; also the entry point of ``python -m lcm_exp.reproduce``.

    Under `accelerate launch launch.py` every rank gets here with the same run dir; rank 0 owns the record.
    """
    facts = validate_against_teacher(run_cfg)
    run_dir = Path(run_cfg.paths.output_dir)
    rank, world = distributed_rank()
    claim_run_dir(run_dir, run_cfg, owner=rank == 0)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()  # every rank decided on resume before rank 0 marks the dir as running
    record = RunRecord(run_dir) if rank == 0 else None
    if record:
        record.start(OmegaConf.to_container(OmegaConf.structured(run_cfg)), overrides, run_cfg.seed,
                     teacher_record(run_cfg.model, facts), argv)
    try:
        result = run_training(run_cfg, run_dir, record)
        if record and run_cfg.evaluation.at_end and result.get("status", "completed") == "completed":
            from lcm_exp.evaluate.run import evaluate_at_end

            result.update(evaluate_at_end(run_cfg, run_dir))
    except BaseException as err:
        if record:
            record.finish(outcome(err), error=err)
        raise
    if record:
        record.finish(result.get("status", "completed"), metrics=result)
    return result


def run_training(run_cfg: RunConfig, run_dir: Path, record: RunRecord | None) -> dict:
    """Train here (launcher=inline) or in a child `accelerate launch` (launcher=accelerate); a preemption is a
    clean stop that returns status 'preempted' (checkpoint written, the same command resumes)."""
    from lcm_exp.train.preemption import Preempted

    if run_cfg.launcher.name == "accelerate":
        from lcm_exp.launchers.accelerate_child import launch_workers

        result, command = launch_workers(run_cfg.launcher, run_cfg.trainer.mixed_precision, run_dir)
        if record:
            record.update(workers_command=shlex.join(command))
        return result
    from lcm_exp.train.loop import train

    try:
        return train(run_cfg, run_dir)
    except Preempted as stop:
        log.warning("%s", stop)
        return {"status": "preempted", "steps": stop.step, "checkpoint": str(stop.checkpoint)}
