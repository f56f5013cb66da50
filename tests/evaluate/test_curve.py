"""Learning curves (evaluation.every_n_steps): points in metrics.jsonl, the best step as run metrics and exported,
LoRA students evaluated against the teacher with adapters disabled, training RNG untouched, the real launcher."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from lcm_exp.config.schema import LoraAdapterConfig, ObjectiveConfig, TCDObjectiveConfig
from lcm_exp.evaluate import curve as curve_mod
from lcm_exp.evaluate.curve import LearningCurve
from lcm_exp.evaluate.settings import EvalSettings
from lcm_exp.runlog.metrics import MetricsFile, read_metrics
from lcm_exp.toy.shards import ensure_toy_shards
from tests.config.compose import CONF

SMALL = dict(num_samples=4, steps=[1, 2], reference_steps=3, batch_size=4)


class _Acc:
    is_main_process, device = True, torch.device("cpu")

    def __init__(self):
        self.logged = []

    def log(self, values, step):
        self.logged.append((step, values))

    def wait_for_everyone(self):
        pass


def _fake_results(monkeypatch, values):
    """evaluate_from_loop replaced by results whose objective is the next of ``values``."""
    from lcm_exp.evaluate import run

    it = iter(values)

    def fake(cfg, family, adapter, run_dir, settings, undistilled=None):
        v = next(it)
        return SimpleNamespace(objective=lambda: v, rows=[{"method": "student", "steps": 1, "latent_rmse": v}])

    monkeypatch.setattr(run, "evaluate_from_loop", fake)


def _cfg(tmp_path, **evaluation):
    return SimpleNamespace(evaluation={**SMALL, **evaluation}, objective=ObjectiveConfig(num_ddim_timesteps=10),
                           name="t", seed=0, paths=SimpleNamespace(cache_dir=str(tmp_path / "cache")))  # fmt: skip


def test_points_best_step_export_and_resume(tmp_path, monkeypatch):
    _fake_results(monkeypatch, [0.5, 0.3, 0.4])
    exported = []
    monkeypatch.setattr(LearningCurve, "_export_best", lambda self, row: exported.append(row["step"]))
    metrics = MetricsFile(tmp_path)
    acc = _Acc()
    curve = LearningCurve(_cfg(tmp_path, every_n_steps=2, export_best=True), None, None, acc, tmp_path, metrics)
    for step in range(1, 6):
        curve.after_update(step)
    assert [p["step"] for p in curve.points] == [2, 4]
    assert curve.finish(5) == {"eval_objective_best": 0.3, "eval_objective_best_step": 4}  # the last point: 5
    metrics.close()
    rows = [r for r in read_metrics(tmp_path) if r.get("eval")]
    assert [(r["step"], r["eval_objective"], r["latent_rmse:student:1"]) for r in rows] == [
        (2, 0.5, 0.5), (4, 0.3, 0.3), (5, 0.4, 0.4)]  # fmt: skip
    assert exported == [2, 4] and (tmp_path / "eval_curve.png").is_file()
    assert acc.logged[0] == (2, {"eval/eval_objective": 0.5, "eval/latent_rmse/student/1": 0.5})
    resumed = LearningCurve(_cfg(tmp_path, every_n_steps=2), None, None, acc, tmp_path, None, start_step=4)
    assert [p["step"] for p in resumed.points] == [2, 4] and resumed.best["step"] == 4  # step 5 is redone


def test_higher_is_better_objectives_and_off_by_default(tmp_path, monkeypatch):
    _fake_results(monkeypatch, [20.0, 25.0, 22.0])
    cfg = _cfg(tmp_path, every_n_steps=1, objective="psnr_db:student:1")
    curve = LearningCurve(cfg, None, None, _Acc(), tmp_path)
    for step in (1, 2, 3):
        curve.after_update(step)
    assert curve.finish(3)["eval_objective_best_step"] == 2
    assert LearningCurve(_cfg(tmp_path), None, None, _Acc(), tmp_path).finish(3) == {}


def test_the_curve_rows_leave_out_the_undistilled_student(tmp_path):
    curve = LearningCurve(_cfg(tmp_path, every_n_steps=1), None, None, _Acc(), tmp_path)
    assert curve.settings.methods == ["student", "student_det"]
    curve = LearningCurve(_cfg(tmp_path, every_n_steps=1, objective="fd:undistilled:1"), None, None, _Acc(), tmp_path)
    assert "undistilled" in curve.settings.methods  # its objective's method stays


@pytest.fixture()
def lora_family(tiny_toy_teacher):
    """A family of its own: the LoRA adapter adds layers to its network."""
    from lcm_exp.adapters.lora import LoraAdapter
    from lcm_exp.config.schema import ModelConfig
    from lcm_exp.models.sd15 import SD15Family

    family = SD15Family(ModelConfig(family="sd15", teacher=str(tiny_toy_teacher), resolution=32))
    adapter = LoraAdapter(LoraAdapterConfig(rank=4, alpha=4.0, target_modules=["to_q", "to_v", "conv1"]), family)
    with torch.no_grad():
        for name, p in family.denoiser.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)  # a trained-looking adapter: the student differs from the teacher
    return family, adapter


def test_lora_student_against_the_teacher_with_its_adapters_disabled(lora_family, toy_family, tmp_path):
    """The in-loop evaluation of a LoRA student: teacher rows (and its undistilled student) run the shared network
    with adapters disabled, equal to a plain teacher; the student rows run the adapter; train mode kept."""
    from lcm_exp.evaluate.core import evaluate_student
    from lcm_exp.evaluate.run import evaluate_from_loop, toy_judge

    family, adapter = lora_family
    cfg = SimpleNamespace(adapter=adapter.cfg, objective=TCDObjectiveConfig(num_ddim_timesteps=10, gamma=0.3),
                          name="t", seed=0, paths=SimpleNamespace(cache_dir=str(tmp_path / "cache")))  # fmt: skip
    settings = EvalSettings(**SMALL, methods=["student", "ddim_trailing", "undistilled"], cache_teacher=False)
    result = evaluate_from_loop(cfg, family, adapter, None, settings)
    world, classifier = toy_judge(toy_family.teacher)  # the same prompts: the toy world's captions
    plain = evaluate_student(toy_family, toy_family.denoiser, result_scheduler(cfg, toy_family), settings,
                             undistilled=toy_family.denoiser, toy_world=world, classifier=classifier)  # fmt: skip
    for key in (("ddim_trailing", 2), ("undistilled", 2), ("reference", 3)):
        torch.testing.assert_close(result.latents[key], plain.latents[key], rtol=1e-5, atol=1e-5, msg=str(key))
    assert not torch.allclose(result.latents[("student", 2)], result.latents[("undistilled", 2)], atol=1e-3)
    assert result.rows[1]["label"] == "student, TCDScheduler (gamma 0.3)"
    assert family.denoiser.training


def result_scheduler(cfg, family):
    from lcm_exp.train.components import inference_scheduler

    return inference_scheduler(cfg, family)


def test_the_curve_leaves_the_training_rng_alone(tmp_path, monkeypatch):
    def drawing(*args, **kwargs):
        torch.randn(3)  # an evaluation that draws from the global generator
        return SimpleNamespace(objective=lambda: 1.0, rows=[])

    from lcm_exp.evaluate import run

    monkeypatch.setattr(run, "evaluate_from_loop", drawing)
    before = torch.random.get_rng_state()
    LearningCurve(_cfg(tmp_path, every_n_steps=1), None, None, _Acc(), tmp_path).after_update(1)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_a_toy_lora_run_writes_its_curve_and_best_student(tiny_toy_teacher, cache_dir, tmp_path):
    """Through launch.py: a LoRA PCM student with every_n_steps=2 over 3 steps (points at 2 and 3), the best step as
    run metrics, its export in best/ (which the evaluation CLI reads like a run dir)."""
    shards = ensure_toy_shards(cache_dir, 32)
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "launch.py", "experiment=toy", "adapter=lora", "adapter.rank=4", "objective=pcm",
           "objective.phases=2", "objective.num_ddim_timesteps=10", f"model.teacher={tiny_toy_teacher}",
           f"data.shards='{shards}'", f"paths.cache_dir={cache_dir}", f"hydra.run.dir={run_dir}",
           "trainer.max_train_steps=3", "trainer.batch_size=2", "validation.at_end=false", "evaluation.at_end=false",
           "evaluation.every_n_steps=2", "evaluation.export_best=true", "sweep.objective=eval_objective_best",
           *[f"evaluation.{k}={v}".replace(" ", "") for k, v in SMALL.items()]]  # fmt: skip
    out = subprocess.run(cmd, cwd=CONF.parent, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]
    rows = [r for r in read_metrics(run_dir) if r.get("eval")]
    assert [r["step"] for r in rows] == [2, 3]
    metrics = json.loads((run_dir / "run.json").read_text())["metrics"]
    best = min(rows, key=lambda r: r["eval_objective"])
    assert metrics["eval_objective_best"] == best["eval_objective"]
    assert metrics["eval_objective_best_step"] == best["step"]
    assert json.loads((run_dir / "best" / "best.json").read_text())["step"] == best["step"]
    assert (run_dir / "best" / "model" / "pytorch_lora_weights.safetensors").is_file()
    assert (run_dir / "best" / "config.yaml").is_file() and (run_dir / "eval_curve.png").is_file()
    assert not (run_dir / ".best.tmp").exists() and curve_mod.BEST_DIR == "best"
