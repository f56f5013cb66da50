"""python -m lcm_exp.evaluate.compare: groups of runs -> mean ± std of their student rows, teacher rows once, curves."""

import csv
import json

from lcm_exp.evaluate.compare import main

FIELDS = ["method", "label", "steps", "nfe", "latent_rmse", "psnr_db", "attr_acc", "fd"]


def _run(tmp_path, name, rmse, curve):
    run = tmp_path / name
    (run / "eval").mkdir(parents=True)
    rows = [["reference", "teacher DDIM-50 (reference)", 50, 100, "", "", 0.9, 244],
            ["student", "student, TCDScheduler (gamma 0.3)", 4, 4, rmse, 30.0, 0.9, 280],
            ["ddim_trailing", "teacher DDIM trailing + CFG (fair baseline)", 4, 8, 0.396, 30.1, 0.912, 424]]  # fmt: skip
    with (run / "eval" / "results.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(FIELDS)
        writer.writerows(rows)
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "eval": True, "latent_rmse:student:4": v}) + "\n"
                                               for s, v in curve) + json.dumps({"step": 5, "loss": 1.0}) + "\n")
    return run


def test_mean_std_per_group_teacher_rows_once_and_curves(tmp_path, capsys):
    a = _run(tmp_path, "a", 0.2, [(100, 0.3), (200, 0.2)])
    b = _run(tmp_path, "b", 0.4, [(100, 0.5), (200, 0.4)])
    assert main([f"TCD={a},{b}", f"ONE={a}", "--out", str(tmp_path / "cmp")]) == 0
    table = (tmp_path / "cmp" / "table.md").read_text()
    assert "| TCD | student, TCDScheduler (gamma 0.3) | 4 | 4 | 0.300 ± 0.141 | 30.0 | 0.900 | 280 |" in table
    assert "| ONE | student, TCDScheduler (gamma 0.3) | 4 | 4 | 0.200 |" in table
    assert table.count("fair baseline") == 1 and "| teacher | teacher DDIM-50 (reference) | 50 | 100 | - |" in table
    assert (tmp_path / "cmp" / "curves.png").is_file() and table in capsys.readouterr().out


def test_pivot_one_metric_by_step_count(tmp_path):
    from lcm_exp.evaluate.compare import pivot_table

    a, b = _run(tmp_path, "a", 0.2, []), _run(tmp_path, "b", 0.4, [])
    table = pivot_table({"TCD": [a, b]}, "latent_rmse")
    assert table.splitlines()[0] == "| method | 4 steps |"
    assert "| TCD (2 runs): student, TCDScheduler (gamma 0.3) | 0.300 ± 0.141 |" in table
    assert "| teacher DDIM trailing + CFG (fair baseline) | 0.396 |" in table and "reference" not in table
