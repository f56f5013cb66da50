"""The training loop: accelerate, data, optimizer, checkpoints, validation, export.

Everything family- or adapter-specific is behind ``ModelFamily`` and ``StudentAdapter``; the LCD math is one
call to ``distill_step``. The loss is read back from the device only at log intervals (no per-step host sync).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from tqdm.auto import tqdm

from lcm_exp.adapters import build_adapter
from lcm_exp.train.data import data_spec_from_config
from lcm_exp.data.webdataset_pipeline import build_dataloader
from lcm_exp.models.registry import get_family
from lcm_exp.objective import DDIMSolver, ObjectiveSpec, build_loss, distill_step
from lcm_exp.runlog.metrics import MetricsFile
from lcm_exp.runlog.trackers import init_trackers, tracker_names
from lcm_exp.train.checkpoint import find_resume_checkpoint, read_trainer_state, save_checkpoint
from lcm_exp.train.export import export_model
from lcm_exp.train.optim import build_optimizer, build_scheduler
from lcm_exp.train.skip_monitor import SkipMonitor
from lcm_exp.train.validation import Validator

log = logging.getLogger(__name__)

DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def loss_from_config(loss_cfg):
    params = {k: v for k, v in asdict(loss_cfg).items() if k != "name"}
    return build_loss(loss_cfg.name, **params)


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

    family = get_family(cfg.model.family)(cfg.model, device=accelerator.device, weight_dtype=weight_dtype)
    adapter = build_adapter(cfg.adapter, family, gradient_checkpointing=tr.gradient_checkpointing)
    solver = DDIMSolver(family.alphas_cumprod, cfg.objective.num_ddim_timesteps, device=accelerator.device)
    spec = ObjectiveSpec(
        prediction_type=family.prediction_type,
        loss=loss_from_config(cfg.loss),
        w_min=cfg.guidance.w_min,
        w_max=cfg.guidance.w_max,
        sigma_data=cfg.objective.sigma_data,
        timestep_scaling=cfg.objective.timestep_scaling_factor,
    )

    world = accelerator.num_processes
    global_batch = tr.batch_size * world * tr.gradient_accumulation_steps
    lr = cfg.optim.lr * global_batch if cfg.optim.scale_lr else cfg.optim.lr
    optimizer = build_optimizer(cfg.optim, adapter.trainable_parameters(), lr)
    scheduler = build_scheduler(cfg.optim, optimizer, tr.max_train_steps, world)
    prepared, optimizer, scheduler = accelerator.prepare(adapter.trainable_module, optimizer, scheduler)
    adapter.bind(prepared)
    for state in adapter.checkpoint_state:
        accelerator.register_for_checkpointing(state)

    ckpt_root = run_dir / "checkpoints"
    start_step, consumed_batches = 0, 0
    resume = find_resume_checkpoint(ckpt_root, tr.resume_from_checkpoint)
    if resume is not None:
        accelerator.load_state(str(resume))
        state = read_trainer_state(resume)
        start_step, consumed_batches = state["global_step"], state["consumed_batches"]
        log.info("resumed from %s at step %d", resume, start_step)
    else:
        set_seed(cfg.seed, device_specific=True)  # different noise per rank from here on

    data_spec = data_spec_from_config(cfg.data)
    loader = build_dataloader(
        data_spec, resolution=cfg.model.resolution, batch_size=tr.batch_size, seed=cfg.seed,
        rank=accelerator.process_index, world_size=world,
    )  # fmt: skip
    batches = _skip(iter(_forever(loader)), consumed_batches)

    validator = Validator(cfg.validation, cfg.objective, family, adapter, run_dir, accelerator)
    metrics_file = MetricsFile(run_dir, start_step) if accelerator.is_main_process else None
    init_trackers(accelerator, cfg.logger, cfg.name, {"global_batch_size": global_batch, "lr": lr})
    skips = SkipMonitor(cfg.data.max_skip_fraction)
    log.info(
        "batch: %d per process x %d processes x %d accumulation = %d global; lr %.3g%s",
        tr.batch_size, world, tr.gradient_accumulation_steps, global_batch, lr,
        " (scaled by the global batch)" if cfg.optim.scale_lr else "",
    )  # fmt: skip

    step = start_step
    window = _Window(accelerator.device)
    bar = tqdm(total=tr.max_train_steps, initial=start_step, desc="distill", disable=not accelerator.is_main_process,
               dynamic_ncols=True)
    last_logged: dict = {}
    t_window = time.perf_counter()
    while step < tr.max_train_steps:
        with accelerator.accumulate(prepared):
            batch = next(batches)
            consumed_batches += 1
            skips.update(batch)
            with torch.no_grad():
                latents = family.encode_images(batch["pixel_values"]).to(weight_dtype)
                cond = family.encode_text(batch)
                uncond = family.unconditional(cond)
            with accelerator.autocast():
                out = distill_step(latents, cond, uncond, adapter.distill_models(), solver, spec, generator=None)
            accelerator.backward(out.loss)
            grad_norm = None
            if accelerator.sync_gradients:
                grad_norm = accelerator.clip_grad_norm_(adapter.trainable_parameters(), cfg.optim.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        window.add(out, grad_norm, len(batch["captions"]))
        if not accelerator.sync_gradients:
            continue
        adapter.after_optimizer_step()
        step += 1
        bar.update(1)

        if step % tr.log_every_n_steps == 0 or step == tr.max_train_steps:
            elapsed = time.perf_counter() - t_window
            row = window.flush(step, elapsed, scheduler.get_last_lr()[0], world) | skips.summary()
            t_window = time.perf_counter()
            if not math.isfinite(row["loss"]):
                raise FloatingPointError(f"non-finite loss {row['loss']} at step {step}: {row}")
            bar.set_postfix(loss=f"{row['loss']:.4g}", samples_s=f"{row['samples_per_s']:.1f}")
            if metrics_file:
                metrics_file.write(row)
            accelerator.log(row, step=step)
            last_logged = row
        if step % tr.checkpointing_steps == 0 and step < tr.max_train_steps:
            save_checkpoint(accelerator, ckpt_root, step, {"global_step": step, "consumed_batches": consumed_batches},
                            tr.checkpoints_total_limit)
        if cfg.validation.every_n_steps and step % cfg.validation.every_n_steps == 0 and step < tr.max_train_steps:
            validator.run(step)
    bar.close()

    save_checkpoint(accelerator, ckpt_root, step, {"global_step": step, "consumed_batches": consumed_batches},
                    tr.checkpoints_total_limit)
    result = {"final_loss": last_logged.get("loss"), "steps": step, **skips.summary()}
    if cfg.validation.at_end:
        result["validation_dir"] = str(validator.run(step))
    if cfg.export.enabled and accelerator.is_main_process:
        result["model_dir"] = str(export_model(cfg, family, adapter, run_dir))
    accelerator.wait_for_everyone()
    if metrics_file:
        metrics_file.close()
    accelerator.end_training()
    return result


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
