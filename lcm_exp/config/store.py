"""Register the schemas in Hydra's ConfigStore under ``schema/``, where the YAML files pick them up.

Kept apart from the group options (``model=``, ``adapter=``, ...) so ``--help`` lists only real choices.
"""

from hydra.core.config_store import ConfigStore

from lcm_exp.config import schema

GROUP_SCHEMAS = {
    "model": {"sd15": schema.ModelConfig, "sdxl": schema.SDXLModelConfig, "sd3": schema.SD3ModelConfig},
    "adapter": {"full": schema.FullAdapterConfig, "lora": schema.LoraAdapterConfig},
    "launcher": {"inline": schema.InlineLauncherConfig, "accelerate": schema.AccelerateLauncherConfig},
    "loss": {"l2": schema.L2LossConfig, "huber": schema.HuberLossConfig, "pseudo_huber": schema.PseudoHuberLossConfig},
    "objective": {"lcd": schema.ObjectiveConfig, "tcd": schema.TCDObjectiveConfig, "pcm": schema.PCMObjectiveConfig},
}


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=schema.RunConfig)
    for group, variants in GROUP_SCHEMAS.items():
        for name, node in variants.items():
            cs.store(group=f"schema/{group}", name=name, node=node)
