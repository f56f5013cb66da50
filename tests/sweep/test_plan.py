"""plan.py: which jobs a sweep launches; no combination with w_min > w_max ever gets through."""

from __future__ import annotations

import pytest

from lcm_exp.sweep.plan import MAX_DIR_NAME, SweepPlanError, job_dirname, plan_jobs


def _w(job, key):
    return float(next(o for o in job.overrides if o.startswith(key + "=")).split("=")[1])


def test_pairs_make_one_job_each_with_both_values_set_together():
    plan = plan_jobs(["trainer.max_train_steps=3"], guidance_pairs=[[2, 6], [3, 9], [8, 8]])
    assert [j.overrides for j in plan.jobs] == [
        ["trainer.max_train_steps=3", "guidance.w_min=2", "guidance.w_max=6"],
        ["trainer.max_train_steps=3", "guidance.w_min=3", "guidance.w_max=9"],
        ["trainer.max_train_steps=3", "guidance.w_min=8", "guidance.w_max=8"],
    ]
    assert [j.dirname for j in plan.jobs] == ["guidance.w_min=2,guidance.w_max=6", "guidance.w_min=3,guidance.w_max=9",
                                              "guidance.w_min=8,guidance.w_max=8"]  # fmt: skip


def test_pairs_times_an_axis():
    plan = plan_jobs(["loss.huber_c=0.001,0.01"], guidance_pairs=[[2, 6], [3, 9]])
    assert len(plan.jobs) == 4
    assert plan.jobs[1].swept == ["loss.huber_c=0.001", "guidance.w_min=3", "guidance.w_max=9"]


def test_grid_drops_inverted_combinations_before_launch():
    plan = plan_jobs(["guidance.w_min=1,5,9", "guidance.w_max=3,9"])
    kept = [(_w(j, "guidance.w_min"), _w(j, "guidance.w_max")) for j in plan.jobs]
    assert kept == [(1, 3), (1, 9), (5, 9), (9, 9)]
    assert plan.dropped == [["guidance.w_min=5", "guidance.w_max=3"], ["guidance.w_min=9", "guidance.w_max=3"]]


def test_a_value_the_overrides_do_not_set_comes_from_the_composed_config():
    asked = []

    def effective(overrides):  # stands in for composing the job: w_max stays at its default 15
        asked.append(list(overrides))
        return 5.0, 15.0

    plan = plan_jobs(["guidance.w_min=1,20"], effective_guidance=effective)
    assert [_w(j, "guidance.w_min") for j in plan.jobs] == [1.0]
    assert plan.dropped == [["guidance.w_min=20"]]
    assert asked == [["guidance.w_min=1"], ["guidance.w_min=20"]]


def test_composed_config_is_not_consulted_when_both_values_are_explicit():
    def effective(overrides):
        raise AssertionError("no composition needed")

    assert len(plan_jobs(["seed=0,1"], guidance_pairs=[[2, 6]], effective_guidance=effective).jobs) == 2


@pytest.mark.parametrize(
    ("pairs", "match"),
    [([[9, 3]], r"guidance_pairs\[0\].w_min=9.0 > .*guidance_pairs\[0\].w_max=3.0"), ([[1, 2, 3]], "a pair is"), ([["a", 2]], "numbers")],
)
def test_bad_pair_stops_the_sweep(pairs, match):
    with pytest.raises(SweepPlanError, match=match):
        plan_jobs([], guidance_pairs=pairs)


def test_pairs_and_a_guidance_axis_conflict():
    with pytest.raises(SweepPlanError, match="guidance.w_min is set both"):
        plan_jobs(["guidance.w_min=1,2"], guidance_pairs=[[2, 6]])


def test_nothing_left_is_an_error():
    with pytest.raises(SweepPlanError, match="nothing to launch"):
        plan_jobs(["guidance.w_min=9", "guidance.w_max=3"])


def test_variants_link_a_group_choice_with_its_own_keys():
    plan = plan_jobs([], variants={"loss": [["loss=l2"], ["loss=huber", "loss.huber_c=0.01"]]})
    assert [j.overrides for j in plan.jobs] == [["loss=l2"], ["loss=huber", "loss.huber_c=0.01"]]
    assert [j.dirname for j in plan.jobs] == ["loss=l2", "loss=huber,loss.huber_c=0.01"]


def test_later_override_of_a_key_replaces_the_earlier_one():
    plan = plan_jobs(["loss.huber_c=0.1,0.2", "loss.huber_c=0.3"])
    assert [j.overrides for j in plan.jobs] == [["loss.huber_c=0.3"]]


def test_dirname_is_sanitized_and_bounded():
    assert job_dirname([]) == "job"
    assert job_dirname(["data.path=/a/b c"]) == "data.path=_a_b_c"
    long = job_dirname([f"k{i}.key=value{i}" for i in range(40)])
    assert len(long) == MAX_DIR_NAME
    assert long != job_dirname([f"k{i}.key=value{i}" for i in range(41)])
