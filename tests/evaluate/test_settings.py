import pytest

from lcm_exp.evaluate.run import settings_from
from lcm_exp.evaluate.settings import EvalSettings


def test_defaults_and_objective():
    s = EvalSettings()
    assert s.steps == [1, 2, 4, 8] and s.w == 3.0 and s.reference_steps == 50
    assert s.parse_objective() == ("latent_rmse", "student", [1, 2])
    assert EvalSettings(steps=[4, 1, 1]).steps == [1, 4]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps": []}, "steps"),
        ({"w": -1.0}, "w=-1"),
        ({"num_samples": 1}, "num_samples"),
        ({"methods": ["nope"]}, "unknown \\['nope'\\]"),
        ({"objective": "latent_rmse:student"}, "metric:method:steps"),
        ({"objective": "bogus:student:1"}, "unknown metric"),
        ({"objective": "fd:nobody:1"}, "unknown method"),
        ({"objective": "fd:student:x"}, "comma-separated"),
    ],
)
def test_bad_settings_name_the_key(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EvalSettings(**kwargs)


def test_settings_from_mapping_with_overrides():
    s = settings_from({"w": 2.0, "num_samples": 16}, num_samples=8, seed=None)
    assert (s.w, s.num_samples, s.seed) == (2.0, 8, 0)
    with pytest.raises(ValueError, match="unknown key"):
        settings_from({"guidance": 3})
