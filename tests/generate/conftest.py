"""One launched full run (with the fp16 variant) and one LoRA run, shared by the generate and docs tests."""

from __future__ import annotations

import pytest

from tests.train.runner import launch

FAST = ["model=tiny_sd15", "trainer.max_train_steps=2", "validation.at_end=false"]


@pytest.fixture(scope="session")
def full_run(tmp_path_factory, cache_dir):
    run_dir = tmp_path_factory.mktemp("gen_full")
    launch(run_dir, cache_dir, *FAST, "adapter=full", "export=fp16")
    return run_dir


@pytest.fixture(scope="session")
def lora_run(tmp_path_factory, cache_dir):
    run_dir = tmp_path_factory.mktemp("gen_lora")
    launch(run_dir, cache_dir, *FAST, "adapter=lora", "optim.lr=1e-2")
    return run_dir
