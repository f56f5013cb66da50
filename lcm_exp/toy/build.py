"""Build (once) and cache the toy teacher: VAE, text encoder, tokenizer, UNet, scheduler and attribute classifier.

The folder is a real SD1.5 diffusers pipeline (``StableDiffusionPipeline.from_pretrained`` and the project's
families load it unchanged) with two extra entries the pipeline ignores: ``toy_classifier/`` (the judge used by
the evaluation) and ``toy_world.json`` (recipe, seed, build timings and quality numbers). Everything is drawn from
generators seeded by the world seed, so the same seed and recipe give the same files. The build goes to a temp
dir that is renamed into place, so readers never see a half-built folder.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lcm_exp.toy.training import phase_progress
from lcm_exp.toy.world import ATTRIBUTES, RESOLUTION, all_attributes, caption, combination_index, make_images

log = logging.getLogger(__name__)

RECIPE_VERSION = 1  # bump when the code of a recipe step changes, so stale cached folders are not reused
MARKER = ".lcm_exp_toy_complete"
WORLD_FILE = "toy_world.json"
CLASSIFIER_DIR = "toy_classifier"


@dataclasses.dataclass(frozen=True)
class ToyRecipe:
    """Budgets of the build; the defaults are the documented toy teacher (docs/toy.md), tests use tiny ones."""

    train_images: int = 8192
    vae_steps: int = 500
    vae_batch: int = 32
    vae_lr: float = 2e-3
    classifier_steps: int = 800
    classifier_batch: int = 64
    classifier_lr: float = 2e-3
    teacher_steps: int = 2000
    teacher_batch: int = 32
    teacher_lr: float = 1e-3
    caption_dropout: float = 0.1
    ema_decay: float = 0.999
    heldout_images: int = 512

    def digest(self) -> str:
        text = json.dumps({"version": RECIPE_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


DEFAULT_RECIPE = ToyRecipe()


def toy_teacher_dir(
    cache_dir: str | Path, seed: int = 0, recipe: ToyRecipe = DEFAULT_RECIPE, device: str = "cpu"
) -> Path:
    """A build on another device gives other floating-point results, so it gets its own folder."""
    suffix = "" if torch.device(device).type == "cpu" else f"-{torch.device(device).type}"
    return Path(cache_dir).expanduser().resolve() / f"toy-teacher-s{seed}-{recipe.digest()}{suffix}"


def ensure_toy_teacher(
    cache_dir: str | Path, seed: int = 0, recipe: ToyRecipe = DEFAULT_RECIPE, device: str = "cpu"
) -> Path:
    """The toy teacher folder for (seed, recipe) under ``cache_dir``, built first if missing (minutes on CPU)."""
    target = toy_teacher_dir(cache_dir, seed, recipe, device)
    return build_once(target, MARKER, "toy teacher", seed, recipe.digest(),
                      lambda tmp: build_toy_teacher(tmp, seed, recipe, device))


def build_once(target: Path, marker: str, what: str, seed: int, digest: str, build: Callable[[Path], Any]) -> Path:
    """``target`` once it holds ``marker``; else ``build`` into a temporary sibling, mark it complete and rename it
    into place, so a killed build leaves nothing a later run would take for a finished one (two concurrent builds:
    the second rename fails and the first one's result is used)."""
    if (target / marker).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp.chmod(0o755)
    try:
        log.info("building the %s (seed %d) in %s: a few minutes on CPU, once", what, seed, target)
        build(tmp)
        (tmp / marker).write_text(f"seed={seed} recipe={digest}\n")
        try:
            os.rename(tmp, target)
        except OSError as err:
            if not (target / marker).is_file():
                raise FileExistsError(f"{target} exists but is not a complete {what} (no {marker}): delete it") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def seed_stream(seed: int, stream: int) -> torch.Generator:
    """Independent streams per build stage, so changing one stage's budget leaves the others' draws alone."""
    return torch.Generator().manual_seed(seed * 1_000_003 + stream)


def seeded_init(build, seed: int, stream: int):
    """``build()`` under the global RNG seeded for ``stream`` (module inits draw from it), the caller's RNG restored."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * 1_000_003 + stream)
        return build()


def build_toy_teacher(
    folder: str | Path, seed: int = 0, recipe: ToyRecipe = DEFAULT_RECIPE, device: str = "cpu"
) -> dict[str, Any]:
    """Train everything (on ``device``; random draws always from CPU generators) and write the pipeline folder;
    returns the world description written to toy_world.json."""
    from diffusers import StableDiffusionPipeline

    from lcm_exp.toy.classifier import AttributeClassifier, attribute_accuracy, train_classifier
    from lcm_exp.toy.teacher import build_unet, sd15_scheduler, train_teacher
    from lcm_exp.toy.text import build_text_encoder, build_tokenizer, encode
    from lcm_exp.toy.vae import build_vae, latent_means, reconstruction_psnr, train_vae

    folder = Path(folder)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 1)
        clock = now
        log.info("toy build: %s done in %.1f s", name, timings[name])

    data = make_images(recipe.train_images, seed * 1_000_003 + 1)
    heldout = make_images(recipe.heldout_images, seed * 1_000_003 + 2)

    vae = seeded_init(build_vae, seed, 10).to(device)
    with phase_progress("toy build 1/3: VAE", recipe.vae_steps, "lcm_exp.toy.vae"):
        train_vae(vae, data.pixels, recipe.vae_steps, recipe.vae_batch, recipe.vae_lr, seed_stream(seed, 11))
    means = latent_means(vae, data.pixels)
    vae.register_to_config(scaling_factor=float(1.0 / means.std()))
    vae_psnr = reconstruction_psnr(vae, heldout.pixels)
    lap("vae")

    classifier = seeded_init(AttributeClassifier, seed, 20).to(device)
    with phase_progress("toy build 2/3: classifier", recipe.classifier_steps):
        train_classifier(classifier, data.pixels, data.attributes, recipe.classifier_steps, recipe.classifier_batch,
                         recipe.classifier_lr, seed_stream(seed, 21))  # fmt: skip
    predicted, _ = classifier.predict(heldout.pixels)
    classifier_acc = attribute_accuracy(predicted, heldout.attributes)
    lap("classifier")

    tokenizer = build_tokenizer()
    text_encoder = build_text_encoder(tokenizer, seed_stream(seed, 30))
    prompt_embeds = encode(tokenizer, text_encoder, ["", *[caption(a) for a in all_attributes()]])
    unet = seeded_init(build_unet, seed, 40).to(device)
    with phase_progress("toy build 3/3: teacher", recipe.teacher_steps, "lcm_exp.toy.teacher"):
        train_teacher(
            unet, means * vae.config.scaling_factor, prompt_embeds, combination_index(data.attributes) + 1,
            steps=recipe.teacher_steps, batch=recipe.teacher_batch, lr=recipe.teacher_lr,
            caption_dropout=recipe.caption_dropout, ema_decay=recipe.ema_decay, generator=seed_stream(seed, 41),
        )  # fmt: skip
    lap("teacher")

    vae, unet, classifier = vae.cpu(), unet.cpu(), classifier.cpu()
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=sd15_scheduler(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.save_pretrained(folder, safe_serialization=True)
    classifier.save(folder / CLASSIFIER_DIR)
    world = {
        "seed": seed,
        "recipe_version": RECIPE_VERSION,
        "recipe": dataclasses.asdict(recipe),
        "resolution": RESOLUTION,
        "attributes": ATTRIBUTES,
        "vae_scaling_factor": vae.config.scaling_factor,
        "quality": {"vae_heldout_psnr_db": round(vae_psnr, 2), "classifier_heldout_accuracy": classifier_acc},
        "build_seconds": timings,
        "device": torch.device(device).type,
        "torch_threads": torch.get_num_threads(),
    }
    (folder / WORLD_FILE).write_text(json.dumps(world, indent=2))
    return world


def read_toy_world(teacher: str | Path) -> dict[str, Any] | None:
    """The toy description of a teacher folder, or None for any other teacher (hub id or foreign folder)."""
    path = Path(str(teacher)).expanduser() / WORLD_FILE
    return json.loads(path.read_text()) if path.is_file() else None
