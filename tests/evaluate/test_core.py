"""The whole evaluation on a tiny random toy teacher: shapes, files, identities, determinism."""

import csv

import pytest
import torch

from lcm_exp.config.schema import FullAdapterConfig, LoraAdapterConfig
from lcm_exp.evaluate.baselines import baselines_for
from lcm_exp.evaluate.core import evaluate_student
from lcm_exp.evaluate.run import make_undistilled, toy_judge
from lcm_exp.evaluate.settings import METHODS, EvalSettings

SETTINGS = dict(steps=[1, 2], num_samples=6, reference_steps=4, batch_size=4, grid_samples=3)
ZERO = FullAdapterConfig(time_cond_proj_dim=32, cond_proj_init="zero")


def _evaluate(family, lcm, student, cache_dir=None, out_dir=None, **overrides):
    world, classifier = toy_judge(family.teacher)
    undistilled = make_undistilled(family, FullAdapterConfig(time_cond_proj_dim=32, cond_proj_init="random"), 0)
    return evaluate_student(family, student, lcm, EvalSettings(**{**SETTINGS, **overrides}), undistilled=undistilled,
                            toy_world=world, classifier=classifier, cache_dir=cache_dir, out_dir=out_dir)  # fmt: skip


def test_rows_files_and_shapes(toy_family, lcm, tmp_path):
    student = make_undistilled(toy_family, ZERO, 0)
    result = _evaluate(toy_family, lcm, student, out_dir=tmp_path)
    ddpm_methods = set(METHODS) - set(baselines_for("flow"))  # a DDPM teacher runs no Euler baselines
    assert len(result.rows) == 1 + len(ddpm_methods) * 2
    ref = result.rows[0]
    assert ref["method"] == "reference" and ref["steps"] == 4 and ref["nfe"] == 8 and ref["latent_rmse"] is None
    for row in result.rows[1:]:
        assert row["latent_rmse"] >= 0 and row["psnr_db"] > 0 and 0 <= row["attr_acc"] <= 1 and row["fd"] >= 0
    assert result.value("nfe", "ddim_trailing", 2) == 4 and result.value("nfe", "student", 2) == 2
    for name in ("table", "csv", "summary", "plot", "grid"):
        assert (tmp_path / result.files[name].split("/")[-1]).is_file()
    with open(result.files["csv"]) as fh:
        assert len(list(csv.DictReader(fh))) == len(result.rows)
    assert result.grid_images[("student", 1)].shape == (3, 3, 32, 32)
    assert any("CLIP score skipped" in n for n in result.notes) and any("FID skipped" in n for n in result.notes)
    assert result.objective() == pytest.approx(
        (result.value("latent_rmse", "student", 1) + result.value("latent_rmse", "student", 2)) / 2
    )


def test_student_equal_to_teacher_reproduces_ddim(toy_family, lcm):
    """A zero-init cond_proj student is the teacher. Its deterministic sampler is then DDIM without CFG; at 1 and 2
    steps the LCM grid (N=10) and trailing spacing pick the same timesteps (999; 999, 499), so it reproduces the
    teacher's no-CFG DDIM up to DDIM's last step, which lands on alpha_bar[0] (set_alpha_to_one=false) instead of
    returning x0: a difference of sqrt(1 - alpha_bar[0]) * eps ~ 0.03 eps. With w=0 the guided baseline is the same
    sampler as the unguided one, exactly."""
    student = make_undistilled(toy_family, ZERO, 0)
    result = _evaluate(toy_family, lcm, student, w=0.0)
    ac0 = float(toy_family.schedule.alphas_cumprod[0])
    for steps in (1, 2):
        det, ddim = result.latents[("student_det", steps)], result.latents[("teacher_nocfg", steps)]
        assert torch.equal(ddim, result.latents[("ddim_trailing", steps)])
        gap = (det - ddim).pow(2).mean().sqrt()
        assert 0 < gap < 1.5 * (1 - ac0) ** 0.5 * max(1.0, float(det.abs().max()) * 0.01), (steps, gap)
        assert result.value("latent_rmse", "student_det", steps) == pytest.approx(
            result.value("latent_rmse", "teacher_nocfg", steps), abs=float(gap) + 1e-9)
    assert torch.equal(result.latents[("student", 1)], result.latents[("student_det", 1)])


def test_ddim_at_the_reference_steps_is_the_reference(toy_family, lcm):
    student = make_undistilled(toy_family, ZERO, 0)
    result = _evaluate(toy_family, lcm, student, steps=[4], methods=["ddim_trailing"])
    assert result.value("latent_rmse", "ddim_trailing", 4) == 0.0
    assert result.value("psnr_db", "ddim_trailing", 4) == 100.0
    assert result.value("fd", "ddim_trailing", 4) == pytest.approx(result.value("fd", "reference", 4))


def test_deterministic_given_seeds_and_cache_is_transparent(toy_family, lcm, tmp_path):
    student = make_undistilled(toy_family, ZERO, 0)
    first = _evaluate(toy_family, lcm, student, cache_dir=tmp_path)
    assert list(tmp_path.glob("teacher-*.pt"))
    second = _evaluate(toy_family, lcm, student, cache_dir=tmp_path)  # teacher rows from the cache
    third = _evaluate(toy_family, lcm, student)  # no cache
    assert first.rows == second.rows == third.rows
    other = _evaluate(toy_family, lcm, student, seed=1)
    assert other.rows != first.rows


def test_undistilled_student_is_reproducible(toy_family):
    cfg = FullAdapterConfig(time_cond_proj_dim=32, cond_proj_init="random")
    a, b, c = (make_undistilled(toy_family, cfg, s) for s in (0, 0, 1))
    wa, wb, wc = (m.time_embedding.cond_proj.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert make_undistilled(toy_family, LoraAdapterConfig(), 0) is toy_family.denoiser


@pytest.mark.parametrize("kind", ["sd15", "sdxl"])
def test_non_toy_teacher_skips_toy_metrics(kind, cache_dir):
    """Any family works; without a toy world the prompts are the given ones and the toy metrics are skipped."""
    from diffusers import LCMScheduler

    from lcm_exp.config.schema import ModelConfig, SDXLModelConfig
    from lcm_exp.models.registry import get_family
    from lcm_exp.models.tiny import ensure_tiny_teacher

    cls = SDXLModelConfig if kind == "sdxl" else ModelConfig
    family = get_family(kind)(cls(family=kind, teacher=str(ensure_tiny_teacher(kind, cache_dir)), resolution=64))
    lcm = LCMScheduler.from_config(family.scheduler_config, original_inference_steps=10)
    student = make_undistilled(family, FullAdapterConfig(time_cond_proj_dim=16, cond_proj_init="random"), 0)
    settings = EvalSettings(steps=[1], num_samples=3, reference_steps=2, prompts=["a red circle", "a cat"],
                            methods=["student", "ddim_trailing"])  # fmt: skip
    result = evaluate_student(family, student, lcm, settings)
    assert [r["method"] for r in result.rows] == ["reference", "student", "ddim_trailing"]
    assert "attr_acc" not in result.rows[1] and result.rows[1]["latent_rmse"] > 0
    assert any("attribute accuracy / FD skipped" in n for n in result.notes)
    assert result.latents[("student", 1)].shape == (3, 4, 8, 8)
