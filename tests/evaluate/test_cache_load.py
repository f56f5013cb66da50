"""Issue 14 item 10: the evaluation's teacher cache is read with torch.load(weights_only=True)."""

from __future__ import annotations

import torch

from lcm_exp.evaluate.run import make_undistilled
from tests.evaluate.test_core import ZERO, _evaluate


def test_the_teacher_cache_loads_with_weights_only(toy_family, lcm, tmp_path, monkeypatch):
    student = make_undistilled(toy_family, ZERO, 0)
    first = _evaluate(toy_family, lcm, student, cache_dir=tmp_path, steps=[1])
    (cache,) = tmp_path.glob("teacher-*.pt")
    assert set(torch.load(cache, weights_only=True)) == {"latents", "rows", "grid"}  # nothing else to unpickle
    calls = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k) or real(*a, **k))
    second = _evaluate(toy_family, lcm, student, cache_dir=tmp_path, steps=[1])
    assert calls == [{"weights_only": True}] and second.rows == first.rows
