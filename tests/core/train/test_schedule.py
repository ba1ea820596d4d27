"""The schedule of a run, worked out from its plan: which steps validate,
when the final phase begins, when time and patience run out."""

import math

import pytest

from napari_weakseg.core.train.schedule import VALIDATIONS, Plan, Schedule


def test_validations_spread_over_the_part_before_the_final_phase():
    s = Schedule.of(Plan(100, final_phase=0.25, validations=5))
    assert s.final_from == 75 and s.has_final
    assert s.val_every == 15  # 75 steps / 5 validations
    assert [k for k in range(1, 101) if s.validates(k)][:5] == [
        15,
        30,
        45,
        60,
        75,
    ]


def test_val_every_wins_and_patience_checks_several_times():
    assert Schedule.of(Plan(100, val_every=7, patience=8)).val_every == 7
    # 10 validations would be every 10 steps; patience 8: every 2
    assert Schedule.of(Plan(100, patience=8)).val_every == 2
    assert Schedule.of(Plan(100, patience=2)).val_every == 1
    assert Schedule.of(Plan(3)).val_every == 1  # never 0
    assert Plan(5).validations == VALIDATIONS


def test_without_a_final_phase_there_is_none():
    s = Schedule.of(Plan(10))
    assert s.final_from == 10 and not s.has_final
    assert s.final_at(5.0) == math.inf
    assert not s.enters_final(10, lambda: math.inf, 0.0)
    assert s.end_after_plateau(4) is None  # out of patience: stop at once


def test_the_final_phase_begins_at_its_step_or_its_share_of_time():
    s = Schedule.of(Plan(8, minutes=1.0, final_phase=0.25))
    assert s.seconds == 60 and s.deadline(10.0) == 70.0
    assert s.final_at(10.0) == 55.0  # three quarters of the minute
    reads = []

    def clock():
        reads.append(1)
        return 0.0

    assert s.enters_final(6, clock, 55.0) and reads == []  # step decides
    assert not s.enters_final(5, clock, 55.0) and reads == [1]
    assert s.enters_final(5, lambda: 56.0, 55.0)


def test_time_share_is_zero_without_a_time_budget():
    assert Schedule.of(Plan(10)).time_share(1e9) == 0.0
    timed = Schedule.of(Plan(10, minutes=1.0))
    assert timed.time_share(30.0) == 0.5 and timed.time_share(90.0) == 1.0


def test_patience_counts_steps_since_the_best():
    s = Schedule.of(Plan(100, val_every=1, patience=3))
    assert not s.out_of_patience(4, 2) and s.out_of_patience(5, 2)
    assert not s.out_of_patience(50, None)  # no best yet
    assert not Schedule.of(Plan(100)).out_of_patience(99, 0)


@pytest.mark.parametrize(
    ("step", "end"), [(4, 5), (40, 53), (90, 100), (1, 2)]
)
def test_a_plateau_runs_the_final_phase_in_proportion(step, end):
    s = Schedule.of(Plan(100, val_every=1, patience=2, final_phase=0.25))
    assert s.end_after_plateau(step) == end  # a third of the steps done
