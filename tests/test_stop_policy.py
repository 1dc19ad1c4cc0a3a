"""The stop policy's two decisions, with a fake clock: no real time, no training."""

import pytest

from snakesweep.session.stop_policy import (
    AUTO,
    DEFAULT_EXIT_S,
    StopPolicy,
    auto_margin,
    parse_margin,
)


def clock_at(now):
    return lambda: now


def test_no_deadline_never_stops():
    assert StopPolicy(clock=clock_at(1e9)).deadline_reason(None, 1e6, 1e6) is None


def test_stops_when_the_next_step_a_save_and_the_margin_do_not_fit():
    policy = StopPolicy(margin_s=30.0, clock=clock_at(1000.0))
    # 1000 + 5 + 2 + 30 = 1037: a deadline at 1038 leaves room, at 1037 it does not
    assert policy.deadline_reason(1038.0, next_work_s=5.0, save_s=2.0) is None
    reason = policy.deadline_reason(1037.0, next_work_s=5.0, save_s=2.0)
    assert reason == (
        "deadline in 37.0s cannot fit another step (5.00s) + save (2.00s) + margin (30.0s): stopping"
    )
    assert (
        StopPolicy(margin_s=0.0, clock=clock_at(1000.0)).deadline_reason(1037.0, 5.0, 2.0) is None
    )


def test_an_epoch_end_saves_unless_it_would_cost_more_than_the_overhead_share():
    policy = StopPolicy(max_overhead=0.01)
    assert policy.epoch_save_worth_it(since_last_save_s=100.0, save_s=1.0)  # 1 % exactly
    assert not policy.epoch_save_worth_it(since_last_save_s=99.0, save_s=1.0)
    assert StopPolicy(max_overhead=None).epoch_save_worth_it(0.0, 10.0)


def test_the_auto_margin_keeps_twice_the_measured_exit_when_killwait_can_catch_a_late_stop():
    # exit 0.5 s, step 0.1 s, save 0.2 s: KillWait 5 s >= 2 x (0.1 + 0.2 + 0.5) = 1.6 s
    assert auto_margin(0.5, next_work_s=0.1, save_s=0.2, kill_wait_s=5.0) == 1.0 + 2 * 0.5
    # until an exit is measured, 3 s is assumed
    assert auto_margin(None, 0.1, 0.2, kill_wait_s=30.0) == 1.0 + 2 * DEFAULT_EXIT_S


def test_the_auto_margin_keeps_a_spare_step_and_save_where_no_backstop_holds():
    backstopped = 1.0 + 2 * 0.5
    spare = 2 * (3.0 + 1.0)
    # KillWait 5 s < 2 x (3 + 1 + 0.5) = 9 s: a late stop would be killed before it saved
    assert auto_margin(0.5, next_work_s=3.0, save_s=1.0, kill_wait_s=5.0) == backstopped + spare
    assert auto_margin(0.5, next_work_s=3.0, save_s=1.0, kill_wait_s=9.0) == backstopped
    # outside SLURM (no KillWait) nothing catches it either
    assert auto_margin(0.5, 3.0, 1.0, kill_wait_s=None) == backstopped + spare


def test_an_auto_policy_stops_on_the_derived_margin_and_says_so():
    policy = StopPolicy(margin_s=AUTO, exit_s=0.5, kill_wait_s=30.0, clock=clock_at(1000.0))
    # 1000 + 1 (step) + 0.5 (save) + 2 (margin 1 + 2 x 0.5) = 1003.5
    assert policy.deadline_reason(1003.6, next_work_s=1.0, save_s=0.5) is None
    assert policy.deadline_reason(1003.5, next_work_s=1.0, save_s=0.5) == (
        "deadline in 3.5s cannot fit another step (1.00s) + save (0.50s) + margin (2.0s, auto): "
        "stopping"
    )
    assert StopPolicy(margin_s=7.0).margin(1.0, 0.5) == 7.0


def test_a_margin_is_a_number_of_seconds_or_auto():
    assert parse_margin("auto") == parse_margin(" AUTO ") == AUTO
    assert parse_margin("12.5") == parse_margin(12.5) == 12.5
    assert parse_margin(0) == 0.0
    for bad in ("-1", "soon", float("nan")):
        with pytest.raises(ValueError):
            parse_margin(bad)
