"""The one way to build a run from a RunConfig: what ``train()``, the benchmark and any other trainer step through.

``build_run`` makes, in this order (the order fixes the random draws, so a run is reproducible from its seed):
the family (teacher, VAE, text encoders), the student adapter with its speed switches, the attention backend on
every network that runs, the solver and objective spec, the optimizer and LR schedule, accelerate's preparation,
then either the resumed checkpoint or a per-rank seed, then the data and its encoder, and the step. A latent-cache
run releases the VAE and text encoders after building (validation loads them again while it runs).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed

from lcm_exp.adapters import AdapterOptions, StudentAdapter, build_adapter
from lcm_exp.models.attention import set_attention_backend
from lcm_exp.models.precision import frozen_dtype
from lcm_exp.models.registry import get_family
from lcm_exp.perf.switches import distinct, set_memory_format
from lcm_exp.runlog.trackers import tracker_names
from lcm_exp.train.checkpoint import load_checkpoint
from lcm_exp.train.components import build_solver, objective_spec
from lcm_exp.train.data import build_batches
from lcm_exp.train.nonfinite import NonFiniteGuard
from lcm_exp.train.optim import build_optimizer, build_scheduler
from lcm_exp.train.shared_cache import with_shared_cache
from lcm_exp.train.step import TrainStep

log = logging.getLogger(__name__)

DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def build_accelerator(cfg, run_dir: Path | None = None) -> Accelerator:
    """accelerate from trainer.* (trackers and their log dir only with a run dir); TF32 matmuls where allowed."""
    tr = cfg.trainer
    tracking = {}
    if run_dir is not None:
        tracking = dict(log_with=tracker_names(cfg.logger) or None,
                        project_config=ProjectConfiguration(project_dir=str(run_dir),
                                                            logging_dir=str(Path(run_dir) / "logs")))  # fmt: skip
    kwargs = dict(mixed_precision=tr.mixed_precision, gradient_accumulation_steps=tr.gradient_accumulation_steps,
                  **tracking)  # fmt: skip
    try:
        accelerator = Accelerator(**kwargs)
    except ValueError:  # an earlier run in this process (a benchmark, tests) chose another precision
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(True)
        accelerator = Accelerator(**kwargs)
    if tr.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return accelerator


@dataclass
class Run:
    """Everything one run trains with; ``step(batch)`` is the training step."""

    cfg: Any
    accelerator: Accelerator
    family: Any  # ModelFamily
    adapter: StudentAdapter
    networks: list[torch.nn.Module]  # every distinct network that runs (teacher, student, target, copies)
    step: TrainStep
    loader: Any
    global_batch: int
    lr: float
    resumed: dict = field(default_factory=dict)  # trainer state of the checkpoint resumed from ({} if none)

    def batches(self, skip: int = 0) -> Iterator[dict[str, Any]]:
        """The endless batch stream (a finite loader restarts with its next epoch) after dropping the first ``skip``
        batches (resume: the batches a checkpointed run already consumed, so the stream continues exactly)."""

        def forever():
            while True:
                yield from self.loader

        stream = forever()
        for _ in range(skip):
            next(stream)
        return stream

    def describe(self) -> dict[str, Any]:
        """What was built, by type and setting: two trainers built the same run iff these agree."""
        step, opt = self.step, self.step.optimizer
        return {
            "family": type(self.family).__name__.removeprefix("RandomInit"),
            "adapter": type(self.adapter).__name__,
            "networks": [type(n).__name__ for n in self.networks],
            "attention": sorted({type(p).__name__ for n in self.networks for p in _processors(n)}),
            "dtypes": [str(next(n.parameters()).dtype) for n in self.networks],
            "solver": [step.solver.num_ddim_timesteps, str(step.solver.dtype), step.solver.schedule.kind],
            "objective": repr(step.spec.objective),
            "spec": [step.spec.w_min, step.spec.w_max, step.spec.teacher_single_pass, step.spec.no_grad_first,
                     step.spec.host_side_sampling, repr(step.spec.loss)],
            "optimizer": [type(opt.optimizer).__name__, {k: v for k, v in opt.defaults.items() if k != "lr"},
                          [len(g["params"]) for g in opt.param_groups]],
            "lr_scheduler": type(step.lr_scheduler.scheduler).__name__,
            "encoder": type(step.encoder).__name__,
            "encoders_loaded": self.family.vae is not None,
            "guard": [step.guard.policy, step.guard.max_consecutive],
            "step": [step.sync_every_step, step.autocast_like_reference, step.cudnn_benchmark],
        }  # fmt: skip


def _processors(network: torch.nn.Module) -> list:
    return list(network.attn_processors.values()) if hasattr(network, "attn_processors") else []


def build_run(cfg, accelerator: Accelerator, *, resume: Path | None = None, family_cls: type | None = None) -> Run:
    """Build the run of ``cfg`` (a RunConfig) on ``accelerator``; ``resume``: a checkpoint to continue from.
    ``family_cls`` replaces the registered family class (the benchmark's random-weight teachers)."""
    tr, perf = cfg.trainer, cfg.perf
    weight_dtype = DTYPES[tr.mixed_precision]
    frozen = frozen_dtype(perf.frozen_dtype, tr.mixed_precision, accelerator.device)
    set_seed(cfg.seed)  # identical model init on every rank
    family = (family_cls or get_family(cfg.model.family))(cfg.model, device=accelerator.device,
                                                          weight_dtype=frozen)  # fmt: skip
    options = AdapterOptions(compute_dtype=weight_dtype, frozen_dtype=frozen, ema_foreach=perf.ema_foreach,
                             gradient_checkpointing=tr.gradient_checkpointing)  # fmt: skip
    adapter = build_adapter(cfg.adapter, family, options)
    networks = distinct([family.denoiser, *adapter.networks()])
    set_memory_format(networks, perf.channels_last)
    set_attention_backend(cfg.model.attention, [*networks, family.vae])
    solver = build_solver(family.schedule, cfg.objective.num_ddim_timesteps, accelerator.device, perf.solver_dtype)

    world = accelerator.num_processes
    global_batch = tr.batch_size * world * tr.gradient_accumulation_steps
    lr = cfg.optim.lr * global_batch if cfg.optim.scale_lr else cfg.optim.lr
    optimizer = build_optimizer(cfg.optim, adapter.trainable_parameters(), lr, fused=perf.fused_optimizer)
    lr_scheduler = build_scheduler(cfg.optim, optimizer, tr.max_train_steps, world)
    prepared, optimizer, lr_scheduler = accelerator.prepare(adapter.trainable_module, optimizer, lr_scheduler)
    adapter.bind(prepared)

    resumed: dict = {}
    if resume is not None:
        resumed = load_checkpoint(accelerator, resume, adapter.checkpoint_state)
        log.info("resumed from %s at step %d", resume, resumed["global_step"])
    else:
        set_seed(cfg.seed, device_specific=True)  # different noise per rank from here on
    cfg = with_shared_cache(cfg, family, world)
    loader, encoder = build_batches(cfg, family, weight_dtype, accelerator.process_index, world)
    if cfg.data.source == "latent_cache":
        family.release_encoders()  # steps read latents and embeddings from the cache
    guard = NonFiniteGuard(tr.nonfinite, tr.max_consecutive_nonfinite)
    guard.skipped = resumed.get("nonfinite_skipped", 0)
    step = TrainStep(accelerator, encoder, adapter, prepared, optimizer, lr_scheduler, solver, objective_spec(cfg),
                     cfg.optim.max_grad_norm, guard, sync_every_step=perf.sync_every_step,
                     autocast_like_reference=perf.reference_autocast, cudnn_benchmark=perf.cudnn_benchmark,
                     global_step=resumed.get("global_step", 0))  # fmt: skip
    return Run(cfg, accelerator, family, adapter, networks, step, loader, global_batch, lr, resumed)
