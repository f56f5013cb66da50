"""`python launch.py model=tiny_sd3 adapter=lora` (the default quickstart preset, evaluation.at_end on) trains,
exports and ends with its evaluation table; the learning curve evaluates the live SD3 LoRA student too."""

from __future__ import annotations

import pytest

from lcm_exp.toy.shards import ensure_toy_shards
from tests.train.runner import launch, metrics, record

SMALL_EVAL = ["evaluation.num_samples=2", "evaluation.steps=[1,2]", "evaluation.reference_steps=3",
              "evaluation.batch_size=2"]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory, cache_dir):
    """The user's command with a short budget: 2 LoRA steps, a learning-curve point at step 2, a small evaluation."""
    run_dir = tmp_path_factory.mktemp("sd3_quickstart")
    out = launch(run_dir, cache_dir, "experiment=quickstart", "model=tiny_sd3", "adapter=lora",
                 f"data.shards='{ensure_toy_shards(cache_dir, 32)}'", "model.max_sequence_length=16",
                 "adapter.rank=4", "trainer.max_train_steps=2", "trainer.batch_size=2", "evaluation.every_n_steps=2",
                 *SMALL_EVAL)  # fmt: skip
    return run_dir, out.stdout


def test_the_quickstart_command_on_tiny_sd3_ends_with_its_euler_table(run):
    run_dir, stdout = run
    rec = record(run_dir)
    assert rec["status"] == "completed" and rec["config"]["evaluation"]["at_end"] is True
    table = (run_dir / "eval" / "table.txt").read_text()
    assert table in stdout and table.startswith("reference: teacher Euler-3 (FlowMatchEulerDiscreteScheduler)")
    assert "teacher Euler + CFG (fair baseline)" in table and "student, FlowMatchLCMScheduler" in table
    m = rec["metrics"]
    assert m["eval_objective"] == pytest.approx((m["eval:latent_rmse:student:1"] + m["eval:latent_rmse:student:2"]) / 2)
    for key in ("euler_cfg:2", "euler_nocfg:1", "undistilled:2", "student_det:2"):
        assert m[f"eval:latent_rmse:{key}"] > 0 and f"eval:psnr_db:{key}" in m
    assert not any(":ddim" in k for k in m)


def test_a_learning_curve_point_of_the_sd3_lora(run):
    run_dir, _ = run
    points = [r for r in metrics(run_dir) if r.get("eval")]
    assert [p["step"] for p in points] == [2]
    assert points[0]["eval_objective"] > 0 and "latent_rmse:student_det:2" in points[0]
    assert record(run_dir)["metrics"]["eval_objective_best_step"] == 2
    assert (run_dir / "eval_curve.png").is_file()
