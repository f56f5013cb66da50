"""Imports only go down the layers of docs/architecture.md (module-level and function-level imports alike)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "lcm_exp"

# longest prefix wins; the CLI entry modules sit at the top whatever package holds them
LAYERS = {
    "lcm_exp.objective": 0, "lcm_exp.conditioning": 0, "lcm_exp.runlog": 0, "lcm_exp.config": 0,
    "lcm_exp.models": 1,
    "lcm_exp.adapters": 2, "lcm_exp.data": 2,
    "lcm_exp.train": 3, "lcm_exp.perf": 3,
    # the evaluation's settings schema and its baseline table are config vocabulary (standard library only)
    "lcm_exp.evaluate.settings": 0, "lcm_exp.evaluate.baselines": 0,
    "lcm_exp.evaluate": 4, "lcm_exp.bench": 4, "lcm_exp.sweep": 4, "lcm_exp.launchers": 4, "lcm_exp.toy": 4,
    "lcm_exp.config.validate": 4, "lcm_exp.config.resolvers": 4, "lcm_exp.config.compose": 4,
    "lcm_exp.task": 5, "lcm_exp.reproduce": 5, "lcm_exp.generate": 5, "lcm_exp.hub": 5,
    "lcm_exp.bench.__main__": 5, "lcm_exp.evaluate.__main__": 5, "lcm_exp.data.cache_latents": 5,
    "lcm_exp.launchers.worker": 5, "lcm_exp.sweep.summarize": 5, "lcm_exp.evaluate.claims": 5,
    "lcm_exp.bench.gpu_check": 5, "lcm_exp.evaluate.compare": 5,
}  # fmt: skip


def layer(module: str) -> int | None:
    matches = [name for name in LAYERS if module == name or module.startswith(name + ".")]
    return LAYERS[max(matches, key=len)] if matches else None


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("lcm_exp")}


def test_every_package_has_a_layer():
    modules = [".".join(p.relative_to(ROOT.parent).with_suffix("").parts) for p in ROOT.rglob("*.py")]
    assert [m for m in modules if layer(m.removesuffix(".__init__")) is None and m != "lcm_exp.__init__"] == []


def test_imports_only_go_down():
    upward = []
    for path in ROOT.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
        own = layer(module)
        if own is None:
            continue
        for name in imports(path):
            target = layer(name)
            if target is not None and target > own:
                upward.append(f"{module} (layer {own}) imports {name} (layer {target})")
    assert sorted(set(upward)) == []
