"""summary.py + plots.py on hand-made job dirs: rows, best job, failures, and which plots get drawn."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml

from lcm_exp.sweep.summarize import main as summarize_main
from lcm_exp.sweep.summary import write_summary

PNG = b"\x89PNG"


def _job(sweep: Path, num: int, w: tuple, status: str, losses=(), loss="huber", c=0.001, error=None) -> Path:
    name = f"guidance.w_min={w[0]},guidance.w_max={w[1]}" + (f",loss.huber_c={c}" if loss == "huber" else ",loss=l2")
    d = sweep / name
    (d / ".hydra").mkdir(parents=True)
    overrides = ["sweep=guidance_range", "trainer.max_train_steps=3", f"guidance.w_min={w[0]}",
                 f"guidance.w_max={w[1]}"]  # fmt: skip
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (d / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"job": {"num": num}}}))
    loss_node = {"name": loss, **({"huber_c": c} if loss == "huber" else {})}
    (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"guidance": {"w_min": w[0], "w_max": w[1]},
                                                              "loss": loss_node}))  # fmt: skip
    if status != "missing":
        record = {"status": status, "overrides": overrides, "seed": 100 + num,
                  "start_time": "2026-01-01T10:00:00+00:00", "end_time": "2026-01-01T10:00:20+00:00",
                  "metrics": {"final_loss": losses[-1], "steps": len(losses)} if status == "completed" else None,
                  "error": error}  # fmt: skip
        (d / "run.json").write_text(json.dumps(record))
    rows = [json.dumps({"step": i + 1, "loss": v}) + "\n" for i, v in enumerate(losses)]
    (d / "metrics.jsonl").write_text("".join(rows))
    return d


def _guidance_sweep(tmp_path) -> Path:
    sweep = tmp_path / "sweep"
    _job(sweep, 0, (-1, 3), "failed", error={"type": "ConfigError", "message": "invalid configuration:\n  - w_min"})
    _job(sweep, 1, (2, 6), "completed", [0.5, 0.4, 0.3])
    _job(sweep, 2, (3, 9), "completed", [0.5, 0.2, 0.1])
    _job(sweep, 3, (5, 15), "completed", [0.6, 0.5, 0.45])
    (sweep / ".submitit").mkdir()  # launcher bookkeeping, not a job
    recorded = {"sweep": {"objective": "final_loss", "direction": "minimize"}}
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(recorded))
    return sweep


def _csv(sweep):
    with open(sweep / "summary.csv") as fh:
        return list(csv.DictReader(fh))


def test_rows_statuses_and_plots(tmp_path):
    sweep = _guidance_sweep(tmp_path)
    paths = write_summary(sweep)
    rows = _csv(sweep)
    assert [(r["w_min"], r["w_max"], r["status"]) for r in rows] == [
        ("-1", "3", "failed"),
        ("2", "6", "completed"),
        ("3", "9", "completed"),
        ("5", "15", "completed"),
    ]
    assert [r["objective"] for r in rows] == ["", "0.3", "0.1", "0.45"]
    assert rows[2]["tail_loss"] == "0.1" and rows[2]["time_s"] == "20.0" and rows[2]["seed"] == "102"
    assert rows[0]["error"] == "ConfigError: invalid configuration: - w_min"
    assert set(paths) == {"csv", "markdown", "heatmap_guidance", "loss_curves"}
    for name in ("heatmap_guidance.png", "loss_curves.png"):
        assert (sweep / name).read_bytes()[:4] == PNG
    assert not (sweep / "heatmap_huber_c.png").exists()  # loss did not vary

    md = (sweep / "summary.md").read_text()
    assert "4 jobs: 3 completed, 1 failed" in md
    assert "best: `w_min=3 w_max=9` = 0.1" in md
    assert "| 2 | `guidance.w_min=3` `guidance.w_max=9` | completed | 0.1 ★ | 0.1 | 3 | 20 |" in md
    assert "Common overrides: `trainer.max_train_steps=3`" in md
    assert ",loss.huber_c=0.001` (failed): ConfigError: invalid configuration: - w_min (see" in md


def test_maximize_and_another_objective(tmp_path):
    sweep = _guidance_sweep(tmp_path)
    write_summary(sweep, objective="tail_loss", direction="maximize")
    assert "best: `w_min=5 w_max=15` = 0.45" in (sweep / "summary.md").read_text()


def test_unknown_objective_is_reported_per_job(tmp_path):
    sweep = _guidance_sweep(tmp_path)
    write_summary(sweep, objective="fidelity")
    md = (sweep / "summary.md").read_text()
    expected = "sweep.objective='fidelity' is not a metric of this run; available: final_loss, steps, tail_loss, time_s"
    assert expected in md


def test_huber_heatmap_when_the_loss_varies_and_stale_plots_go(tmp_path):
    sweep = tmp_path / "sweep"
    _job(sweep, 0, (5, 15), "completed", [0.3], loss="l2")
    _job(sweep, 1, (5, 15), "completed", [0.2], c=0.001)
    _job(sweep, 2, (5, 15), "completed", [0.25], c=0.01)
    (sweep / "heatmap_guidance.png").write_bytes(PNG)  # from an earlier, different sweep in this dir
    paths = write_summary(sweep)
    assert (sweep / "heatmap_huber_c.png").read_bytes()[:4] == PNG
    assert "heatmap_guidance" not in paths and not (sweep / "heatmap_guidance.png").exists()


def test_job_without_record_is_listed_as_missing(tmp_path):
    sweep = tmp_path / "sweep"
    _job(sweep, 0, (2, 6), "missing", [0.5])
    _job(sweep, 1, (3, 9), "completed", [0.4])
    write_summary(sweep)
    assert [r["status"] for r in _csv(sweep)] == ["missing", "completed"]


def test_summarize_command(tmp_path, capsys):
    sweep = _guidance_sweep(tmp_path)
    assert summarize_main([str(sweep)]) == 0
    assert "4 jobs: 3 completed, 1 failed" in capsys.readouterr().out
    assert (sweep / "summary.csv").is_file()


def test_continuous_search_gets_scatter_plots(tmp_path):
    sweep = tmp_path / "sweep"
    for i in range(12):  # an Optuna-like search: every job has its own values
        _job(sweep, i, (1 + 0.5 * i, 9 + 0.25 * i), "completed" if i != 4 else "failed", [0.1 + 0.01 * i],
             c=10 ** (-4 + 0.25 * i))  # fmt: skip
    paths = write_summary(sweep)
    assert {"heatmap_guidance", "heatmap_huber_c", "loss_curves"} <= set(paths)
    for p in ("heatmap_guidance.png", "heatmap_huber_c.png"):
        assert (sweep / p).read_bytes()[:4] == PNG
