"""Each perf switch does what it says, pinned against hand-computed values or the objects it builds."""

from __future__ import annotations

import dataclasses
import types

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

from lcm_exp.adapters.ema import EMA
from lcm_exp.bench.variants import expand, parse_variant, switch_values
from lcm_exp.config.schema import OptimConfig, PerfConfig
from lcm_exp.objective import DistillModels, ObjectiveSpec, build_loss, distill_step
from lcm_exp.perf.adapter import PerfAdapter
from lcm_exp.perf.components import build_optimizer, build_solver, check_perf
from lcm_exp.perf.modules import configure_unets, distinct, teacher_in_fp32


@pytest.mark.parametrize("foreach", [True, False])
def test_ema_both_modes_give_the_hand_computed_average(foreach):
    target, source = [torch.ones(3), torch.full((2, 2), 2.0)], [torch.full((3,), 3.0), torch.zeros(2, 2)]
    ema = EMA(source, target, decay=0.9, foreach=foreach)
    ema.update()
    assert torch.allclose(target[0], torch.full((3,), 1.2)) and torch.allclose(target[1], torch.full((2, 2), 1.8))
    ema.update()
    assert torch.allclose(target[0], torch.full((3,), 0.9 * 1.2 + 0.1 * 3.0))


def test_solver_dtype_switch_sets_the_ddim_table_precision(parity, optimised):
    ac = torch.linspace(0.999, 0.01, 1000, dtype=torch.float64)
    ref, opt = build_solver(ac, 50, "cpu", parity), build_solver(ac, 50, "cpu", optimised)
    x0, eps, idx = torch.ones(2, 4, 2, 2), torch.zeros(2, 4, 2, 2), torch.tensor([0, 10])
    assert ref.ddim_step(x0, eps, idx).dtype == torch.float64  # the reference's promotion of z_prev
    z = opt.ddim_step(x0, eps, idx)
    assert z.dtype == torch.float32
    assert z[1, 0, 0, 0].item() == pytest.approx(ac[10 * 20 - 1].sqrt().item(), rel=1e-6)  # sqrt(abar[t_prev])


def _models(seen: list):
    def net(name):
        def call(x, t, c, w=None):
            seen.append((name, x.shape[0], None if w is None else w.device.type))
            return x * 0.5

        return call

    return DistillModels(net("student"), net("teacher"), net("target"), guidance_embedding_dim=8)


def test_host_side_sampling_draws_the_same_w_and_only_moves_it():
    from lcm_exp.conditioning import Conditioning

    ac = torch.linspace(0.999, 0.01, 1000, dtype=torch.float64)
    solver = build_solver(ac, 50, "cpu", PerfConfig())
    z0, cond = torch.randn(3, 4, 2, 2), Conditioning(torch.zeros(3, 2, 8))
    outs = []
    for host in (False, True):
        seen: list = []
        spec = ObjectiveSpec(
            "epsilon",
            build_loss("l2"),
            2.0,
            6.0,
            host_side_sampling=host,
            teacher_single_pass=False,
            no_grad_first=False,
        )
        outs.append(distill_step(z0, cond, cond, _models(seen), solver, spec, torch.Generator().manual_seed(4)))
        # reference order and passes: student first, two teacher calls of B, then the target
        assert [(n, b) for n, b, _ in seen] == [("student", 3), ("teacher", 3), ("teacher", 3), ("target", 3)]
    assert torch.equal(outs[0].w, outs[1].w) and torch.equal(outs[0].loss, outs[1].loss)
    assert ((outs[0].w >= 2.0) & (outs[0].w <= 6.0)).all()


def test_teacher_single_pass_and_no_grad_first_change_the_calls():
    from lcm_exp.conditioning import Conditioning

    solver = build_solver(torch.linspace(0.999, 0.01, 1000, dtype=torch.float64), 50, "cpu", PerfConfig())
    seen: list = []
    spec = ObjectiveSpec("epsilon", build_loss("l2"), 2.0, 6.0)  # the optimised defaults
    distill_step(
        torch.randn(3, 4, 2, 2),
        Conditioning(torch.zeros(3, 2, 8)),
        Conditioning(torch.zeros(3, 2, 8)),
        _models(seen),
        solver,
        spec,
        None,
    )
    assert [(n, b) for n, b, _ in seen] == [("teacher", 6), ("target", 3), ("student", 3)]


def test_fused_optimizer_switch(parity, optimised):
    params, ref_params = ([torch.nn.Parameter(torch.linspace(-1, 1, 12).reshape(4, 3))] for _ in range(2))
    cfg = OptimConfig(lr=1e-3)
    fused, ref = build_optimizer(cfg, params, 1e-3, optimised), build_optimizer(cfg, ref_params, 1e-3, parity)
    assert fused.defaults["fused"] is True  # CPU too: torch has a fused CPU kernel
    assert ref.defaults["fused"] is None and ref.defaults["foreach"] is None  # torch's default, as the reference
    for p in (*params, *ref_params):
        p.grad = torch.full((4, 3), 0.5)
    fused.step(), ref.step()  # torch checks the fused kernel's device in the first step, not in the constructor
    assert torch.allclose(params[0], ref_params[0], rtol=1e-6, atol=1e-7)  # same update
    meta = [torch.nn.Parameter(torch.empty(4, 3, device="meta"))]  # a device without a fused kernel
    assert build_optimizer(cfg, meta, 1e-3, optimised).defaults["fused"] is None  # torch's default instead
    if torch.cuda.is_available():
        cuda = [torch.nn.Parameter(torch.randn(4, 3, device="cuda"))]
        assert build_optimizer(cfg, cuda, 1e-3, optimised).defaults["fused"] is True
    assert build_optimizer(cfg, params, 2e-3, optimised).defaults["lr"] == 2e-3


