"""One job: validate the composed config, record the run, train, record the outcome, return the objective."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lcm_exp.config.schema import RunConfig
from lcm_exp.config.validate import validate_against_teacher, validate_config
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


def run_task(cfg: DictConfig, overrides: list[str]) -> dict:
    run_cfg = resolve(cfg)
    facts = validate_against_teacher(run_cfg)
    run_dir = Path(run_cfg.paths.output_dir)
    record = RunRecord(run_dir)
    record.start(OmegaConf.to_container(OmegaConf.structured(run_cfg)), overrides, run_cfg.seed,
                 teacher_record(run_cfg.model, facts), sys.argv)
    try:
        from lcm_exp.train.loop import train

        metrics = train(run_cfg, run_dir)
    except BaseException as err:
        record.finish("failed", error=err)
        raise
    record.finish("completed", metrics=metrics)
    return metrics
