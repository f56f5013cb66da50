"""Issue 14 item 1: secrets are redacted by value, with placeholders that read an environment variable back."""

from __future__ import annotations

import json
import logging
import subprocess

import pytest
import yaml
from omegaconf import OmegaConf

from lcm_exp.runlog.logs import RedactingFormatter
from lcm_exp.runlog.record import RunRecord
from lcm_exp.runlog.secrets import REDACTED, hidden_leaves, redact, redact_override, redact_text

TOKEN = "hf_EnvToken0123456789abcdef"
ENV = {"HF_TOKEN": TOKEN, "MY_PASSWORD": "pa55-w0rd-XYZ", "SHORT_KEY": "1", "PATH": "/usr/bin"}
SHARDS = f'pipe:curl -s -H "Authorization: Bearer {TOKEN}" https://host/d/{{00000..00099}}.tar'


@pytest.mark.parametrize(
    ("text", "expected"),
    [  # an env var's value: a placeholder that reads it back ($NAME inside a pipe: shell command, else ${oc.env:})
        (SHARDS, 'pipe:curl -s -H "Authorization: Bearer $HF_TOKEN" https://host/d/{00000..00099}.tar'),
        (f"https://host/a.tar?token={TOKEN}&download=true", "https://host/a.tar?token=${oc.env:HF_TOKEN}&download=true"),
        ("pipe:curl https://bob:pa55-w0rd-XYZ@host/x.tar", "pipe:curl https://bob:$MY_PASSWORD@host/x.tar"),
        (f"pipe:cat /d/{TOKEN}x.tar", "pipe:cat /d/${oc.env:HF_TOKEN}x.tar"),  # $HF_TOKENx would name another var
        # literal credentials in no env var: ***
        ('pipe:curl -H "Authorization: Bearer lit3ral-tok" x', 'pipe:curl -H "Authorization: Bearer ***" x'),
        ("-H 'authorization: token ghp_abc' -H 'X-Api-Key: k123'", "-H 'authorization: token ***' -H 'X-Api-Key: ***'"),
        ("https://bob:hunter22@host/x.tar", "https://bob:***@host/x.tar"),
        ("https://host/x.tar?sig=abc%2F&token=lit&download=true", "https://host/x.tar?sig=***&token=***&download=true"),
        # placeholders and ordinary text are left alone (short env values would blank out every "1")
        ('pipe:curl -H "Authorization: Bearer $HF_TOKEN" x', 'pipe:curl -H "Authorization: Bearer $HF_TOKEN" x'),
        ("Authorization: Bearer ${oc.env:HF_TOKEN}", "Authorization: Bearer ${oc.env:HF_TOKEN}"),
        ("step 1 of 10, key=value, caption_keys: [txt]", "step 1 of 10, key=value, caption_keys: [txt]"),
    ],
)
def test_redact_text(text, expected):
    assert redact_text(text, ENV) == expected
    assert redact_text(expected, ENV) == expected  # idempotent: records are redacted again at every write


def test_nested_values_keys_and_overrides():
    cfg = {"data": {"shards": [SHARDS, "/local/{0..9}.tar"], "caption_keys": ["txt"]},
           "hub": {"hf_token": TOKEN, "api_key": "literal"}, "n": 3}  # fmt: skip
    clean = redact(cfg, ENV)
    assert TOKEN not in json.dumps(clean)
    assert clean["data"]["shards"][1] == "/local/{0..9}.tar" and clean["data"]["caption_keys"] == ["txt"]
    assert clean["hub"] == {"hf_token": "${oc.env:HF_TOKEN}", "api_key": REDACTED}
    assert redact(clean, ENV) == clean
    assert hidden_leaves(cfg, clean) == {"hub.api_key": "literal"}  # the env-held ones read back, this one cannot
    assert redact_override(f"data.shards='{SHARDS}'", ENV) == f"data.shards='{redact_text(SHARDS, ENV)}'"
    assert redact_override(f"+hub.hf_token={TOKEN}", ENV) == "+hub.hf_token=${oc.env:HF_TOKEN}"
    assert redact_override("+hub.hf_token=abc", ENV) == f"+hub.hf_token={REDACTED}"


def test_placeholders_read_the_secret_back_at_run_time(monkeypatch):
    """The recorded value works: OmegaConf resolves ${oc.env:}, a pipe: command's shell expands $NAME."""
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    url = redact_text(f"https://host/a.tar?token={TOKEN}")
    assert OmegaConf.create({"u": url}).u == f"https://host/a.tar?token={TOKEN}"
    command = redact_text(f"pipe:echo {TOKEN}").removeprefix("pipe:")
    assert subprocess.run(command, shell=True, capture_output=True, text=True).stdout.strip() == TOKEN


def test_log_lines_are_redacted(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "reading %s", (SHARDS,), None)
    line = RedactingFormatter().format(record)
    assert TOKEN not in line and "Bearer $HF_TOKEN" in line


def test_run_record_config_hydra_files_and_errors_hold_no_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    record = RunRecord(tmp_path)
    override = f"data.shards='{SHARDS}'"
    hydra_files = {"config.yaml": {"data": {"shards": SHARDS}}, "overrides.yaml": [override],
                   "hydra.yaml": {"hydra": {"overrides": {"task": [override]}, "job": {"override_dirname": override}}}}
    hidden = record.start({"data": {"shards": SHARDS}}, [override], 0, {}, ["launch.py", override], hydra_files)
    record.finish("failed", error=RuntimeError(f"pipe failed: {SHARDS}"))
    assert hidden == {}
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.relative_to(tmp_path).as_posix() for p in files} >= {"run.json", "config.yaml", ".hydra/config.yaml",
                                                                   ".hydra/hydra.yaml", ".hydra/overrides.yaml"}
    for path in files:
        assert TOKEN not in path.read_text(), path
    data = json.loads((tmp_path / "run.json").read_text())
    assert "Bearer $HF_TOKEN" in data["command"] and "Bearer $HF_TOKEN" in data["error"]["traceback"]
    assert yaml.safe_load((tmp_path / ".hydra" / "overrides.yaml").read_text()) == [redact_text(override)]


def test_a_secret_in_no_env_var_is_hidden_and_said(tmp_path, caplog):
    literal = 'pipe:curl -H "Authorization: Bearer lit3ral-tok" https://host/a.tar'
    with caplog.at_level(logging.WARNING):
        hidden = RunRecord(tmp_path).start({"data": {"shards": literal}}, [f"data.shards='{literal}'"], 0, {},
                                           ["launch.py"])  # fmt: skip
    assert hidden == {"data.shards": literal}  # what the accelerate workers get through their environment
    assert "lit3ral-tok" not in (tmp_path / "run.json").read_text()
    assert "data.shards" in caplog.text and "cannot re-create the run" in caplog.text
