"""lcm_exp: Latent Consistency Distillation experiments, configured with Hydra."""

__version__ = "0.1.0"
