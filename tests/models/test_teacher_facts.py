"""Teacher facts read without loading a weight: weight-file headers and the UNet's layers for the LoRA target check."""

from __future__ import annotations

import json
import shutil
import struct

import pytest

import lcm_exp.models.teacher_facts as facts
from lcm_exp.models.teacher_files import CorruptWeightsError, read_safetensors_header, weight_files

WRAPPABLE_MODULES = ("Linear", "Conv1d", "Conv2d", "Conv3d", "Embedding")


@pytest.mark.parametrize("teacher", ["sd15_teacher", "sdxl_teacher"])
def test_layers_from_the_weights_header_are_the_meta_unets_lora_layers(teacher, request, monkeypatch):
    """The fast path (a local teacher's header, milliseconds) finds exactly the layers the UNet built on the meta device
    (diffusers import, seconds) offers LoRA, so either answers the target check the same."""
    path = request.getfixturevalue(teacher)
    from_header = facts.unet_layers(path, None, None)
    monkeypatch.setattr(facts, "is_local", lambda _: False)  # as for a hub teacher: build it on the meta device
    from_meta = facts.unet_layers(path, None, None)
    assert {n for n, k in from_header.items() if k in facts._LORA_LAYERS} == \
        {n for n, k in from_meta.items() if k in WRAPPABLE_MODULES}  # fmt: skip
    for targets in (["to_q", "to_k", "to_v", "to_out.0", "conv1", "time_emb_proj"], ["to_qq"], ["conv_shortcut"]):
        assert bool(facts.lora_target_problems(targets, from_header)) == \
            bool(facts.lora_target_problems(targets, from_meta))  # fmt: skip


def test_default_lora_targets_all_match_the_sd15_layout(sd15_teacher):
    from lcm_exp.config.schema import LORA_TARGET_MODULES

    assert facts.lora_target_problems(LORA_TARGET_MODULES, facts.unet_layers(sd15_teacher, None, None)) == []


def test_header_check_refuses_cut_and_foreign_files(sd15_teacher, tmp_path):
    good = weight_files(sd15_teacher / "unet", None)[0]
    assert "conv_in.weight" in read_safetensors_header(good)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:-1])
    with pytest.raises(CorruptWeightsError, match="truncated or damaged"):
        read_safetensors_header(cut)
    foreign = tmp_path / "foreign.safetensors"
    foreign.write_bytes(b"PK\x03\x04" + bytes(100))  # a zip (a renamed .bin)
    with pytest.raises(CorruptWeightsError, match="not a safetensors file"):
        read_safetensors_header(foreign)
    lying = tmp_path / "lying.safetensors"
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
    lying.write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    with pytest.raises(CorruptWeightsError, match="inconsistent"):
        read_safetensors_header(lying)


def test_weight_files_pick_the_variant(tmp_path):
    for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors", "config.json"):
        (tmp_path / name).touch()
    assert [p.name for p in weight_files(tmp_path, None)] == ["diffusion_pytorch_model.safetensors"]
    assert [p.name for p in weight_files(tmp_path, "fp16")] == ["diffusion_pytorch_model.fp16.safetensors"]
    shutil.rmtree(tmp_path)
    tmp_path.mkdir()
    (tmp_path / "diffusion_pytorch_model.bin").touch()
    assert [p.name for p in weight_files(tmp_path, None)] == ["diffusion_pytorch_model.bin"]
