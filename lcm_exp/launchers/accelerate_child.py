"""launcher=accelerate: this (Hydra) process composed and validated the config; workers train it.

The resolved config is already in the run dir (config.yaml, written with the run record). The workers are a
child `accelerate launch -m lcm_exp.launchers.worker <run dir>` that reads that file and never calls Hydra, so
multirun sweeps, Optuna and submitit keep working: each job launches, waits for and returns its own workers.

Stop signals: the child runs in its own session, so a Ctrl-C or a `kill` of this process group reaches only this
process, which hands SIGTERM/SIGINT to the workers themselves (not to `accelerate launch`, which would give them
five seconds and then kill them mid-checkpoint). The workers checkpoint, report 'preempted' and exit 0; a
'preempted' report counts even if the launcher itself was signalled too (SLURM signals every process of a job)
and exited non-zero.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

RESULT = "result.json"
RANK_LOGS = "rank_logs"
FORWARDED = (signal.SIGTERM, signal.SIGINT)
WORKER_MODULE = "lcm_exp.launchers.worker"
HIDDEN_ENV = "LCM_EXP_HIDDEN_VALUES"  # config values the saved config.yaml shows as *** (json), for the workers


class WorkerFailure(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def accelerate_command(launcher_cfg, mixed_precision: str, run_dir: Path) -> tuple[list[str], dict]:
    """The exact `accelerate launch` command (and extra env) for this job, all from our config."""
    import torch

    cpu = launcher_cfg.cpu if launcher_cfg.cpu is not None else not torch.cuda.is_available()
    port = launcher_cfg.main_process_port or free_port()
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if launcher_cfg.config_file:
        cmd += ["--config_file", str(launcher_cfg.config_file)]
    cmd += [
        "--num_processes", str(launcher_cfg.num_processes),
        "--num_machines", str(launcher_cfg.num_machines),
        "--machine_rank", str(launcher_cfg.machine_rank),
        "--main_process_port", str(port),
        "--mixed_precision", mixed_precision,
        "--dynamo_backend", launcher_cfg.dynamo_backend,
    ]  # fmt: skip
    if launcher_cfg.main_process_ip:
        cmd += ["--main_process_ip", launcher_cfg.main_process_ip]
    if launcher_cfg.num_processes * launcher_cfg.num_machines > 1 and not launcher_cfg.config_file:
        cmd.append("--multi_gpu")  # DDP; with cpu=true accelerate runs it over gloo
    env = {"ACCELERATE_USE_CPU": "true"} if cpu else {}
    cmd += ["-m", "lcm_exp.launchers.worker", str(run_dir)]
    return cmd, env


def launch_workers(launcher_cfg, mixed_precision: str, run_dir: Path, hidden: dict | None = None
                   ) -> tuple[dict, list[str]]:  # fmt: skip
    """Run the workers to the end; return rank 0's result and the command. On failure, raise with the tail of
    the failing rank's log."""
    cmd, extra_env = accelerate_command(launcher_cfg, mixed_precision, run_dir)
    (run_dir / RESULT).unlink(missing_ok=True)
    log.info("starting workers: %s", " ".join(cmd))
    env = {**os.environ, **extra_env}
    if hidden:
        env[HIDDEN_ENV] = json.dumps(hidden)
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    pending: list[int] = []
    forwarded = {sig: signal.signal(sig, lambda signum, _: pending.append(signum)) for sig in FORWARDED}
    try:  # SIGTERM/SIGINT reach the workers, which checkpoint and stop cleanly (status 'preempted')
        while proc.poll() is None:
            if pending and _signal_workers(proc.pid, pending[0]):
                pending.pop(0)
            time.sleep(0.1)
    finally:
        for sig, handler in forwarded.items():
            signal.signal(sig, handler)
    result_path = run_dir / RESULT
    result = json.loads(result_path.read_text()) if result_path.exists() else None
    if result is not None and (proc.returncode == 0 or result.get("status") == "preempted"):
        return result, cmd
    raise WorkerFailure(f"workers exited with code {proc.returncode}\n{failing_rank_tail(run_dir)}")


def _signal_workers(launcher_pid: int, signum: int) -> bool:
    """Send ``signum`` to every worker under the launcher; False while none has started yet."""
    import psutil  # accelerate's own dependency (its launcher uses it)

    try:
        children = psutil.Process(launcher_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return False
    workers = []
    for child in children:
        try:
            if WORKER_MODULE in child.cmdline():
                workers.append(child)
        except psutil.Error:
            continue
    for worker in workers:
        try:
            worker.send_signal(signum)
        except psutil.NoSuchProcess:
            pass
    return bool(workers)


def failing_rank_tail(run_dir: Path, lines: int = 40) -> str:
    """The end of the first rank log holding a traceback (else of rank 0's)."""
    logs = sorted((run_dir / RANK_LOGS).glob("rank*.log"))
    chosen = next((p for p in logs if "Traceback" in p.read_text(errors="replace")), logs[0] if logs else None)
    if chosen is None:
        return "(no rank logs were written)"
    tail = chosen.read_text(errors="replace").splitlines()[-lines:]
    return f"--- tail of {chosen} ---\n" + "\n".join(tail)
