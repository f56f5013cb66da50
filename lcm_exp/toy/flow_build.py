"""Build (once) and cache the toy flow teacher: a real StableDiffusion3Pipeline folder over the toy world.

It reuses the toy UNet teacher's build (``ensure_toy_teacher``, cached; built first if missing) for everything
that is not the denoiser: its VAE (8 x 8 x 4 latents, no shift factor), its CLIP tokenizer and text encoder (the
CLIP-L slot), its attribute classifier and world description (so the evaluation judges both teachers alike). New
here: a second CLIP, a T5 encoder and tokenizer (toy_sd3 text), and the SD3 transformer trained with rectified flow
on the same training images (flow_teacher.py). Same guarantees as the toy UNet teacher: seeded, written to a temp
dir and renamed into place, the same seed and recipe give the same files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from lcm_exp.toy.build import (
    CLASSIFIER_DIR,
    DEFAULT_RECIPE,
    WORLD_FILE,
    ToyRecipe,
    build_once,
    ensure_toy_teacher,
    seed_stream,
    seeded_init,
)

log = logging.getLogger(__name__)

RECIPE_VERSION = 1  # bump when the code of a recipe step changes
MARKER = ".lcm_exp_toy_sd3_complete"


@dataclasses.dataclass(frozen=True)
class ToyFlowRecipe:
    """Budgets of the flow teacher; ``world`` is the toy UNet teacher recipe whose VAE, text side and judge it
    reuses. Defaults: the documented toy flow teacher (README), tests use tiny ones."""

    world: ToyRecipe = DEFAULT_RECIPE
    train_images: int = 8192
    teacher_steps: int = 2000
    teacher_batch: int = 32
    teacher_lr: float = 5e-4
    caption_dropout: float = 0.1
    ema_decay: float = 0.999

    def digest(self) -> str:
        text = json.dumps({"version": RECIPE_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


DEFAULT_FLOW_RECIPE = ToyFlowRecipe()


def ensure_toy_sd3_teacher(cache_dir: str | Path, seed: int = 0, recipe: ToyFlowRecipe = DEFAULT_FLOW_RECIPE) -> Path:
    """``<cache>/toy-sd3-teacher-s<seed>-<digest>``, built first if missing (minutes on CPU, after the toy UNet
    teacher it reuses)."""
    target = Path(cache_dir).expanduser().resolve() / f"toy-sd3-teacher-s{seed}-{recipe.digest()}"
    if (target / MARKER).is_file():
        return target
    base = ensure_toy_teacher(cache_dir, seed, recipe.world)
    return build_once(target, MARKER, "toy flow teacher", seed, recipe.digest(),
                      lambda tmp: build_toy_sd3_teacher(tmp, base, seed, recipe))
    base = ensure_toy_teacher(cache_dir, seed, recipe.world)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp.chmod(0o755)
    try:
        log.info("building the toy flow teacher (seed %d) in %s: a few minutes on CPU, once", seed, target)
        build_toy_sd3_teacher(tmp, base, seed, recipe)
        (tmp / MARKER).write_text(f"seed={seed} recipe={recipe.digest()}\n")
        try:
            os.rename(tmp, target)
        except OSError as err:
            if not (target / MARKER).is_file():
                raise FileExistsError(f"{target} exists but is not a complete toy flow teacher: delete it") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def build_toy_sd3_teacher(folder: str | Path, base: Path, seed: int = 0,
                          recipe: ToyFlowRecipe = DEFAULT_FLOW_RECIPE) -> dict[str, Any]:  # fmt: skip
    """Train the transformer on CPU and write the pipeline folder, the judge and toy_world.json into ``folder``."""
    from diffusers import AutoencoderKL, StableDiffusion3Pipeline
    from transformers import CLIPTextModel, CLIPTokenizer

    from lcm_exp.toy.flow_teacher import SHIFT, build_transformer, flow_scheduler, train_flow_teacher
    from lcm_exp.toy.flow_text import MAX_SEQUENCE_LENGTH, build_t5, build_t5_tokenizer_for_world, with_projection
    from lcm_exp.toy.text import build_text_encoder
    from lcm_exp.toy.vae import latent_means
    from lcm_exp.toy.world import all_attributes, caption, combination_index, make_images

    folder, started = Path(folder), time.perf_counter()
    vae = AutoencoderKL.from_pretrained(base / "vae")
    tokenizer = CLIPTokenizer.from_pretrained(base / "tokenizer")
    clip_l = with_projection(CLIPTextModel.from_pretrained(base / "text_encoder"), seed_stream(seed, 50))
    clip_g = with_projection(build_text_encoder(tokenizer, seed_stream(seed, 51)), seed_stream(seed, 52))
    t5_tokenizer = build_t5_tokenizer_for_world()
    t5 = build_t5(t5_tokenizer, seed_stream(seed, 53))
    pooled_dim = clip_l.config.projection_dim + clip_g.config.projection_dim
    transformer = seeded_init(lambda: build_transformer(t5.config.d_model, pooled_dim, vae.config.latent_channels),
                              seed, 54)
    pipe = StableDiffusion3Pipeline(
        transformer=transformer, scheduler=flow_scheduler(), vae=vae, text_encoder=clip_l, tokenizer=tokenizer,
        text_encoder_2=clip_g, tokenizer_2=tokenizer, text_encoder_3=t5, tokenizer_3=t5_tokenizer,
    )  # fmt: skip
    with torch.no_grad():  # exactly what the sd3 family (and the pipeline) feed the transformer
        prompts = ["", *[caption(a) for a in all_attributes()]]
        prompt_embeds, _, pooled, _ = pipe.encode_prompt(prompts, None, None, do_classifier_free_guidance=False,
                                                         max_sequence_length=MAX_SEQUENCE_LENGTH)  # fmt: skip
    data = make_images(recipe.train_images, seed * 1_000_003 + 1)  # the toy UNet teacher's training images
    latents = latent_means(vae, data.pixels) * vae.config.scaling_factor
    train_flow_teacher(
        transformer, latents, prompt_embeds, pooled, combination_index(data.attributes) + 1,
        steps=recipe.teacher_steps, batch=recipe.teacher_batch, lr=recipe.teacher_lr,
        caption_dropout=recipe.caption_dropout, ema_decay=recipe.ema_decay, generator=seed_stream(seed, 55),
    )  # fmt: skip
    pipe.save_pretrained(folder, safe_serialization=True)
    shutil.rmtree(folder / "vae")  # the toy's own files (a re-save would record the base's path in its config)
    shutil.copytree(base / "vae", folder / "vae")
    shutil.copytree(base / CLASSIFIER_DIR, folder / CLASSIFIER_DIR)
    world = json.loads((base / WORLD_FILE).read_text())
    world["flow_teacher"] = {
        "recipe_version": RECIPE_VERSION, "recipe": dataclasses.asdict(recipe), "base_teacher": base.name,
        "shift": SHIFT, "max_sequence_length": MAX_SEQUENCE_LENGTH,
        "transformer_parameters": sum(p.numel() for p in transformer.parameters()),
        "build_seconds": round(time.perf_counter() - started, 1), "torch_threads": torch.get_num_threads(),
    }  # fmt: skip
    (folder / WORLD_FILE).write_text(json.dumps(world, indent=2))
    return world
