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
    adapter = build_adapter(FullAdapterConfig(ema_decay=0.5), family, AdapterOptions(compute_dtype=torch.bfloat16, frozen_dtype=torch.bfloat16))
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

    reference = build_adapter(FullAdapterConfig(), family, AdapterOptions(torch.bfloat16, frozen_dtype=torch.float32,
                                                                         ema_foreach=False))
    assert reference.target_copy is None and reference.ema.foreach is False
    assert build_adapter(FullAdapterConfig(), family_factory(), AdapterOptions()).target_copy is None  # fp32


@pytest.mark.parametrize(("compute", "frozen", "shared"), [
    (torch.float32, torch.float32, True),  # fp32 throughout: one copy of the weights
    (torch.float32, torch.bfloat16, False),  # bf16 teacher beside fp32 LoRA training: the base is an fp32 copy
])  # fmt: skip
def test_lora_teacher_is_a_plain_view_of_the_base_or_its_own_frozen_copy(family_factory, compute, frozen, shared):
    family = family_factory("bf16" if frozen == torch.bfloat16 else "fp32")
    adapter = build_adapter(LoraAdapterConfig(rank=4, alpha=4.0), family, AdapterOptions(compute, frozen))
    student, teacher, *merged = adapter.networks()
    assert (student is family.denoiser) == shared and teacher is not student and len(merged) == (not shared)
    assert not any("lora_" in name for name, _ in teacher.named_parameters())  # no PEFT wrappers on the teacher
    base = {name.replace("base_layer.", ""): p for name, p in student.named_parameters() if "lora_" not in name}
    for name, p in teacher.named_parameters():
        assert (base[name] is p) == shared, name  # the same tensors, or a copy in the frozen dtype
        assert p.dtype == frozen and base[name].dtype == compute
    assert adapter.checkpoint_state == {} and adapter.target_is_student


@pytest.mark.parametrize("name", ["full", "lora"])
def test_the_interface_declares_what_callers_use(name):
    cls = adapter_class(name)
    assert issubclass(cls, StudentAdapter) and not inspect.isabstract(cls)
    assert "fp16_variant" in inspect.signature(cls.export).parameters
    for field in ("recommended_guidance_scale", "recommended_steps", "steps_range", "guidance_note"):
        assert hasattr(cls, field), field
    assert not hasattr(cls, "__getattr__")


@pytest.mark.parametrize("extra", [{}, {"guidance_conditioned": True},
                                   {"target": "ema", "ema_decay": 0.5, "export_weights": "ema"}])
def test_lora_merged_target_is_the_student_under_stop_grad(family_factory, extra):
    """fp32 LoRA training beside a bf16 teacher: the target pass runs a bf16 copy with the adapter merged into its
    weights; it computes what the student (or its EMA adapter) computes, to bf16 rounding."""
    family = family_factory("bf16")
    adapter = build_adapter(LoraAdapterConfig(rank=4, alpha=4.0, **extra), family,
                            AdapterOptions(torch.float32, torch.bfloat16))  # fmt: skip
    with torch.no_grad():  # a trained-looking adapter (LoRA B starts at zero)
        for name, p in adapter.net.named_parameters():
            if "lora_B" in name or "cond_proj" in name:
                p.normal_(0, 0.05)
    adapter.after_optimizer_step()
    models = adapter.distill_models()
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(2, 4, 8, 8, generator=g), torch.tensor([500, 900])
    cond = family.encode_text({"captions": ["a red circle", "a cat"]})
    w_emb = torch.randn(2, 256, generator=g) if extra.get("guidance_conditioned") else None
    with torch.no_grad():
        merged = models.target(x, t, cond, w_emb).float()
        with adapter.inference_denoiser() as student:  # the exported adapter (online or EMA) on the fp32 base
            exact = family.denoiser_fn(student)(x, t, cond, w_emb).float()
    assert adapter.target_copy is not None and next(adapter.target_copy.module.parameters()).dtype == torch.bfloat16
    assert (merged - exact).abs().max() < 0.05 * exact.abs().max()
    assert not torch.equal(merged, models.teacher(x, t, cond).float())  # the adapter is in it


def test_the_merge_is_pefts_delta_weight(family_factory):
    from peft.tuners.lora import LoraLayer

    from lcm_exp.adapters.lora import _delta

    adapter = build_adapter(LoraAdapterConfig(rank=4, alpha=8.0), family_factory(), AdapterOptions())
    layers = [m for m in adapter.net.modules() if isinstance(m, LoraLayer)]
    with torch.no_grad():
        for layer in layers:
            layer.lora_B["default"].weight.normal_()
    kinds = {type(layer.get_base_layer()).__name__ for layer in layers}
    assert kinds == {"Conv2d", "Linear"}
    for layer in layers:
        torch.testing.assert_close(_delta(layer, "default"), layer.get_delta_weight("default"), rtol=1e-5, atol=1e-6)
