"""`python -m lcm_exp.evaluate <run dir>` on a hand-made run dir (the layout the loop's export writes)."""

import csv

import pytest
import yaml
from omegaconf import OmegaConf

from lcm_exp.config.schema import (
    FullAdapterConfig,
    HuberLossConfig,
    InlineLauncherConfig,
    ModelConfig,
    ObjectiveConfig,
    RunConfig,
)
from lcm_exp.evaluate.__main__ import main
from lcm_exp.evaluate.run import make_undistilled

ARGS = ["--num-samples", "4", "--steps", "1", "2", "--reference-steps", "3", "--batch-size", "4"]


@pytest.fixture()
def run_dir(tmp_path, toy_family, lcm):
    run = tmp_path / "run"
    student = make_undistilled(toy_family, FullAdapterConfig(time_cond_proj_dim=32, cond_proj_init="random"), 7)
    student.save_pretrained(run / "model" / "unet")
    lcm.save_pretrained(run / "model" / "scheduler")
    cfg = OmegaConf.merge(OmegaConf.structured(RunConfig), {
        "name": "toy", "seed": 0,
        "model": ModelConfig(family="sd15", teacher=toy_family.teacher, resolution=32),
        "adapter": FullAdapterConfig(time_cond_proj_dim=32, cond_proj_init="random"),
        "loss": HuberLossConfig(), "launcher": InlineLauncherConfig(), "data": {"shards": "unused"},
        "objective": ObjectiveConfig(num_ddim_timesteps=10),
        "paths": {"cache_dir": str(tmp_path / "cache"), "log_dir": str(tmp_path), "output_dir": str(run)},
    })  # fmt: skip
    (run / "config.yaml").write_text(yaml.safe_dump(OmegaConf.to_container(cfg)))
    return run


def test_cli_writes_the_report(run_dir, capsys):
    assert main([str(run_dir), *ARGS, "--objective", "psnr_db:student:2"]) == 0
    out = capsys.readouterr().out
    assert "teacher DDIM trailing + CFG (fair baseline)" in out and "(SD default)" in out
    assert "objective psnr_db:student:2" in out and "(maximize)" in out
    with open(run_dir / "eval" / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["method"] for r in rows][:2] == ["reference", "student"] and len(rows) == 1 + 6 * 2
    assert {"attr_acc", "fd", "acc_shape", "nfe"} <= set(rows[0])
    for name in ("table.txt", "summary.json", "metrics.png", "grid.png"):
        assert (run_dir / "eval" / name).is_file()
    assert list((run_dir.parent / "cache" / "eval-cache").glob("teacher-*.pt"))


def test_cli_errors_name_the_problem(run_dir, tmp_path):
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing")])
    with pytest.raises(SystemExit):
        main([str(run_dir), "--objective", "nope"])
    (run_dir / "model" / "unet" / "config.json").unlink()
    (run_dir / "model" / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    (run_dir / "model" / "unet").rmdir()
    with pytest.raises(FileNotFoundError, match="holds no exported full student"):
        main([str(run_dir), *ARGS])


def test_evaluate_from_loop_uses_the_live_student(toy_family, tmp_path):
    """What the training loop would call at the end: the adapter's inference UNet, the run's objective grid."""
    from types import SimpleNamespace

    from lcm_exp.adapters.full import FullAdapter
    from lcm_exp.config.schema import FullAdapterConfig, ObjectiveConfig
    from lcm_exp.evaluate.run import evaluate_from_loop
    from lcm_exp.evaluate.settings import EvalSettings

    adapter_cfg = FullAdapterConfig(time_cond_proj_dim=32, cond_proj_init="zero")
    adapter = FullAdapter(adapter_cfg, toy_family)
    cfg = SimpleNamespace(adapter=adapter_cfg, objective=ObjectiveConfig(num_ddim_timesteps=10), name="toy", seed=0,
                          paths=SimpleNamespace(cache_dir=str(tmp_path / "cache")),
                          evaluation={"num_samples": 4, "steps": [1], "reference_steps": 2})  # fmt: skip
    result = evaluate_from_loop(cfg, toy_family, adapter, tmp_path / "run")
    assert (tmp_path / "run" / "eval" / "results.csv").is_file()
    # zero-init cond_proj: the student, the EMA target and the undistilled student are all the teacher
    assert result.value("latent_rmse", "student", 1) == result.value("latent_rmse", "undistilled", 1)
    assert adapter.student.training  # train mode restored
    narrowed = evaluate_from_loop(cfg, toy_family, adapter, tmp_path / "run2", EvalSettings(num_samples=4, steps=[2],
                                  reference_steps=2, methods=["student"]))  # fmt: skip
    assert [r["method"] for r in narrowed.rows] == ["reference", "student"]


def test_a_guidance_conditioned_lora_is_evaluated_with_its_w_embedding(cache_dir, tmp_path):
    """The evaluation loads the student the way its adapter says a user does: load_lora_weights, then the trained
    w embedding (time_cond_proj_dim), so the samplers embed w instead of running the plain LoRA."""
    import torch

    from lcm_exp.evaluate import samplers
    from lcm_exp.evaluate.run import load_student
    from lcm_exp.train.export import export_model
    from tests.export.conftest import run_config, student

    cfg = run_config(cache_dir, tmp_path, "model=tiny_sd15", "adapter=lora", "adapter.guidance_conditioned=true")
    family, adapter = student(cfg)
    with torch.no_grad():
        adapter.net.time_embedding.cond_proj.weight.normal_()
    trained = adapter.net.time_embedding.cond_proj.weight.detach().clone()
    model_dir = export_model(cfg, family, adapter, tmp_path)

    fresh = student(cfg)[0]
    net = load_student(fresh, "lora", model_dir)
    assert samplers.Denoiser(fresh, net).embedding_dim == cfg.adapter.time_cond_proj_dim
    torch.testing.assert_close(net.time_embedding.cond_proj.weight, trained)
    assert any("lora_" in name for name, _ in net.named_parameters())
