"""The full SD3 student: SD3Transformer2DModel plus a learned w (guidance-scale) embedding, the LCM student's input.

SD3's transformer has no ``timestep_cond``. Its guidance-distilled relatives (Flux) embed guidance with a
``guidance_embedder`` (a TimestepEmbedding) added to the timestep + pooled-text vector that modulates every block;
the student does the same on LCD's w embedding (sinusoidal of 1000 w, ``lcm_exp.objective.guidance_embedding``), so
the teacher's weights load unchanged and only ``time_text_embed.guidance_embedder`` is new ("zero" init: its output
layer starts at zero and the student equals the teacher).

Inference: the SD3 pipeline gives the transformer no w, so it travels in ``joint_attention_kwargs``:
``pipe(prompt, guidance_scale=1.0, joint_attention_kwargs={"guidance_scale": g})`` (no CFG pass; w = g - 1), which
``pipeline_call_kwargs(g)`` writes. Load the export with ``GuidedSD3Transformer2DModel.from_pretrained``.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import SD3Transformer2DModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.embeddings import CombinedTimestepTextProjEmbeddings, TimestepEmbedding

from lcm_exp.objective.guidance import guidance_embedding

GUIDANCE_KEY = "guidance_scale"  # in joint_attention_kwargs: the diffusers guidance scale g = w + 1


class GuidedTimeTextEmbedding(CombinedTimestepTextProjEmbeddings):
    """SD3's timestep + pooled-text embedding plus Flux's ``guidance_embedder`` over the w embedding of the call."""

    def __init__(self, embedding_dim: int, pooled_projection_dim: int, guidance_embedding_dim: int):
        super().__init__(embedding_dim, pooled_projection_dim)
        self.guidance_embedder = TimestepEmbedding(in_channels=guidance_embedding_dim, time_embed_dim=embedding_dim)
        self.guidance_emb: torch.Tensor | None = None  # set by the transformer for one forward

    def forward(self, timestep: torch.Tensor, pooled_projection: torch.Tensor) -> torch.Tensor:
        conditioning = super().forward(timestep, pooled_projection)
        if self.guidance_emb is None:
            return conditioning
        return conditioning + self.guidance_embedder(self.guidance_emb.to(conditioning.dtype))


class GuidedSD3Transformer2DModel(SD3Transformer2DModel):
    @register_to_config
    def __init__(self, sample_size: int = 128, patch_size: int = 2, in_channels: int = 16, num_layers: int = 18,
                 attention_head_dim: int = 64, num_attention_heads: int = 18, joint_attention_dim: int = 4096,
                 caption_projection_dim: int = 1152, pooled_projection_dim: int = 2048, out_channels: int = 16,
                 pos_embed_max_size: int = 96, dual_attention_layers: tuple[int, ...] = (), qk_norm: str | None = None,
                 guidance_embedding_dim: int = 256):  # fmt: skip
        super().__init__(sample_size, patch_size, in_channels, num_layers, attention_head_dim, num_attention_heads,
                         joint_attention_dim, caption_projection_dim, pooled_projection_dim, out_channels,
                         pos_embed_max_size, dual_attention_layers, qk_norm)  # fmt: skip
        self.time_text_embed = GuidedTimeTextEmbedding(self.inner_dim, pooled_projection_dim, guidance_embedding_dim)

    def forward(self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor = None,
                pooled_projections: torch.Tensor = None, timestep: torch.Tensor = None,
                block_controlnet_hidden_states: list | None = None, joint_attention_kwargs: dict | None = None,
                return_dict: bool = True, skip_layers: list[int] | None = None,
                guidance_emb: torch.Tensor | None = None):  # fmt: skip
        """SD3's forward; w comes as ``guidance_emb`` (training) or ``joint_attention_kwargs["guidance_scale"]``."""
        kwargs = dict(joint_attention_kwargs or {})
        scale = kwargs.pop(GUIDANCE_KEY, None)
        if guidance_emb is None and scale is not None:
            w = torch.full((hidden_states.shape[0],), float(scale) - 1.0, device=hidden_states.device)
            guidance_emb = guidance_embedding(w, self.config.guidance_embedding_dim)
        self.time_text_embed.guidance_emb = guidance_emb
        try:
            return super().forward(hidden_states, encoder_hidden_states, pooled_projections, timestep,
                                   block_controlnet_hidden_states, kwargs or None, return_dict,
                                   skip_layers)  # fmt: skip
        finally:
            self.time_text_embed.guidance_emb = None

    @staticmethod
    def pipeline_call_kwargs(guidance_scale: float) -> dict[str, Any]:
        """StableDiffusion3Pipeline arguments that give this student w = guidance_scale - 1 and run no CFG pass."""
        return {"guidance_scale": 1.0, "joint_attention_kwargs": {GUIDANCE_KEY: guidance_scale}}


def make_guided_transformer(
    teacher: SD3Transformer2DModel, embedding_dim: int, init: str
) -> GuidedSD3Transformer2DModel:
    """A float32 guided student from the (fp32) teacher's config and weights; only the guidance embedder is new."""
    student = GuidedSD3Transformer2DModel.from_config(teacher.config, guidance_embedding_dim=embedding_dim)
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    if unexpected or any(not k.startswith("time_text_embed.guidance_embedder.") for k in missing):
        raise RuntimeError(f"student/teacher weights do not line up: missing={missing}, unexpected={unexpected}")
    if init == "zero":
        torch.nn.init.zeros_(student.time_text_embed.guidance_embedder.linear_2.weight)
        torch.nn.init.zeros_(student.time_text_embed.guidance_embedder.linear_2.bias)
    return student  # float32: built from the config, the teacher's weights copied in
