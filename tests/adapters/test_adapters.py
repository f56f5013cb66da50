"""Both adapters behind the interface: the networks they declare, the target copy and EMA mode options, and that
the interface declares what its callers use (no forwarding wrapper, no attribute probing)."""

from __future__ import annotations

import inspect

import pytest
import torch

from lcm_exp.adapters import AdapterOptions, StudentAdapter, adapter_class, build_adapter
from lcm_exp.config.schema import FullAdapterConfig, LoraAdapterConfig, ModelConfig
from lcm_exp.models.tiny import ensure_tiny_teacher

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def family_factory(cache_dir):
    from lcm_exp.models.sd15 import SD15Family

    teacher = ensure_tiny_teacher("sd15", cache_dir)
    return lambda dtype="fp32": SD15Family(ModelConfig(family="sd15", teacher=str(teacher), resolution=64),
                                           weight_dtype=dtype)


def test_full_adapter_runs_its_target_from_a_compute_dtype_copy_of_the_fp32_ema(family_factory):
    family = family_factory("bf16")
    adapter = build_adapter(FullAdapterConfig(ema_decay=0.5), family, AdapterOptions(compute_dtype=torch.bfloat16))
    copy_module = adapter.target_copy.module
    assert adapter.networks() == [adapter.student, adapter.target, copy_module]
    assert next(copy_module.parameters()).dtype == torch.bfloat16
    assert next(adapter.target.parameters()).dtype == torch.float32  # the EMA itself stays fp32
    assert adapter.ema.foreach is True
    with torch.no_grad():
        for p in adapter.student.parameters():
            p.add_(1.0)
    before = next(adapter.target.parameters()).clone()
    adapter.after_optimizer_step()  # EMA 0.5: halfway to the student
    after = next(adapter.target.parameters())
    torch.testing.assert_close(after, before + 0.5)
    adapter.distill_models()  # the copy is refreshed lazily, on the next step
    torch.testing.assert_close(next(copy_module.parameters()).float(), after, atol=1e-2, rtol=1e-2)

    reference = build_adapter(FullAdapterConfig(), family, AdapterOptions(torch.bfloat16, target_in_compute_dtype=False,
                                                                         ema_foreach=False))
    assert reference.target_copy is None and reference.ema.foreach is False
    assert build_adapter(FullAdapterConfig(), family_factory(), AdapterOptions()).target_copy is None  # fp32


def test_lora_adapter_declares_the_shared_network(family_factory):
    family = family_factory()
    adapter = build_adapter(LoraAdapterConfig(rank=4, alpha=4.0), family, AdapterOptions(ema_foreach=False))
    assert adapter.networks() == [family.denoiser]  # teacher and student are one network
    assert adapter.checkpoint_state == {}


@pytest.mark.parametrize("name", ["full", "lora"])
def test_the_interface_declares_what_callers_use(name):
    cls = adapter_class(name)
    assert issubclass(cls, StudentAdapter) and not inspect.isabstract(cls)
    assert "fp16_variant" in inspect.signature(cls.export).parameters
    for field in ("recommended_guidance_scale", "recommended_steps", "steps_range", "guidance_note"):
        assert hasattr(cls, field), field
    assert not hasattr(cls, "__getattr__")
