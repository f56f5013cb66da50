"""Few-step validation images: a pipeline with the student's inference scheduler, assembled once from the
in-memory components.

No reload from disk and no safety checker (unlike the reference); every chosen tracker gets the grids. A
latent-cache run has released its VAE and text encoders: they are loaded for the validation and released after.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from PIL import Image

from lcm_exp.models.attention import vae_decode_mode
from lcm_exp.models.family import guidance_call_kwargs
from lcm_exp.runlog.trackers import log_images

log = logging.getLogger(__name__)


@torch.no_grad()
def decode_latents(family, latents: torch.Tensor) -> list[Image.Image]:
    """Decode in the VAE's own dtype (it may differ from the UNet's, which the pipelines do not handle)."""
    x = family.decode(latents)
    x = ((x.float() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a) for a in x]


def image_grid(images: list[Image.Image], cols: int) -> Image.Image:
    rows = (len(images) + cols - 1) // cols
    w, h = images[0].size
    grid = Image.new("RGB", (cols * w, rows * h), "white")
    for i, im in enumerate(images):
        grid.paste(im, ((i % cols) * w, (i // cols) * h))
    return grid


class Validator:
    def __init__(self, cfg, scheduler, family, adapter, run_dir: Path, accelerator):
        self.cfg, self.family, self.adapter, self.accelerator = cfg, family, adapter, accelerator
        self.out_root = Path(run_dir) / "validation"
        self.scheduler = scheduler

    def guidance_scale(self) -> float:
        chosen = self.cfg.guidance_scale
        return chosen if chosen is not None else self.adapter.recommended_guidance_scale

    @torch.no_grad()
    def run(self, step: int) -> Path:
        """Write one grid per step count (rows: prompts x seeds) under validation/step-<step>/ (rank 0 only)."""
        out = self.out_root / f"step-{step:06d}"
        if not self.accelerator.is_main_process:
            self.accelerator.wait_for_everyone()
            return out
        out.mkdir(parents=True, exist_ok=True)
        with self.family.encoders() as family, self.adapter.inference_denoiser() as net:
            decode_mode = vae_decode_mode(family.vae, slicing=self.cfg.vae_slicing, tiling=self.cfg.vae_tiling)
            was_training = net.training
            net.eval()
            pipeline = family.build_pipeline(net, self.scheduler)
            pipeline.set_progress_bar_config(disable=True)
            with decode_mode, self._autocast(net):
                self._grids(pipeline, out, step)
            net.train(was_training)
        log.info("validation images: %s", out)
        self.accelerator.wait_for_everyone()
        return out

    def _autocast(self, net):
        """The run's autocast, or, when the frozen networks run in a lower dtype than the student (bf16 text encoders
        beside an fp32 student), autocast to that dtype so the pipeline's tensors meet."""
        frozen, device = self.family.weight_dtype, self.accelerator.device
        if next(net.parameters()).dtype != frozen and self.accelerator.mixed_precision == "no":
            return torch.autocast(device.type, dtype=frozen)
        return self.accelerator.autocast()

    def _grids(self, pipeline, out: Path, step: int) -> None:
        res = self.family.cfg.resolution
        for n in self.cfg.num_inference_steps:
            images = []
            for prompt in self.cfg.prompts:
                for seed in self.cfg.seeds:
                    generator = torch.Generator(self.accelerator.device).manual_seed(seed)
                    latents = pipeline(
                        prompt, num_inference_steps=n, height=res, width=res, generator=generator,
                        output_type="latent", **self.family.pipeline_call_kwargs(self.family.cfg),
                        **guidance_call_kwargs(getattr(pipeline, self.family.denoiser_component),
                                               self.guidance_scale()),
                    ).images  # fmt: skip
                    images += decode_latents(self.family, latents)
            grid = image_grid(images, cols=len(self.cfg.seeds))
            grid.save(out / f"{n}-steps.png")
            log_images(self.accelerator, f"validation/{n}_steps", [grid], step)
