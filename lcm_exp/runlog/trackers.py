"""Trackers (tensorboard, wandb) through accelerate's tracking API; images go to every chosen tracker."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lcm_exp.runlog.secrets import redact


def tracker_names(logger_cfg) -> list[str]:
    return [] if logger_cfg.name == "none" else [logger_cfg.name]


def init_trackers(accelerator, cfg, config: dict) -> None:
    """One tracker run per job; in a named sweep W&B groups the jobs by sweep name, tagged with their overrides.

    Every tracker writes under ``<run dir>/logs/`` (W&B: ``logs/wandb/``); what it is given is redacted (the
    command line W&B records was redacted by the task)."""
    from lcm_exp.sweep.trackers import wandb_init_kwargs

    logger_cfg = cfg.logger
    if not tracker_names(logger_cfg):
        return
    init_kwargs = {}
    if logger_cfg.name == "wandb":
        Path(accelerator.logging_dir).mkdir(parents=True, exist_ok=True)  # W&B falls back to /tmp without it
        init_kwargs["wandb"] = redact({"name": cfg.name, "mode": logger_cfg.mode, "dir": str(accelerator.logging_dir),
                                       **wandb_init_kwargs(cfg)})  # fmt: skip
    config = redact({**config, "sweep_overrides": list(cfg.sweep.overrides)})
    accelerator.init_trackers(logger_cfg.project, config=_flat(config), init_kwargs=init_kwargs)


def close_trackers(accelerator, failed: bool) -> None:
    """End every tracker run; a failed job's W&B run is marked failed, not 'finished'.

    Not ``accelerator.end_training()``: it also destroys the process group, which can deadlock gloo at exit
    (its worker thread frees finished collectives while the main thread holds the GIL); the process group
    goes with the process.
    """
    for tracker in accelerator.trackers:
        if failed and tracker.name == "wandb":
            tracker.run.finish(exit_code=1)
        else:
            tracker.finish()


def log_images(accelerator, tag: str, images: list, step: int) -> None:
    """Log PIL images to every tracker (the reference stopped after the first)."""
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            arr = np.stack([np.asarray(im) for im in images])
            tracker.writer.add_images(tag, arr, step, dataformats="NHWC")
        elif tracker.name == "wandb":
            import wandb

            tracker.log({tag: [wandb.Image(im) for im in images]}, step=step)


def _flat(d: dict, prefix: str = "") -> dict:
    """Trackers want flat scalars: nested keys joined by '.', lists as strings."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        elif isinstance(v, list | tuple):
            out[key] = str(v)
        else:
            out[key] = v
    return out
