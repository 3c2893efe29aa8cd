"""Fill plans: the horizon, the run bounds, the high-water mark and the catch-up policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flowyard.errors import ConfigurationError
from flowyard.schemas.deployments import CronSchedule, IntervalSchedule
from flowyard.server.services.schedule_plans import FillPolicy, plan_fill

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
EVERY_10_MIN = IntervalSchedule(interval=600, anchor_date=datetime(2024, 1, 1, tzinfo=UTC))
DAILY = CronSchedule(cron="0 9 * * *")
POLICY = FillPolicy(horizon=timedelta(hours=1), max_runs=10, min_runs=3, max_catchup=100)


def minutes(*values: int) -> tuple[datetime, ...]:
    return tuple(NOW + timedelta(minutes=v) for v in values)


def test_a_new_schedule_gets_the_runs_inside_the_horizon() -> None:
    plan = plan_fill(EVERY_10_MIN, now=NOW, scheduled_until=None, catchup=False, policy=POLICY)
    assert plan.occurrences == minutes(0, 10, 20, 30, 40, 50, 60)
    assert plan.scheduled_until == NOW + timedelta(minutes=60)


def test_a_frequent_schedule_is_capped_at_max_runs() -> None:
    every_minute = CronSchedule(cron="* * * * *")
    plan = plan_fill(every_minute, now=NOW, scheduled_until=None, catchup=False, policy=POLICY)
    assert len(plan.occurrences) == 10
    assert plan.scheduled_until == NOW + timedelta(minutes=9)


def test_a_rare_schedule_gets_at_least_min_runs_beyond_the_horizon() -> None:
    plan = plan_fill(DAILY, now=NOW, scheduled_until=None, catchup=False, policy=POLICY)
    assert [t.day for t in plan.occurrences] == [2, 3, 4]
    assert plan.scheduled_until == datetime(2024, 6, 4, 9, tzinfo=UTC)


def test_a_second_plan_with_the_same_clock_creates_nothing() -> None:
    first = plan_fill(EVERY_10_MIN, now=NOW, scheduled_until=None, catchup=False, policy=POLICY)
    again = plan_fill(
        EVERY_10_MIN, now=NOW, scheduled_until=first.scheduled_until, catchup=False, policy=POLICY
    )
    assert again.occurrences == ()
    assert not again.changes(first.scheduled_until)


def test_a_later_plan_only_adds_what_lies_past_the_mark() -> None:
    mark = NOW + timedelta(minutes=60)
    plan = plan_fill(
        EVERY_10_MIN,
        now=NOW + timedelta(minutes=25),
        scheduled_until=mark,
        catchup=False,
        policy=POLICY,
    )
    assert plan.occurrences == minutes(70, 80)
    assert plan.scheduled_until == NOW + timedelta(minutes=80)


def test_a_rare_schedule_tops_up_to_min_runs_once_one_has_passed() -> None:
    mark = datetime(2024, 6, 4, 9, tzinfo=UTC)
    later = datetime(2024, 6, 2, 10, tzinfo=UTC)  # the 06-02 run is past: two remain
    plan = plan_fill(DAILY, now=later, scheduled_until=mark, catchup=False, policy=POLICY)
    assert plan.occurrences == (datetime(2024, 6, 5, 9, tzinfo=UTC),)


def test_missed_runs_after_downtime_are_skipped_without_catchup() -> None:
    mark = NOW - timedelta(days=1)
    plan = plan_fill(EVERY_10_MIN, now=NOW, scheduled_until=mark, catchup=False, policy=POLICY)
    assert plan.occurrences == minutes(0, 10, 20, 30, 40, 50, 60)
    assert plan.skipped_since == mark


def test_missed_runs_are_created_oldest_first_with_catchup() -> None:
    mark = NOW - timedelta(minutes=35)
    plan = plan_fill(EVERY_10_MIN, now=NOW, scheduled_until=mark, catchup=True, policy=POLICY)
    assert plan.occurrences == minutes(-30, -20, -10, 0, 10, 20, 30, 40, 50, 60)
    assert plan.skipped_since is None
    assert not plan.backlog


def test_a_long_catchup_backlog_is_created_in_bounded_batches_without_losing_any() -> None:
    policy = FillPolicy(horizon=timedelta(hours=1), max_runs=10, min_runs=3, max_catchup=100)
    mark: datetime | None = NOW - timedelta(days=1, minutes=5)  # 144 missed occurrences
    created: list[datetime] = []
    for _ in range(5):
        plan = plan_fill(EVERY_10_MIN, now=NOW, scheduled_until=mark, catchup=True, policy=policy)
        assert len(plan.occurrences) <= policy.max_catchup + policy.max_runs
        created += plan.occurrences
        if not plan.changes(mark):
            break
        mark = plan.scheduled_until
    expected = [NOW - timedelta(days=1) + timedelta(minutes=10 * i) for i in range(144 + 7)]
    assert created == expected


def test_the_first_catchup_batch_is_the_oldest_missed_runs_only() -> None:
    mark = NOW - timedelta(days=1, minutes=5)
    plan = plan_fill(EVERY_10_MIN, now=NOW, scheduled_until=mark, catchup=True, policy=POLICY)
    assert plan.backlog
    assert len(plan.occurrences) == 100
    assert plan.occurrences[0] == NOW - timedelta(days=1)
    assert plan.scheduled_until == plan.occurrences[-1]


def test_an_ended_schedule_skips_its_missed_runs_once() -> None:
    from flowyard.schemas.deployments import RRuleSchedule

    ended = RRuleSchedule(rrule="DTSTART:20240601T080000\nRRULE:FREQ=HOURLY;COUNT=3")
    mark = NOW - timedelta(hours=5)
    plan = plan_fill(ended, now=NOW, scheduled_until=mark, catchup=False, policy=POLICY)
    assert plan.occurrences == ()
    assert plan.skipped_since == mark
    assert plan.scheduled_until is not None
    again = plan_fill(
        ended, now=NOW, scheduled_until=plan.scheduled_until, catchup=False, policy=POLICY
    )
    assert again.skipped_since is None
    assert not again.changes(plan.scheduled_until)


def test_the_mark_never_moves_backwards() -> None:
    mark = NOW + timedelta(days=30)
    plan = plan_fill(EVERY_10_MIN, now=NOW, scheduled_until=mark, catchup=False, policy=POLICY)
    assert plan.occurrences == ()
    assert plan.scheduled_until == mark


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_runs": 2, "min_runs": 3}, "below min runs"),
        ({"min_runs": 0}, "at least 1"),
        ({"max_catchup": 0}, "at least 1"),
        ({"horizon": timedelta(seconds=-1)}, "negative"),
    ],
)
def test_an_inconsistent_policy_is_a_configuration_error(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        FillPolicy(**kwargs)  # type: ignore[arg-type]
