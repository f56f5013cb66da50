"""One job: validate the composed config, claim the run dir, record the run, train, record the outcome.

A refused launch changes nothing on disk: the checks that can refuse (config, a run dir holding a finished run or
locked by a live one) all run before the first write, Hydra writes neither ``.hydra/`` nor the job log (see
conf/hydra/job_logging/lcm.yaml), and the empty run dir Hydra made for a refused single run is removed again.
"""

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
from lcm_exp.launchers.distributed import broadcast_from_rank0, distributed_rank
from lcm_exp.runlog.lock import RunDirBusy, RunLock, describe_holder
from lcm_exp.runlog.logs import RunLog, quiet_third_party
from lcm_exp.runlog.record import RunRecord
from lcm_exp.runlog.secrets import redact_override
from lcm_exp.train.preemption import StopOnSignal, StopRequested

log = logging.getLogger(__name__)

# what a launch refuses with one line and exit code 2, leaving the run dir as it was
REFUSALS = (ConfigError, RunDirBusy)


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


def decide(run_dir: Path, run_cfg: RunConfig) -> str:
    """What to do with what the run dir holds: 'new', 'force' (replace it), 'resume'; a finished run is refused.

    An interrupted run (preempted, failed, or killed while 'running') resumes from its last checkpoint, so the
    same command continues it (SLURM requeue, Ctrl-C, a crash).
    """
    previous = RunRecord(run_dir).data.get("status")
    if previous is None:
        return "new"
    if run_cfg.force:
        return "force"
    if previous == "completed" and run_cfg.trainer.resume_from_checkpoint is None:
        raise ConfigError([f"hydra.run.dir={str(run_dir)!r} already holds a completed run; choose another dir, "
                           "continue it with trainer.resume_from_checkpoint=latest, or replace it with force=true"])
    return "resume"


def claim_run_dir(run_dir: Path, run_cfg: RunConfig, owner: bool = True) -> RunLock | None:
    """Decide, then (the owner) take the dir's lock; nothing is written unless the launch goes on.

    Order: the lock if its file exists (a live holder refuses at once, writing nothing), the record's rules,
    then the lock file is created when new. The owner returns the held lock; others (ranks > 0, machines > 0 of
    a multi-node launch) run under the owner's.
    """
    lock = RunLock(run_dir) if owner else None
    try:
        previous_holder = lock.take_existing() if lock else None
        decision = decide(run_dir, run_cfg)
        if lock:
            lock.acquire()
            if previous_holder and RunRecord(run_dir).data.get("status") == "running":
                log.warning("%s: taking over from a run that died without ending (%s)", run_dir,
                            describe_holder(previous_holder))  # fmt: skip
    except BaseException:
        if lock:
            lock.release()
        raise
    apply_decision(decision, run_dir, run_cfg, owner)
    return lock


def apply_decision(decision: str, run_dir: Path, run_cfg: RunConfig, owner: bool) -> None:
    if decision == "force" and owner:
        log.warning("force=true: replacing the %s run in %s", RunRecord(run_dir).data.get("status"), run_dir)
        for name in RUN_OUTPUTS:
            path = run_dir / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        (run_dir / "run.json").unlink()
    elif decision == "resume" and run_cfg.trainer.resume_from_checkpoint is None:
        status = RunRecord(run_dir).data.get("status")
        log.warning("%s holds a %s run: resuming it from its latest checkpoint", run_dir, status)
        run_cfg.trainer.resume_from_checkpoint = "latest"


def claim_on_all_ranks(run_dir: Path, run_cfg: RunConfig, rank: int, world: int, owner: bool) -> RunLock | None:
    """Under a distributed launch of launch.py, rank 0 claims and tells the others (a refusal stops every rank)."""
    if world == 1:
        return claim_run_dir(run_dir, run_cfg, owner)
    lock, told, failure = None, None, None
    if rank == 0:
        try:
            lock = claim_run_dir(run_dir, run_cfg, owner)
            told = ("ok", run_cfg.trainer.resume_from_checkpoint)
        except Exception as err:  # whatever it is, the other ranks must hear of it rather than wait forever
            failure = err
            told = ("error", f"{type(err).__name__}: {err}")
            if isinstance(err, ConfigError):
                told = ("config", err.problems)
            elif isinstance(err, RunDirBusy):
                told = ("busy", str(err))
    kind, payload = broadcast_from_rank0(told)
    if failure is not None:
        raise failure
    if kind == "config":
        raise ConfigError(payload)
    if kind == "busy":
        raise RunDirBusy(payload)
    if kind == "error":
        raise RuntimeError(f"rank 0 could not claim {run_dir}: {payload}")
    run_cfg.trainer.resume_from_checkpoint = payload
    return lock


def outcome(err: BaseException) -> str:
    """The status a run that raised ends with; all but 'completed' resume when the same command runs again."""
    return "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"


