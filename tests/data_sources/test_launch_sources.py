"""End to end: a launched run trains from an image folder, with the attention switch and validation VAE switches."""

from __future__ import annotations

from tests.train.runner import launch, metrics, record


def test_launch_trains_from_an_image_folder(folder, tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    launch(run_dir, cache_dir, "model=tiny_sd15", "adapter=lora", "data=imagefolder", f"data.path={folder}",
           "data.num_workers=0", "trainer.max_train_steps=2", "trainer.batch_size=2", "validation.vae_slicing=true",
           "validation.vae_tiling=true")  # fmt: skip
    rec = record(run_dir)
    assert rec["status"] == "completed" and rec["config"]["data"]["source"] == "imagefolder"
    assert rec["metrics"]["steps"] == 2 and metrics(run_dir)[-1]["step"] == 2
    assert "attention backend sdpa on" in (run_dir / "launch.log").read_text()
    assert (run_dir / "model" / "pytorch_lora_weights.safetensors").is_file()
    assert list((run_dir / "validation").glob("step-*/1-steps.png"))
