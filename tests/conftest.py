"""Shared fixtures: offline hub, one cache of tiny teachers and shards per test session."""

import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("WANDB_MODE", "offline")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """Tiny teachers and synthetic shards are built once per session (LCM_EXP_CACHE reuses a persistent one)."""
    return os.environ.get("LCM_EXP_CACHE") or str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny convs are far slower with two threads fighting over two busy shared cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
