import csv

from lcm_exp.evaluate.claims import MUST_HOLD, Claim, check, claims_table, main


def _rows(student_rmse: float):
    rows = []
    for steps in (1, 2, 4):
        rows += [
            {"method": "student", "steps": str(steps), "latent_rmse": str(student_rmse), "psnr_db": "30",
             "attr_acc": "0.9", "fd": "100"},
            {"method": "ddim_trailing", "steps": str(steps), "latent_rmse": "1.0", "psnr_db": "20",
             "attr_acc": "0.8", "fd": "200"},
            {"method": "undistilled", "steps": str(steps), "latent_rmse": "0.8", "psnr_db": "25",
             "attr_acc": "0.7", "fd": "300"},
        ]  # fmt: skip
    return rows


def test_direction_per_metric():
    rows = _rows(0.5)
    assert check(rows, Claim("latent_rmse", 1, "ddim_trailing")) == (0.5, 1.0, True)  # lower is better
    assert check(rows, Claim("psnr_db", 1, "undistilled")) == (30.0, 25.0, True)  # higher is better
    assert check(_rows(0.9), Claim("latent_rmse", 2, "undistilled"))[2] is False
    assert check(rows, Claim("fd", 8, "ddim_trailing")) == (None, None, None)
    assert all(check(rows, c)[2] for c in MUST_HOLD)


def test_table_and_exit_code(tmp_path, capsys):
    for name, rmse in [("good", 0.5), ("bad", 0.9)]:
        (tmp_path / name / "eval").mkdir(parents=True)
        with open(tmp_path / name / "eval" / "results.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["method", "steps", "latent_rmse", "psnr_db", "attr_acc", "fd"])
            writer.writeheader()
            writer.writerows(_rows(rmse))
    assert main([str(tmp_path / "good")]) == 0
    assert main([str(tmp_path / "good"), str(tmp_path / "bad")]) == 1
    out = capsys.readouterr().out
    assert "| student beats undistilled on latent_rmse at 1 step | 0.5 vs 0.8 | 0.9 vs 0.8 | NO |" in out
    assert "(stretch)" in claims_table({"x": _rows(0.5)})


def test_flow_runs_are_held_to_the_euler_claims(tmp_path, capsys):
    """Rows with Euler baselines are a flow teacher's: the must-hold claims compare with Euler + CFG (issue 16),
    the DDIM claims are not asked for."""
    from lcm_exp.evaluate.claims import CLAIMS, claims_for

    flow = [{**r, "method": "euler_cfg"} if r["method"] == "ddim_trailing" else r for r in _rows(0.5)]
    must_hold, stretch = claims_for({"x": flow})
    assert must_hold is CLAIMS["flow"][0] and {c.baseline for c in must_hold} == {"euler_cfg", "undistilled"}
    assert {(c.metric, c.steps) for c in must_hold} == {(m, s) for m in ("latent_rmse", "psnr_db") for s in (1, 2)}
    assert all(not c.must_hold for c in stretch)
    assert claims_for({"x": _rows(0.5)})[0] is MUST_HOLD
    (tmp_path / "flow" / "eval").mkdir(parents=True)
    with open(tmp_path / "flow" / "eval" / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["method", "steps", "latent_rmse", "psnr_db", "attr_acc", "fd"])
        writer.writeheader()
        writer.writerows([{**r, "attr_acc": "0.1"} if r["method"] == "student" else r for r in flow])
    assert main([str(tmp_path / "flow")]) == 0  # attribute accuracy below Euler's is a stretch for flow teachers
    out = capsys.readouterr().out
    assert "| student beats euler_cfg on latent_rmse at 1 step | 0.5 vs 1 | yes |" in out
    assert "ddim_trailing" not in out