def run_task(cfg: DictConfig, overrides: list[str], multirun: bool = False, *, job_name: str = "launch",
             hydra_files: dict | None = None, started: float | None = None) -> dict:  # fmt: skip
    """In a multirun the sweep sets the job's seed first, and may skip it (done) or resume it (interrupted).

    ``hydra_files``: Hydra's .hydra/ contents for this job (written once the dir is claimed); ``started``: when
    the launch began (a run dir made after it and left empty by a refusal is removed).
    """
    quiet_third_party()
    run_log = RunLog()
    run_dir = Path(cfg.paths.output_dir)
    try:
        with StopOnSignal():
            if multirun:
                from lcm_exp.sweep.job import prepare_job

                recorded = prepare_job(cfg, overrides)
                if recorded is not None:
                    return recorded
            return execute(resolve(cfg), overrides, sys.argv, run_log=run_log, job_name=job_name,
                           hydra_files=hydra_files)  # fmt: skip
    except BaseException:
        if run_log.path is None and not multirun:  # refused or stopped before the claim: leave no trace
            discard_if_new(run_dir, started)
        raise
    finally:
        run_log.close()


def discard_if_new(run_dir: Path, started: float | None) -> None:
    """Remove ``run_dir`` if it is empty and was made by this launch (Hydra makes it before the task runs)."""
    try:
        if started is not None and not any(run_dir.iterdir()) and run_dir.stat().st_ctime >= started - 2:
            run_dir.rmdir()
    except OSError:
        pass


def execute(run_cfg: RunConfig, overrides: list[str], argv: list[str], *, run_log: RunLog | None = None,
            job_name: str = "launch", hydra_files: dict | None = None) -> dict:  # fmt: skip
    """Claim the dir, record, train, record the outcome; also the entry point of ``python -m lcm_exp.reproduce``.

    Under `accelerate launch launch.py` every rank gets here with the same run dir; rank 0 owns the record and
    the lock (as does machine 0's parent of a multi-node launcher=accelerate job).
    """
    facts = validate_against_teacher(run_cfg)
    run_dir = Path(run_cfg.paths.output_dir)
    rank, world = distributed_rank()
    machine = run_cfg.launcher.machine_rank if run_cfg.launcher.name == "accelerate" else 0
    owner = rank == 0 and machine == 0
    lock = claim_on_all_ranks(run_dir, run_cfg, rank, world, owner)
    try:
        if run_log is not None:
            run_log.attach(run_dir, job_name if machine == 0 else f"{job_name}_machine{machine}")
        return _record_and_train(run_cfg, run_dir, RunRecord(run_dir) if owner else None, overrides, argv,
                                 teacher_record(run_cfg.model, facts), hydra_files)  # fmt: skip
    finally:
        if lock:
            lock.release()


def _record_and_train(run_cfg: RunConfig, run_dir: Path, record: RunRecord | None, overrides: list[str],
                      argv: list[str], teacher: dict, hydra_files: dict | None) -> dict:  # fmt: skip
    """Every way out of here leaves the record with a final status; a stop signal ends it 'preempted'."""
    try:
        hidden = {}
        if record:
            container = OmegaConf.to_container(OmegaConf.structured(run_cfg))
            hidden = record.start(container, overrides, run_cfg.seed, teacher, argv, hydra_files)
        sys.argv[1:] = [redact_override(a) for a in sys.argv[1:]]  # trackers (W&B) record the command line
        result = run_training(run_cfg, run_dir, record, hidden)
        if record and run_cfg.evaluation.at_end and result.get("status", "completed") == "completed":
            from lcm_exp.evaluate.run import evaluate_at_end

            result.update(evaluate_at_end(run_cfg, run_dir))
    except StopRequested as stop:
        log.warning("%s", stop)
        if record:
            record.finish("preempted", error=stop)
        return {"status": "preempted", "stopped_by": stop.signame}
    except BaseException as err:
        if record:
            record.finish(outcome(err), error=err)
        raise
    if record:
        record.finish(result.get("status", "completed"), metrics=result)
    return result


def run_training(run_cfg: RunConfig, run_dir: Path, record: RunRecord | None, hidden: dict | None = None) -> dict:
    """Train here (launcher=inline) or in a child `accelerate launch` (launcher=accelerate); a preemption is a
    clean stop that returns status 'preempted' (checkpoint written, the same command resumes).

    ``hidden``: config values the saved config shows as *** (a secret in no environment variable); the workers
    get them through their environment."""
    from lcm_exp.train.preemption import Preempted

    if run_cfg.launcher.name == "accelerate":
        from lcm_exp.launchers.accelerate_child import launch_workers

        result, command = launch_workers(run_cfg.launcher, run_cfg.trainer.mixed_precision, run_dir, hidden or {})
        if record:
            record.update(workers_command=shlex.join(command))
        return result
    from lcm_exp.train.loop import train

    try:
        return train(run_cfg, run_dir)
    except Preempted as stop:
        log.warning("%s", stop)
        return {"status": "preempted", "steps": stop.step, "checkpoint": str(stop.checkpoint)}

