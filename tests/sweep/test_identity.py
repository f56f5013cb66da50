"""identity.py: a job's identity and derived seed ignore order and sweep bookkeeping, and nothing else."""

from __future__ import annotations

import hashlib

from lcm_exp.sweep.identity import derive_seed, identity_overrides


def test_derived_seed_is_pinned():
    # sha256("0\nguidance.w_max=6\nguidance.w_min=2"), first 4 bytes big-endian, top bit cleared
    digest = hashlib.sha256(b"0\nguidance.w_max=6\nguidance.w_min=2").hexdigest()
    assert digest[:8] == "354e7399"
    assert derive_seed(0, ["guidance.w_min=2", "guidance.w_max=6"]) == 0x354E7399
    # sha256("0\nloss.huber_c=0.01") starts b764a997: the top bit is cleared -> a non-negative 31-bit seed
    assert derive_seed(0, ["loss.huber_c=0.01"]) == 0x3764A997


def test_order_and_bookkeeping_do_not_change_the_seed():
    a = derive_seed(7, ["guidance.w_min=2", "guidance.w_max=6", "sweep=guidance_range", "sweep.name=x"])
    b = derive_seed(
        7,
        [
            "force=true",
            "guidance.w_max=6",
            "guidance.w_min=2",
            "+sweep.objective=tail_loss",
            "paths.cache_dir=/elsewhere",
            "logger=wandb",
            "logger.mode=online",
        ],
    )
    assert a == b


def test_base_seed_and_any_real_override_change_the_seed():
    base = derive_seed(0, ["guidance.w_min=2", "guidance.w_max=6"])
    assert derive_seed(1, ["guidance.w_min=2", "guidance.w_max=6"]) != base
    assert derive_seed(0, ["guidance.w_min=2", "guidance.w_max=7"]) != base
    assert derive_seed(0, ["guidance.w_min=2", "guidance.w_max=6", "trainer.max_train_steps=3"]) != base


def test_identity_overrides():
    given = ["b=1", "sweep=x", "a=2", "sweep.name=n", "force=true", "sweep/x=y", "paths.log_dir=/o", "sweeps.k=1"]
    assert identity_overrides(given) == ["a=2", "b=1", "sweeps.k=1"]
