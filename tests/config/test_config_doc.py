"""docs/config.md is what the schemas say today, and it names every key a composed run config has."""

from pathlib import Path

from omegaconf import OmegaConf

from lcm_exp.config.reference import render
from tests.config.compose import compose_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def _keys(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def test_config_reference_is_current():
    assert DOC.read_text() == render(), "docs/config.md is stale: run python scripts/config_doc.py"


def test_every_key_of_a_composed_config_is_documented():
    text = DOC.read_text()
    for overrides in ([], ["adapter=lora", "loss=l2", "model=tiny_sdxl", "launcher=accelerate"]):
        cfg = OmegaConf.to_container(compose_config(overrides), resolve=False)
        cfg.pop("hydra", None)
        missing = [k for k in _keys(cfg) if f"`{k}`" not in text]
        assert missing == [], missing


def test_every_key_has_a_line_of_meaning():
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| `")]
    assert [row.split("|")[1].strip() for row in rows if row.rstrip().endswith("|  |")] == []


def test_group_files_list_their_keys():
    """A reader of conf/loss/huber.yaml sees huber_c and its default without opening the schema."""
    from lcm_exp.config.reference import with_key_list, yaml_targets

    targets = yaml_targets()
    assert {p.relative_to(p.parents[1]).as_posix() for p in targets} >= {"loss/huber.yaml", "adapter/lora.yaml",
                                                                          "trainer/default.yaml", "perf/default.yaml"}
    stale = [str(p) for p, cls in targets.items() if p.read_text() != with_key_list(p.read_text(), cls)]
    assert stale == [], "run python scripts/config_doc.py"
    assert "#   huber_c: 0.001" in next(p for p in targets if p.name == "huber.yaml").read_text()
