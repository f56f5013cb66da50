"""job.py: a sweep job's seed and identity, and what a rerun of a named sweep does with its dir."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from lcm_exp.config.errors import ConfigError
from lcm_exp.sweep.config import SweepConfig
from lcm_exp.sweep.identity import derive_seed
from lcm_exp.sweep.job import JobConflictError, prepare_job

OVERRIDES = ["sweep=guidance_range", "guidance.w_min=2", "guidance.w_max=6"]
IDENTITY = ["guidance.w_max=6", "guidance.w_min=2"]


def _cfg(run_dir, name="g", seed=3, force=False, **sweep):
    node = OmegaConf.merge(OmegaConf.structured(SweepConfig), {"name": name, **sweep})
    return OmegaConf.create({"seed": seed, "force": force, "sweep": node, "paths": {"output_dir": str(run_dir)},
                             "trainer": {"resume_from_checkpoint": None}})  # fmt: skip


def _write(run_dir, status, overrides=OVERRIDES, metrics=None):
    (run_dir / "run.json").write_text(json.dumps({"status": status, "overrides": overrides, "metrics": metrics}))


def test_seed_is_derived_from_the_sweep_seed_and_the_overrides(tmp_path):
    cfg = _cfg(tmp_path)
    assert prepare_job(cfg, OVERRIDES) is None
    assert cfg.seed == derive_seed(3, IDENTITY) and cfg.sweep.base_seed == 3
    assert list(cfg.sweep.overrides) == IDENTITY


def test_shared_seed_when_derivation_is_off(tmp_path):
    cfg = _cfg(tmp_path, derive_seeds=False)
    prepare_job(cfg, OVERRIDES)
    assert cfg.seed == 3 and cfg.sweep.base_seed is None


def test_completed_job_is_skipped_with_its_recorded_metrics(tmp_path):
    _write(tmp_path, "completed", metrics={"final_loss": 0.25})
    assert prepare_job(_cfg(tmp_path), list(reversed(OVERRIDES))) == {"final_loss": 0.25}


@pytest.mark.parametrize("status", ["failed", "running", "interrupted", "preempted"])
def test_unfinished_job_runs_again(tmp_path, status):
    _write(tmp_path, status)
    cfg = _cfg(tmp_path)
    assert prepare_job(cfg, OVERRIDES) is None  # lcm_exp.task.claim_run_dir then resumes it from 'latest'


def test_force_redoes_a_completed_job(tmp_path):
    _write(tmp_path, "completed", metrics={"final_loss": 0.25})
    assert prepare_job(_cfg(tmp_path, force=True), [*OVERRIDES, "force=true"]) is None


def test_unnamed_sweep_never_skips(tmp_path):
    _write(tmp_path, "completed", metrics={"final_loss": 0.25})
    assert prepare_job(_cfg(tmp_path, name=None), OVERRIDES) is None


def test_dir_of_another_job_is_refused(tmp_path):
    _write(tmp_path, "completed", overrides=[*OVERRIDES, "trainer.max_train_steps=9"])
    with pytest.raises(JobConflictError, match="trainer.max_train_steps=9.*force=true"):
        prepare_job(_cfg(tmp_path), OVERRIDES)


def test_bad_sweep_settings_name_their_key(tmp_path):
    with pytest.raises(ConfigError, match="sweep.direction='up'"):
        prepare_job(_cfg(tmp_path, direction="up"), OVERRIDES)


def test_secret_overrides_match_their_redacted_record(tmp_path):
    _write(tmp_path, "completed", overrides=[*OVERRIDES, "export.hub_token=***"], metrics={"final_loss": 0.5})
    assert prepare_job(_cfg(tmp_path), [*OVERRIDES, "export.hub_token=abc"]) == {"final_loss": 0.5}


def test_secrets_stay_out_of_the_recorded_overrides_and_the_seed(tmp_path):
    a, b = _cfg(tmp_path / "a", name=None), _cfg(tmp_path / "b", name=None)
    prepare_job(a, [*OVERRIDES, "export.hub_token=abc"])
    prepare_job(b, [*OVERRIDES, "export.hub_token=xyz"])
    assert "export.hub_token=***" in a.sweep.overrides and a.seed == b.seed
