"""The README's "Use your model" section: its generate command and its diffusers snippets
run as written on real (tiny) runs; only the placeholders (run dir, teacher id) are filled in."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.train.runner import ROOT, record

_README = (ROOT / "README.md").read_text()
DOC = _README[_README.index("## Use your model") : _README.index("## Sweeps")]
RUN_PLACEHOLDER = "outputs/runs/<run>"


def fill(code: str, run_dir: Path) -> str:
    """The doc's placeholders -> this run: its dir, and its teacher instead of the hub id (we are offline)."""
    teacher = record(run_dir)["teacher"]["teacher"]
    code = re.sub(r'^teacher = ".*?"', f'teacher = "{teacher}"', code, flags=re.M)
    return code.replace(RUN_PLACEHOLDER, str(run_dir))


def snippet(marker: str) -> str:
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", DOC, flags=re.S) if marker in b]
    return block


def test_generate_command_runs_as_written(full_run):
    (line,) = [ln for ln in DOC.splitlines() if ln.startswith("python -m lcm_exp.generate")]
    argv = shlex.split(line.replace(RUN_PLACEHOLDER, str(full_run)))
    out = subprocess.run([sys.executable, *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    samples = full_run / "samples"
    assert len(list(samples.glob("p*_s*.png"))) == 2 * 3 and (samples / "grid.png").is_file()
    assert Image.open(samples / "grid.png").size == (3 * 32, 2 * 32)


@pytest.mark.parametrize(("run", "marker", "guidance"), [
    ("full_run", "UNet2DConditionModel.from_pretrained", "guidance_scale=8.0"),
    ("lora_run", "load_lora_weights", "guidance_scale=1.0"),
])  # fmt: skip
def test_diffusers_snippets_run_as_written(run, marker, guidance, request, tmp_path, monkeypatch):
    run_dir = request.getfixturevalue(run)
    code = snippet(marker)
    assert guidance in code and 'model_dir = "outputs/runs/<run>/model"' in code
    monkeypatch.chdir(tmp_path)
    exec(compile(fill(code, run_dir), "use-your-model.md", "exec"), {})
    image = np.asarray(Image.open(tmp_path / "cat.png"))
    assert image.shape == (64, 64, 3) and image.std() > 0


def test_fp16_loading_line_loads_the_variant(full_run):
    (line,) = re.findall(r"`(UNet2DConditionModel\.from_pretrained\([^`]*variant=\"fp16\"[^`]*)`", DOC)
    from diffusers import UNet2DConditionModel  # noqa: F401  (the line's namespace)

    unet = eval(line, {"UNet2DConditionModel": UNet2DConditionModel, "torch": torch,
                       "model_dir": str(full_run / "model")})  # fmt: skip
    assert unet.dtype == torch.float16


def test_hub_commands_run_as_written_against_a_stand_in(full_run, tmp_path):
    from lcm_exp.hub import main as hub_main
    from tests.config.compose import compose_config
    from tests.hub.test_hub_upload import MODEL_FILES, FakeHub

    launch_line, hub_line = [
        ln.split("  #")[0] for ln in DOC.splitlines() if "hub_model_id" in ln or "lcm_exp.hub " in ln
    ]
    cfg = compose_config(shlex.split(launch_line)[2:])
    assert cfg.export.push_to_hub and cfg.export.hub_model_id == "your-name/lcm-sd15-lora" and cfg.export.private
    run = tmp_path / "run"
    shutil.copytree(full_run, run)
    fake = FakeHub()
    hub_main(shlex.split(hub_line.replace(RUN_PLACEHOLDER, str(run)))[3:], api=fake)
    assert set(fake.uploaded) >= MODEL_FILES and fake.calls[0][1]["repo_id"] == "your-name/lcm-sd15-lora"
    assert not any("checkpoint" in f for f in fake.uploaded)
