"""Tiny random teachers in the real diffusers layout, built offline and deterministically.

Tests and smoke runs load them through exactly the code path a hub checkpoint takes (a folder is just a path for
``from_pretrained``). Architecture follows the real models at toy width: SD1.5 (CLIP-L-like text encoder, last
hidden state), SD2-style v-prediction, SDXL (two text encoders, ``text_time`` micro-conditioning) and SD3.5
(``tiny_sd3.py``: flow-matching transformer, three text encoders). The VAE has four blocks like the real one, so
latents are ``resolution / 8`` as for real checkpoints.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

SEED = 0
RECIPE_VERSION = 1  # bump when the recipe changes, so stale cached folders are not reused
MARKER = ".lcm_exp_tiny_complete"
KINDS = ("sd15", "sd15_v", "sdxl", "sd3")

WORDS = (
    "a an the of on in with and at by to from for near under over beside above below behind front top bottom left "
    "right center middle small large big tiny huge little bright dark light pale deep shiny matte striped dotted "
    "red orange yellow green blue purple violet pink brown black white gray grey gold silver cyan magenta teal "
    "circle circles square squares triangle triangles rectangle star stars disc ring line lines dot dots shape "
    "shapes cube ball sphere heart cross hexagon oval background foreground pattern texture gradient "
    "photo photograph picture image painting drawing illustration render sketch portrait landscape closeup "
    "cat dog bird horse tree flower house car boat mountain river sky sea beach city street forest field "
    "man woman person child sun moon cloud clouds water grass snow night day sunset "
    "is are two three one several many high quality detailed simple abstract colorful"
).split()

_SCHEDULER = {  # the SD1.5 training schedule (scaled-linear betas), as in the real scheduler_config.json files
    "num_train_timesteps": 1000,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "steps_offset": 1,
}

log = logging.getLogger(__name__)


def ensure_tiny_teacher(kind: str, cache_dir: str | Path) -> Path:
    """Return ``<cache_dir>/tiny-<kind>-v<N>``, building it first if it is missing.

    The build goes to a temp dir beside the target and is renamed into place, so a reader never sees a partial
    folder; when several processes race, the first rename wins and the others use its folder.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown tiny teacher kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    cache_dir = Path(cache_dir).expanduser().resolve()
    target = cache_dir / f"tiny-{kind}-v{RECIPE_VERSION}"
    if (target / MARKER).is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache_dir))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared by the people on a machine
    try:
        _build(kind, tmp)
        (tmp / MARKER).write_text(f"{kind} seed={SEED} recipe={RECIPE_VERSION}\n")
        try:
            os.rename(tmp, target)
            log.info("built tiny %s teacher in %s", kind, target)
        except OSError as err:
            if not (target / MARKER).is_file():  # not a lost race: the target is incomplete or foreign
                raise FileExistsError(
                    f"{target} exists but is not a complete tiny teacher (no {MARKER}): delete it to rebuild"
                ) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _build(kind: str, folder: Path) -> None:
    import torch

    from lcm_exp.models.tiny_sd3 import build_tiny_sd3

    builders = {"sd15": lambda: _build_sd15("epsilon"), "sd15_v": lambda: _build_sd15("v_prediction"),
                "sdxl": _build_sdxl, "sd3": build_tiny_sd3}  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        pipe = builders[kind]()
    pipe.save_pretrained(folder, safe_serialization=True)


def _text_encoder_config(tokenizer, hidden: int, projection_dim: int):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=tokenizer.model_max_length,
        projection_dim=projection_dim,
        hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _vae(scaling_factor: float, force_upcast: bool):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(32, 32, 64, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=64,
        scaling_factor=scaling_factor,
        force_upcast=force_upcast,
    )


def _unet(cross_attention_dim: int, **extra):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8,  # 64 px at the VAE's factor 8
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        attention_head_dim=(2, 4),
        cross_attention_dim=cross_attention_dim,
        norm_num_groups=32,
        **extra,
    )


def _build_sd15(prediction_type: str):
    from diffusers import PNDMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextModel

    from lcm_exp.models.tokenizer import build_clip_tokenizer

    tokenizer = build_clip_tokenizer(WORDS)
    text_encoder = CLIPTextModel(_text_encoder_config(tokenizer, hidden=32, projection_dim=32))
    return StableDiffusionPipeline(
        vae=_vae(scaling_factor=0.18215, force_upcast=True),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=_unet(cross_attention_dim=32),
        scheduler=PNDMScheduler(
            **_SCHEDULER, prediction_type=prediction_type, set_alpha_to_one=False, skip_prk_steps=True
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _build_sdxl():
    """Two encoders of different widths (32, 64) and a projection (48) unlike either, so a mix-up shows in shapes."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from lcm_exp.models.tokenizer import build_clip_tokenizer

    tokenizer = build_clip_tokenizer(WORDS)
    text_encoder = CLIPTextModel(_text_encoder_config(tokenizer, hidden=32, projection_dim=32))
    text_encoder_2 = CLIPTextModelWithProjection(_text_encoder_config(tokenizer, hidden=64, projection_dim=48))
    time_embed_dim = 8
    unet = _unet(
        cross_attention_dim=32 + 64,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_dim,
        projection_class_embeddings_input_dim=6 * time_embed_dim + 48,
    )
    scheduler = EulerDiscreteScheduler(
        **_SCHEDULER,
        prediction_type="epsilon",
        interpolation_type="linear",
        timestep_spacing="leading",
    )
    return StableDiffusionXLPipeline(
        vae=_vae(scaling_factor=0.13025, force_upcast=True),
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=scheduler,
        add_watermarker=False,
    )
