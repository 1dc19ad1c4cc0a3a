"""The stop policy's two decisions, with a fake clock: no real time, no training."""

from snakesweep.stop_policy import StopPolicy


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
