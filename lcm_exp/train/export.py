"""Export the student into ``<run dir>/model/``: diffusers-loadable weights, its inference scheduler, a model card.

full -> ``model/unet/`` (UNet2DConditionModel.from_pretrained), plus the fp16 variant with ``export.fp16_variant``;
lora -> ``model/pytorch_lora_weights.safetensors`` (pipe.load_lora_weights(model_dir)). ``model/scheduler/`` holds
the objective's scheduler for the teacher's schedule (LCD: the LCMScheduler matching the training grid). The card's
per-adapter text (guidance, steps, snippet) comes from the adapter; the folder is what ``python -m lcm_exp.hub``
uploads and ``python -m lcm_exp.generate`` loads.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from lcm_exp.train.components import inference_scheduler, objective_from_config

CARD = """---
library_name: diffusers
{base_model}pipeline_tag: text-to-image
tags: [latent-consistency-model, lcm, lcm_exp, {adapter}]
---
# LCM {adapter} student of `{teacher}`

Distilled with lcm_exp (consistency distillation, objective `{objective_name}`), {steps} optimizer steps.

| setting | value |
|---|---|
| teacher | `{teacher}` (revision `{revision}`) |
| family / adapter | {family} / {adapter} |
| files | {files} |
| loss | {loss} |
| guidance range (LCM-paper w) | w in [{w_min}, {w_max}], i.e. diffusers guidance_scale in [{g_min}, {g_max}] |
| objective | {objective} |
| DDIM grid | N = {num_ddim} (the scheduler's `original_inference_steps`) |
| resolution | {resolution} |

## Guidance convention

Training used the LCM paper's w: guided = (1 + w) * cond - w * uncond. diffusers' `guidance_scale` is w + 1
(guidance_scale = 1 means w = 0, no guidance). {guidance_note}

## Recommended inference

{steps_lo}-{steps_hi} steps ({recommended_steps} is a good default), `guidance_scale={guidance_scale}`, with the
{scheduler} saved in `scheduler/`.{sampling_note}{variant_note}

```python
{snippet}
```
"""

FP16_NOTE = """

`unet/` holds fp32 weights and an fp16 variant (`diffusion_pytorch_model.fp16.safetensors`): load the fp16 one with
`variant="fp16", torch_dtype=torch.float16` (as below), the fp32 one without `variant`."""


def export_model(cfg, family, adapter, run_dir: Path) -> Path:
    """Write the model folder atomically (temp dir + rename); returns its path."""
    final = Path(run_dir) / "model"
    tmp = Path(run_dir) / ".model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files = adapter.export(tmp, family.pipeline_class, fp16_variant=cfg.export.fp16_variant)
    scheduler = inference_scheduler(cfg, family)
    scheduler.save_pretrained(tmp / "scheduler")
    card = model_card(cfg, family, adapter, type(scheduler).__name__, model_ref(cfg, final), files)
    (tmp / "README.md").write_text(card)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def model_ref(cfg, model_dir: Path) -> str:
    """What the card's snippet loads: the hub repo when the run uploads there, else the local folder."""
    if cfg.export.push_to_hub and cfg.export.hub_model_id:
        return cfg.export.hub_model_id
    return str(Path(model_dir).resolve())


def parameters(node) -> str:
    """``name (key=value, ...)`` of a config node with a ``name`` and its parameters (a loss, an objective)."""
    values = {k: v for k, v in dataclasses.asdict(node).items() if k != "name"}
    return node.name + (f" ({', '.join(f'{k}={v}' for k, v in values.items())})" if values else "")


def model_card(cfg, family, adapter, scheduler: str, model_ref: str, files: list[str]) -> str:
    teacher = str(cfg.model.teacher)
    fp16 = cfg.export.fp16_variant
    objective = objective_from_config(cfg.objective)
    call_kwargs = "".join(f", {k}={v!r}" for k, v in objective.sampling_kwargs().items())
    snippet = adapter.usage_code(family.pipeline_class.__name__, teacher, model_ref, scheduler, fp16_variant=fp16,
                                 call_kwargs=call_kwargs)  # fmt: skip
    family_kwargs = "".join(f"{k}={v!r}, " for k, v in family.pipeline_call_kwargs(cfg.model).items())
    snippet = snippet.replace("num_inference_steps=", family_kwargs + "num_inference_steps=")  # SD3: the T5 length
    sampling_note = objective.sampling_note(cfg.objective.num_ddim_timesteps)
    # The Hub rejects a card whose base_model is not a hub id, so a local teacher folder is named in the text only.
    base_model = "" if Path(teacher).expanduser().exists() else f"base_model: {teacher}\n"
    return CARD.format(
        base_model=base_model, teacher=teacher, revision=cfg.model.revision, family=cfg.model.family,
        adapter=cfg.adapter.name, files=", ".join(f"`{f}`" for f in files),
        loss=parameters(cfg.loss), objective=parameters(cfg.objective), scheduler=scheduler,
        objective_name=cfg.objective.name,
        w_min=cfg.guidance.w_min, w_max=cfg.guidance.w_max, g_min=cfg.guidance.w_min + 1, g_max=cfg.guidance.w_max + 1,
        num_ddim=cfg.objective.num_ddim_timesteps, resolution=cfg.model.resolution, steps=cfg.trainer.max_train_steps,
        guidance_note=adapter.guidance_note, steps_lo=adapter.steps_range[0], steps_hi=adapter.steps_range[1],
        recommended_steps=adapter.recommended_steps, guidance_scale=adapter.recommended_guidance_scale,
        variant_note=FP16_NOTE if fp16 else "", snippet=snippet,
        sampling_note=f" {sampling_note}" if sampling_note else "",
    )  # fmt: skip


def load_exported_scheduler(model_dir: Path):
    """The inference scheduler saved in ``<model dir>/scheduler``, as the class its config names (LCMScheduler,
    TCDScheduler, ...), so every reader samples the student the way its objective exported it."""
    import json

    import diffusers

    folder = Path(model_dir) / "scheduler"
    name = json.loads((folder / "scheduler_config.json").read_text())["_class_name"]
    return getattr(diffusers, name).from_pretrained(folder)