class _Inner:
    """A stand-in full adapter: a student, an fp32 EMA target and its EMA."""

    recommended_guidance_scale = 8.0

    def __init__(self):
        self.student = torch.nn.Linear(2, 2)
        self.target = torch.nn.Linear(2, 2).requires_grad_(False)
        self.ema = EMA(list(self.student.parameters()), list(self.target.parameters()), 0.5)
        self.checkpoint_state = {"ema": self.ema}
        self.trainable_module = self.student

    def distill_models(self):
        return DistillModels(self.student, None, self.target, None)

    def after_optimizer_step(self):
        self.ema.update()


def test_perf_adapter_runs_the_target_from_a_compute_dtype_copy_of_the_fp32_ema(parity, optimised):
    inner = _Inner()
    adapter = PerfAdapter(inner, optimised, torch.bfloat16)
    assert inner.ema.foreach is True and adapter.checkpoint_state is inner.checkpoint_state
    copy_params = list(adapter.target_copy.module.parameters())
    assert all(p.dtype == torch.bfloat16 for p in copy_params)
    assert all(p.dtype == torch.float32 for p in inner.target.parameters())  # the EMA itself stays fp32
    with torch.no_grad():
        inner.student.weight.fill_(1.0)
        inner.target.weight.fill_(0.0)
    adapter.after_optimizer_step()  # EMA: 0.5 * 0 + 0.5 * 1
    assert torch.all(inner.target.weight == 0.5)
    models = adapter.distill_models()  # the copy is refreshed lazily, on the next step
    assert torch.all(copy_params[0] == 0.5)
    assert models.student is inner.student and models.target is not inner.target
    assert adapter.unets() == [inner.student, inner.target, adapter.target_copy.module]

    ref = PerfAdapter(_Inner(), parity, torch.bfloat16)
    assert ref.target_copy is None and ref.inner.ema.foreach is False
    assert PerfAdapter(_Inner(), optimised, torch.float32).target_copy is None  # nothing to gain without autocast


def test_configure_unets_sets_attention_and_memory_format(optimised):
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=8,
    )
    configure_unets([unet], dataclasses.replace(optimised, attention="classic", channels_last=True))
    assert all(isinstance(p, AttnProcessor) for p in unet.attn_processors.values())
    assert unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    configure_unets([unet], optimised)
    assert all(isinstance(p, AttnProcessor2_0) for p in unet.attn_processors.values())
    with pytest.raises(ValueError, match="perf.attention"):
        check_perf(dataclasses.replace(optimised, attention="flash"))


def test_teacher_in_fp32_reloads_the_teacher_and_distinct_dedupes():
    loaded = []
    half = torch.nn.Linear(2, 2).to(torch.bfloat16)
    half.dtype = torch.bfloat16  # diffusers models expose .dtype

    def load_unet(dtype):
        loaded.append(dtype)
        m = torch.nn.Linear(2, 2)
        m.dtype = torch.float32
        return m

    family = types.SimpleNamespace(unet=half, load_unet=load_unet, device=torch.device("cpu"))
    teacher_in_fp32(family)
    assert loaded == [torch.float32] and family.unet.weight.dtype == torch.float32
    assert not family.unet.weight.requires_grad
    assert distinct([family.unet, None, family.unet, half]) == [family.unet, half]


def test_variants_map_switches_to_overrides():
    values = switch_values()
    assert values["ema_foreach"] == (False, True) and values["latent_cache"] == ("webdataset", "latent_cache")
    one = dict(o.split("=", 1) for o in parse_variant("parity+ema_foreach").overrides)
    base = dict(o.split("=", 1) for o in parse_variant("parity").overrides)
    assert {k for k in one if one[k] != base[k]} == {"perf.ema_foreach"}
    mixed = dict(o.split("=", 1) for o in parse_variant("optimised+ref:fused_optimizer+trainer.batch_size=2").overrides)
    assert mixed["perf.fused_optimizer"] == "false" and mixed["trainer.batch_size"] == "2"
    assert mixed["data.source"] == "latent_cache" and mixed["perf.ema_foreach"] == "true"
    names = [v.name for v in expand(["ablation"])]
    assert names[0] == "parity" and names[-1] == "optimised" and "parity+latent_cache" in names
    assert "parity+compile" not in names
    with pytest.raises(ValueError, match="unknown switch"):
        parse_variant("parity+warp_drive")
