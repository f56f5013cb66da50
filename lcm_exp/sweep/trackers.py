"""Tracker settings of a sweep job: one W&B run per job, grouped by the sweep name, tagged with its overrides.

For the loop's ``init_trackers`` (lcm_exp/runlog/trackers.py): merge ``wandb_init_kwargs(cfg)`` into
``init_kwargs["wandb"]``. TensorBoard needs nothing: each job logs into its own dir under the sweep dir, so
``tensorboard --logdir <sweep dir>`` shows the sweep's jobs side by side, named by their overrides.
"""

from __future__ import annotations

from pathlib import Path

WANDB_TAG_MAX = 64  # W&B rejects longer tags


def wandb_init_kwargs(cfg) -> dict:
    """{} outside a named sweep; else group = sweep name, tags = the job's overrides, name = its dir."""
    sweep = getattr(cfg, "sweep", None)
    if sweep is None or not sweep.name:
        return {}
    return {
        "group": sweep.name,
        "job_type": "sweep",
        "name": f"{sweep.name}/{Path(cfg.paths.output_dir).name}",
        "tags": [o[:WANDB_TAG_MAX] for o in sweep.overrides],
    }
