"""Export the student into ``<run dir>/model/``: diffusers-loadable weights, the LCMScheduler config, a model card.

full -> ``model/unet/`` (UNet2DConditionModel.from_pretrained); lora -> ``model/pytorch_lora_weights.safetensors``
(pipe.load_lora_weights(model_dir)). ``model/scheduler/`` holds the LCMScheduler matching the training grid.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lcm_exp.train.validation import lcm_scheduler

CARD = """---
library_name: diffusers
base_model: {teacher}
tags: [latent-consistency-model, lcm, lcm_exp, {adapter}]
---
# LCM {adapter} student of `{teacher}`

Distilled with [lcm_exp](https://github.com/) (Latent Consistency Distillation), {steps} optimizer steps.

| setting | value |
|---|---|
| teacher | `{teacher}` (revision `{revision}`) |
| family / adapter | {family} / {adapter} |
| loss | {loss} |
| guidance range (LCM-paper w) | w in [{w_min}, {w_max}] |
| DDIM grid | N = {num_ddim} (LCMScheduler `original_inference_steps`) |
| resolution | {resolution} |

**Guidance convention.** Training used the LCM paper's w: guided = (1 + w) * cond - w * uncond. diffusers'
`guidance_scale` is w + 1. {guidance_note}

**Recommended inference:** 2-8 steps (4 is a good default), `guidance_scale={guidance_scale}`.

```python
{snippet}
```
"""

FULL_SNIPPET = """import torch
from diffusers import {pipeline}, LCMScheduler, UNet2DConditionModel

unet = UNet2DConditionModel.from_pretrained("{model_dir}", subfolder="unet")
pipe = {pipeline}.from_pretrained("{teacher}", unet=unet)
pipe.scheduler = LCMScheduler.from_pretrained("{model_dir}", subfolder="scheduler")
image = pipe("a photo of a cat", num_inference_steps=4, guidance_scale={guidance_scale}).images[0]"""

LORA_SNIPPET = """import torch
from diffusers import {pipeline}, LCMScheduler

pipe = {pipeline}.from_pretrained("{teacher}")
pipe.load_lora_weights("{model_dir}")
pipe.scheduler = LCMScheduler.from_pretrained("{model_dir}", subfolder="scheduler")
image = pipe("a photo of a cat", num_inference_steps=4, guidance_scale={guidance_scale}).images[0]"""

GUIDANCE_NOTES = {
    "full": "The student embeds w itself (UNet `time_cond_proj_dim`), so the pipeline runs no separate CFG pass; "
    "any guidance_scale with w = guidance_scale - 1 inside the trained range works.",
    "lora": "A plain LCD LoRA learned a w-averaged map and is used without CFG (guidance_scale 1.0); values "
    "slightly above 1 add ordinary CFG on top.",
}


def export_model(cfg, family, adapter, run_dir: Path) -> Path:
    """Write the model folder atomically (temp dir + rename); returns its path."""
    final = Path(run_dir) / "model"
    tmp = Path(run_dir) / ".model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    adapter.export(tmp, family.pipeline_class)
    lcm_scheduler(family.noise_scheduler.config, cfg.objective).save_pretrained(tmp / "scheduler")
    (tmp / "README.md").write_text(model_card(cfg, family, adapter, final))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def model_card(cfg, family, adapter, model_dir: Path) -> str:
    name = cfg.adapter.name
    fmt = dict(pipeline=family.pipeline_class.__name__, model_dir=str(model_dir), teacher=cfg.model.teacher,
               guidance_scale=adapter.recommended_guidance_scale)
    snippet = (FULL_SNIPPET if name == "full" else LORA_SNIPPET).format(**fmt)
    return CARD.format(
        teacher=cfg.model.teacher, revision=cfg.model.revision, family=cfg.model.family, adapter=name,
        loss=cfg.loss.name + (f" (huber_c={cfg.loss.huber_c})" if cfg.loss.name == "huber" else ""),
        w_min=cfg.guidance.w_min, w_max=cfg.guidance.w_max, num_ddim=cfg.objective.num_ddim_timesteps,
        resolution=cfg.model.resolution, steps=cfg.trainer.max_train_steps, guidance_note=GUIDANCE_NOTES[name],
        guidance_scale=adapter.recommended_guidance_scale, snippet=snippet,
    )  # fmt: skip
