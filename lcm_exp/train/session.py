"""What a run does around its steps: the data position, bad-sample accounting, log windows (metrics.jsonl,
trackers, the progress bar), checkpoints, validation, preemption, and the end of training (export, upload).

The loss is read back from the device only at log intervals; the step's one per-step host read is the non-finite
guard's flag, so a bad batch is skipped before its backward.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from lcm_exp.runlog.metrics import MetricsFile
from lcm_exp.runlog.trackers import close_trackers, init_trackers
from lcm_exp.train.build import Run
from lcm_exp.train.checkpoint import save_checkpoint
from lcm_exp.train.components import inference_scheduler
from lcm_exp.train.export import export_model
from lcm_exp.train.hooks import HookFactory
from lcm_exp.train.preemption import Preempted
from lcm_exp.train.skip_monitor import SkipMonitor
from lcm_exp.train.step import StepResult, all_ranks
from lcm_exp.train.upload import push_after_training
from lcm_exp.train.validation import Validator

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"


class Session:
    def __init__(self, run: Run, run_dir: Path, hooks: Sequence[HookFactory] = ()):
        self.run, self.cfg, self.run_dir = run, run.cfg, Path(run_dir)
        acc, tr = run.accelerator, run.cfg.trainer
        self.step = run.step.global_step
        self.consumed = run.resumed.get("consumed_batches", 0)
        self._batches = run.batches(skip=self.consumed)
        self.skips = SkipMonitor(self.cfg.data.max_skip_fraction)
        if "skips" in run.resumed:  # the counters continue, so the fraction guard does not restart on a resume
            self.skips.load_state_dict(run.resumed["skips"])
        self.validator = Validator(self.cfg.validation, inference_scheduler(self.cfg, run.family), run.family,
                                   run.adapter, run_dir, acc)  # fmt: skip
        self.metrics = MetricsFile(run_dir, self.step) if acc.is_main_process else None
        self.hooks = [h for h in (make(run, self.run_dir, self.metrics, self.step) for make in hooks) if h is not None]
        init_trackers(acc, self.cfg, {"global_batch_size": run.global_batch, "lr": run.lr})
        log.info(
            "batch: %d per process x %d processes x %d accumulation = %d global; lr %.3g%s",
            tr.batch_size, acc.num_processes, tr.gradient_accumulation_steps, run.global_batch, run.lr,
            " (scaled by the global batch)" if self.cfg.optim.scale_lr else "",
        )  # fmt: skip
        self.window = _Window(acc.device)
        self.bar = tqdm(total=tr.max_train_steps, initial=self.step, desc="distill", dynamic_ncols=True,
                        disable=not acc.is_main_process)  # fmt: skip
        self.last_logged: dict = {}
        self._t_window = time.perf_counter()
        self._failed = True

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> bool:
        """Trackers and files are closed whatever happened (failed, preempted, completed)."""
        self.bar.close()
        if self.metrics:
            self.metrics.close()
        close_trackers(self.run.accelerator, self._failed)
        return False

    def next_batch(self) -> dict:
        batch = next(self._batches)
        self.consumed += 1
        self.skips.update(batch)
        return batch

    def record(self, result: StepResult, batch: dict) -> bool:
        """Account one micro-batch; True when it completed an optimizer update (the step advanced)."""
        if result.finite:
            self.window.add(result.out, result.grad_norm, len(batch["captions"]))
        if not result.updated:
            return False
        self.step += 1
        self.bar.update(1)
        tr = self.cfg.trainer
        if self.step % tr.log_every_n_steps == 0 or self.step == tr.max_train_steps:
            self._log()
        return True

    def _log(self) -> None:
        acc, step = self.run.accelerator, self.run.step
        elapsed = time.perf_counter() - self._t_window
        row = self.window.flush(self.step, elapsed, step.lr_scheduler.get_last_lr()[0], acc.num_processes)
        row |= self.skips.summary() | {"nonfinite_skipped": step.guard.skipped}
        self._t_window = time.perf_counter()
        self.bar.set_postfix(loss=f"{row['loss']:.4g}", samples_s=f"{row['samples_per_s']:.1f}")
        if self.metrics:
            self.metrics.write(row)
        acc.log(row, step=self.step)
        self.last_logged = row

    def after_update(self, preemption) -> None:
        """Preempt (checkpoint and stop), checkpoint or validate when their step comes."""
        tr, val = self.cfg.trainer, self.cfg.validation
        if not all_ranks(self.run.accelerator, preemption.requested is None):
            raise Preempted(self.step, self.checkpoint())
        before_end = self.step < tr.max_train_steps
        if self.step % tr.checkpointing_steps == 0 and before_end:
            self.checkpoint()
        if val.every_n_steps and self.step % val.every_n_steps == 0 and before_end:
            self.validator.run(self.step)
        for hook in self.hooks:
            hook.after_update(self.step)

    def checkpoint(self) -> Path:
        run = self.run
        state = {"global_step": self.step, "consumed_batches": self.consumed,
                 "nonfinite_skipped": run.step.guard.skipped, "skips": self.skips.state_dict()}  # fmt: skip
        return save_checkpoint(run.accelerator, self.run_dir / CHECKPOINTS, self.step, state,
                               run.adapter.checkpoint_state, self.cfg.trainer.checkpoints_total_limit)  # fmt: skip

    def finish(self) -> dict:
        """The final checkpoint, validation, export and upload; returns the run's result."""
        run, cfg = self.run, self.cfg
        self.checkpoint()
        result = {"final_loss": self.last_logged.get("loss"), "steps": self.step,
                  "nonfinite_skipped": run.step.guard.skipped, **self.skips.summary()}  # fmt: skip
        if run.accelerator.num_processes > 1:
            result["ranks_in_sync"] = _ranks_in_sync(run.adapter.trainable_parameters())
        for hook in self.hooks:
            result.update(hook.finish(self.step))
        if cfg.validation.at_end:
            result["validation_dir"] = str(self.validator.run(self.step))
        if cfg.export.enabled and run.accelerator.is_main_process:
            result["model_dir"] = str(export_model(cfg, run.family, run.adapter, self.run_dir))
            result.update(push_after_training(cfg.export, result["model_dir"]))
        run.accelerator.wait_for_everyone()
        self._failed = False
        return result


def _ranks_in_sync(params) -> bool:
    """Whether every process ends with bitwise the same trained weights (a DDP desync check)."""
    digest = hashlib.sha256()
    for p in params:
        digest.update(p.detach().float().cpu().numpy().tobytes())
    digests = gather_object([digest.hexdigest()])
    in_sync = len(set(digests)) == 1
    if not in_sync:
        log.error("trained weights differ across processes: %s", digests)
    return in_sync


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
