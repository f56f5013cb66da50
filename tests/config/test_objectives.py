"""objective=lcd|tcd|pcm: one schema per variant, objective=default is LCD, and the combinations that make no sense
are refused before any weight loads, naming the keys."""

from __future__ import annotations

import pytest
import yaml
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from lcm_exp.config import schema
from lcm_exp.config.errors import ConfigError
from lcm_exp.config.typed import load_run_config
from lcm_exp.config.validate import objective_schedule_problems, validate_config
from tests.config.compose import compose_config


def test_default_is_lcd_and_each_objective_has_its_own_keys():
    default, lcd = compose_config([]), compose_config(["objective=lcd"])
    assert OmegaConf.to_container(default.objective) == OmegaConf.to_container(lcd.objective) == {
        "name": "lcd", "num_ddim_timesteps": 50, "timestep_scaling_factor": 10.0, "sigma_data": 0.5}  # fmt: skip
    assert OmegaConf.to_container(compose_config(["objective=tcd"]).objective) == {
        "name": "tcd", "num_ddim_timesteps": 50, "gamma": 0.3}  # fmt: skip
    pcm = compose_config(["objective=pcm", "objective.phases=2"]).objective
    assert (pcm.name, pcm.phases, pcm.num_ddim_timesteps) == ("pcm", 2, 40)
    with pytest.raises(ConfigCompositionException):
        compose_config(["objective=tcd", "objective.phases=2"])  # a PCM key on TCD fails at composition


@pytest.mark.parametrize(("overrides", "message"), [
    (["objective=pcm", "objective.phases=3"], "objective.phases=3 must divide objective.num_ddim_timesteps=40"),
    (["objective=pcm", "objective.phases=0"], "objective.phases=0: must be >= 1"),
    (["objective=tcd", "objective.gamma=1.5"], "objective.gamma=1.5: must be in [0, 1]"),
    (["objective=lcd", "objective.sigma_data=0"], "objective.sigma_data=0.0: must be > 0"),
    (["sweep.objective=eval_objective_best"], "set evaluation.every_n_steps"),
    (["evaluation.every_n_steps=-1"], "every_n_steps=-1: must be >= 0"),
])  # fmt: skip
def test_nonsense_is_refused_naming_the_keys(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate_config(compose_config(overrides))


def test_learning_curve_settings_pass():
    validate_config(compose_config(["objective=pcm", "objective.phases=4", "objective.num_ddim_timesteps=8",
                                    "evaluation.every_n_steps=100", "sweep.objective=eval_objective_best"]))


def test_an_objective_without_a_sampler_for_the_teachers_schedule_is_refused(monkeypatch):
    from lcm_exp.models import registry

    assert objective_schedule_problems("pcm", "sdxl") == []
    monkeypatch.setitem(registry.FAMILY_FACTS, "flowy", registry.FamilyFacts("x:Y", "flow", "transformer"))
    (problem,) = objective_schedule_problems("tcd", "flowy")
    assert "objective=tcd with model.family=flowy" in problem and "no sampler for a 'flow' teacher" in problem


def test_a_saved_config_reloads_with_its_objectives_schema(tmp_path):
    cfg = compose_config(["objective=tcd", "objective.gamma=0.5", "data.shards=x", "paths.cache_dir=c",
                          "paths.log_dir=l", "paths.output_dir=o", "model.teacher=t"])  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(OmegaConf.to_container(cfg)))
    loaded = load_run_config(path)
    assert isinstance(loaded.objective, schema.TCDObjectiveConfig) and loaded.objective.gamma == 0.5
