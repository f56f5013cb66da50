"""The training loop: accelerate, data, optimizer, checkpoints, validation, export.

Everything family- or adapter-specific is behind ``ModelFamily`` and ``StudentAdapter``; the LCD math is one
call to ``distill_step``. The loss is read back from the device only at log intervals; the one per-step read is
the non-finite guard's flag, so a bad batch is skipped before its backward.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, gather_object, set_seed
from tqdm.auto import tqdm

from lcm_exp.adapters import build_adapter
from lcm_exp.hub import push_after_training
from lcm_exp.models.attention import apply_attention_backend
from lcm_exp.models.registry import get_family
from lcm_exp.objective import distill_step
from lcm_exp.perf.adapter import PerfAdapter
from lcm_exp.perf.components import build_optimizer, build_solver, loss_from_config, objective_spec
from lcm_exp.perf.modules import compile_unets, configure_unets, distinct, teacher_in_fp32
from lcm_exp.runlog.metrics import MetricsFile
from lcm_exp.runlog.trackers import close_trackers, init_trackers, tracker_names
from lcm_exp.train.checkpoint import find_resume_checkpoint, load_checkpoint, save_checkpoint
from lcm_exp.train.data import build_batches
from lcm_exp.train.export import export_model
from lcm_exp.train.nonfinite import NonFiniteGuard
from lcm_exp.train.optim import build_scheduler
from lcm_exp.train.preemption import Preempted, PreemptionFlag
from lcm_exp.train.skip_monitor import SkipMonitor
from lcm_exp.train.validation import Validator

log = logging.getLogger(__name__)

DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def train(cfg, run_dir: Path) -> dict:
    """Run the distillation described by ``cfg`` (a RunConfig) in ``run_dir``; return the final metrics."""
    tr = cfg.trainer
    accelerator = Accelerator(
        mixed_precision=tr.mixed_precision,
        gradient_accumulation_steps=tr.gradient_accumulation_steps,
        log_with=tracker_names(cfg.logger) or None,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
    )
    if tr.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    weight_dtype = DTYPES[tr.mixed_precision]
    set_seed(cfg.seed)  # identical model init on every rank

    perf = cfg.perf
    family = get_family(cfg.model.family)(cfg.model, device=accelerator.device, weight_dtype=weight_dtype)
    if not perf.frozen_weights_in_compute_dtype:
        teacher_in_fp32(family)
    adapter = PerfAdapter(build_adapter(cfg.adapter, family, tr.gradient_checkpointing), perf, weight_dtype)
    unets = distinct([family.unet, *adapter.unets()])
    configure_unets(unets, perf)
    apply_attention_backend(cfg.model.attention, family, adapter)
    solver = build_solver(family.alphas_cumprod, cfg.objective.num_ddim_timesteps, accelerator.device, perf)
    spec = objective_spec(family.prediction_type, loss_from_config(cfg.loss), cfg.guidance, cfg.objective, perf)

    world = accelerator.num_processes
    global_batch = tr.batch_size * world * tr.gradient_accumulation_steps
    lr = cfg.optim.lr * global_batch if cfg.optim.scale_lr else cfg.optim.lr
    optimizer = build_optimizer(cfg.optim, adapter.trainable_parameters(), lr, perf)
    scheduler = build_scheduler(cfg.optim, optimizer, tr.max_train_steps, world)
    prepared, optimizer, scheduler = accelerator.prepare(adapter.trainable_module, optimizer, scheduler)
    adapter.bind(prepared)

    ckpt_root = run_dir / "checkpoints"
    resumed: dict = {}
    resume = find_resume_checkpoint(ckpt_root, tr.resume_from_checkpoint)
    if resume is not None:
        resumed = load_checkpoint(accelerator, resume, adapter.checkpoint_state)
        log.info("resumed from %s at step %d", resume, resumed["global_step"])
    else:
        set_seed(cfg.seed, device_specific=True)  # different noise per rank from here on

    loader, encoder = build_batches(cfg, family, weight_dtype, accelerator.process_index, world)
    if perf.compile:
        compile_unets(unets)
    start_step, consumed_batches = resumed.get("global_step", 0), resumed.get("consumed_batches", 0)
    batches = _skip(iter(_forever(loader)), consumed_batches)

    validator = Validator(cfg.validation, cfg.objective, family, adapter, run_dir, accelerator)
    metrics_file = MetricsFile(run_dir, start_step) if accelerator.is_main_process else None
    init_trackers(accelerator, cfg, {"global_batch_size": global_batch, "lr": lr})
    skips = SkipMonitor(cfg.data.max_skip_fraction)
    log.info(
        "batch: %d per process x %d processes x %d accumulation = %d global; lr %.3g%s",
        tr.batch_size, world, tr.gradient_accumulation_steps, global_batch, lr,
        " (scaled by the global batch)" if cfg.optim.scale_lr else "",
    )  # fmt: skip

    step = start_step
    window = _Window(accelerator.device)
    guard = NonFiniteGuard(tr.nonfinite, tr.max_consecutive_nonfinite)
    guard.skipped = resumed.get("nonfinite_skipped", 0)
    bar = tqdm(total=tr.max_train_steps, initial=start_step, desc="distill", disable=not accelerator.is_main_process,
               dynamic_ncols=True)
    last_logged: dict = {}

    def checkpoint() -> Path:
        state = {"global_step": step, "consumed_batches": consumed_batches, "nonfinite_skipped": guard.skipped}
        return save_checkpoint(accelerator, ckpt_root, step, state, adapter.checkpoint_state,
                               tr.checkpoints_total_limit)

    t_window = time.perf_counter()
    failed = True
    try:
        with PreemptionFlag() as preemption:
            while step < tr.max_train_steps:
                with accelerator.accumulate(prepared):
                    batch = next(batches)
                    consumed_batches += 1
                    skips.update(batch)
                    latents = encoder.latents(batch)
                    cond, uncond = encoder.conditioning(batch)
                    with accelerator.autocast():
                        out = distill_step(latents, cond, uncond, adapter.distill_models(), solver, spec, generator=None)
                    if not guard.check(out, step + 1, _all_ranks(accelerator, torch.isfinite(out.loss))):
                        optimizer.zero_grad(set_to_none=True)
                        continue
                    accelerator.backward(out.loss)
                    grad_norm = None
                    if accelerator.sync_gradients:
                        grad_norm = accelerator.clip_grad_norm_(adapter.trainable_parameters(), cfg.optim.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                window.add(out, grad_norm, len(batch["captions"]))
                if perf.sync_every_step:  # reference parity: the loss read back every step
                    out.loss.item()
                if not accelerator.sync_gradients:
                    continue
                adapter.after_optimizer_step()
                step += 1
                bar.update(1)

                if step % tr.log_every_n_steps == 0 or step == tr.max_train_steps:
                    elapsed = time.perf_counter() - t_window
                    row = window.flush(step, elapsed, scheduler.get_last_lr()[0], world) | skips.summary()
                    row["nonfinite_skipped"] = guard.skipped
                    t_window = time.perf_counter()
                    bar.set_postfix(loss=f"{row['loss']:.4g}", samples_s=f"{row['samples_per_s']:.1f}")
                    if metrics_file:
                        metrics_file.write(row)
                    accelerator.log(row, step=step)
                    last_logged = row
                if not _all_ranks(accelerator, preemption.requested is None):
                    raise Preempted(step, checkpoint())
                if step % tr.checkpointing_steps == 0 and step < tr.max_train_steps:
                    checkpoint()
                if cfg.validation.every_n_steps and step % cfg.validation.every_n_steps == 0 and step < tr.max_train_steps:
                    validator.run(step)
        checkpoint()
        result = {"final_loss": last_logged.get("loss"), "steps": step, "nonfinite_skipped": guard.skipped,
                  **skips.summary()}
        if world > 1:
            result["ranks_in_sync"] = _ranks_in_sync(accelerator, adapter.trainable_parameters())
        if cfg.validation.at_end:
            result["validation_dir"] = str(validator.run(step))
        if cfg.export.enabled and accelerator.is_main_process:
            result["model_dir"] = str(export_model(cfg, family, adapter, run_dir))
            result.update(push_after_training(cfg.export, result["model_dir"]))
        accelerator.wait_for_everyone()
        failed = False
        return result
    finally:  # trackers and files are closed whatever happened (failed, preempted, completed)
        bar.close()
        if metrics_file:
            metrics_file.close()
        close_trackers(accelerator, failed)


def _all_ranks(accelerator, flag: torch.Tensor | bool) -> bool:
    """True when ``flag`` holds on every process (a collective only under DDP, so all ranks take the same branch)."""
    if accelerator.num_processes == 1:
        return bool(flag)
    flag = torch.as_tensor(flag, dtype=torch.float32, device=accelerator.device)
    return bool(accelerator.reduce(flag, reduction="sum") >= accelerator.num_processes)


def _ranks_in_sync(accelerator, params) -> bool:
    """Whether every process ends with bitwise the same trained weights (a DDP desync check)."""
    digest = hashlib.sha256()
    for p in params:
        digest.update(p.detach().float().cpu().numpy().tobytes())
    digests = gather_object([digest.hexdigest()])
    in_sync = len(set(digests)) == 1
    if not in_sync:
        log.error("trained weights differ across processes: %s", digests)
    return in_sync


def _forever(loader):
    """Finite (epoch) loaders restart with the next epoch; resampled ones never end."""
    while True:
        yield from loader


def _skip(it, n: int):
    """Resume: drop the batches a checkpointed run already consumed, so the sample stream continues exactly."""
    for _ in range(n):
        next(it)
    return it


class _Window:
    """Per-log-interval accumulators kept on the device; one host sync when flushed."""

    def __init__(self, device):
        self.device = device
        self.reset()

    def reset(self):
        self.loss = torch.zeros((), device=self.device)
        self.w = torch.zeros((), device=self.device)
        self.t = torch.zeros((), device=self.device)
        self.grad_norm = torch.zeros((), device=self.device)
        self.micro, self.opt_steps, self.samples = 0, 0, 0

    def add(self, out, grad_norm, batch_size: int):
        self.loss += out.loss.detach().float()
        self.w += out.w.detach().float().mean()
        self.t += out.start_timesteps.detach().float().mean()
        if grad_norm is not None:
            self.grad_norm += torch.as_tensor(grad_norm, device=self.device).float()
            self.opt_steps += 1
        self.micro += 1
        self.samples += batch_size

    def flush(self, step: int, elapsed: float, lr: float, world: int) -> dict:
        n = max(self.micro, 1)
        row = {
            "step": step,
            "loss": (self.loss / n).item(),
            "w_mean": (self.w / n).item(),
            "t_start_mean": (self.t / n).item(),
            "grad_norm": (self.grad_norm / max(self.opt_steps, 1)).item(),
            "lr": lr,
            "samples_per_s": self.samples * world / max(elapsed, 1e-9),
        }
        self.reset()
        return row
