"""Write docs/config.md and the key lists at the top of the group YAML files from the schemas:
python scripts/config_doc.py (tests/config/test_config_doc.py fails when either is stale)."""

from pathlib import Path

from lcm_exp.config.reference import render, with_key_list, yaml_targets

if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "docs" / "config.md"
    out.write_text(render())
    for path, cls in yaml_targets().items():
        path.write_text(with_key_list(path.read_text(), cls))
    print(f"wrote {out} and {len(yaml_targets())} key lists in conf/")
