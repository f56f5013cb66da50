"""The perf switches that live in the step's parts: the DDIM table precision, host-side w sampling, the teacher
passes and step order, fused AdamW; pinned against hand-computed values or the objects they build."""

from __future__ import annotations

import pytest
import torch

from lcm_exp.config.schema import OptimConfig
from lcm_exp.objective import DDPMSchedule, DistillModels, ObjectiveSpec, build_loss, distill_step
from lcm_exp.train.components import build_solver
from lcm_exp.train.optim import build_optimizer

SCHEDULE = DDPMSchedule(torch.linspace(0.999, 0.01, 1000, dtype=torch.float64))


def test_solver_dtype_switch_sets_the_ddim_table_precision():
    ac = torch.linspace(0.999, 0.01, 1000, dtype=torch.float64)
    ref, opt = build_solver(SCHEDULE, 50, "cpu", "fp64"), build_solver(SCHEDULE, 50, "cpu", "fp32")
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

    solver = build_solver(SCHEDULE, 50, "cpu")
    z0, cond = torch.randn(3, 4, 2, 2), Conditioning(torch.zeros(3, 2, 8))
    outs = []
    for host in (False, True):
        seen: list = []
        spec = ObjectiveSpec(build_loss("l2"), 2.0, 6.0, host_side_sampling=host, teacher_single_pass=False,
                             no_grad_first=False)
        outs.append(distill_step(z0, cond, cond, _models(seen), solver, spec, torch.Generator().manual_seed(4)))
        # reference order and passes: student first, two teacher calls of B, then the target
        assert [(n, b) for n, b, _ in seen] == [("student", 3), ("teacher", 3), ("teacher", 3), ("target", 3)]
    assert torch.equal(outs[0].w, outs[1].w) and torch.equal(outs[0].loss, outs[1].loss)
    assert ((outs[0].w >= 2.0) & (outs[0].w <= 6.0)).all()


def test_teacher_single_pass_and_no_grad_first_change_the_calls():
    from lcm_exp.conditioning import Conditioning

    solver = build_solver(SCHEDULE, 50, "cpu")
    seen: list = []
    spec = ObjectiveSpec(build_loss("l2"), 2.0, 6.0)  # the optimised defaults
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


def test_fused_optimizer_switch():
    params, ref_params = ([torch.nn.Parameter(torch.linspace(-1, 1, 12).reshape(4, 3))] for _ in range(2))
    cfg = OptimConfig(lr=1e-3)
    fused, ref = build_optimizer(cfg, params, 1e-3, fused=True), build_optimizer(cfg, ref_params, 1e-3, fused=False)
    assert fused.defaults["fused"] is True  # CPU too: torch has a fused CPU kernel
    assert ref.defaults["fused"] is None and ref.defaults["foreach"] is None  # torch's default, as the reference
    for p in (*params, *ref_params):
        p.grad = torch.full((4, 3), 0.5)
    fused.step(), ref.step()  # torch checks the fused kernel's device in the first step, not in the constructor
    assert torch.allclose(params[0], ref_params[0], rtol=1e-6, atol=1e-7)  # same update
    meta = [torch.nn.Parameter(torch.empty(4, 3, device="meta"))]  # a device without a fused kernel
    assert build_optimizer(cfg, meta, 1e-3, fused=True).defaults["fused"] is None  # torch's default instead
    if torch.cuda.is_available():
        cuda = [torch.nn.Parameter(torch.randn(4, 3, device="cuda"))]
        assert build_optimizer(cfg, cuda, 1e-3, fused=True).defaults["fused"] is True
    assert build_optimizer(cfg, params, 2e-3, fused=True).defaults["lr"] == 2e-3
