"""Schedule math: cron, interval and RRule occurrences in UTC, across DST transitions.

New York changed clocks on 2024-03-10 (02:00 EST -> 03:00 EDT) and on
2024-11-03 (02:00 EDT -> 01:00 EST).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from flowyard.schemas.deployments import CronSchedule, IntervalSchedule, RRuleSchedule
from flowyard.server.services.occurrences import (
    ScheduleError,
    iter_occurrences,
    next_occurrences,
    occurrences_between,
    parse_schedule,
)

NY = "America/New_York"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc,arg-type]


def hhmm(values: list[datetime]) -> list[str]:
    return [v.strftime("%m-%d %H:%MZ") for v in values]


def test_cron_is_evaluated_in_its_time_zone_and_returned_in_utc() -> None:
    spec = CronSchedule(cron="0 9 * * *", timezone="Europe/Paris")
    got = next_occurrences(spec, utc(2024, 1, 15, 0, 0), 2)
    assert got == [utc(2024, 1, 15, 8, 0), utc(2024, 1, 16, 8, 0)]
    assert all(v.tzinfo is UTC for v in got)


def test_a_daily_0230_cron_runs_at_0330_edt_on_the_spring_forward_day() -> None:
    spec = CronSchedule(cron="30 2 * * *", timezone=NY)
    got = next_occurrences(spec, utc(2024, 3, 8, 12, 0), 4)
    # 02:30 EST, then 02:30 does not exist -> 03:30 EDT, then 02:30 EDT.
    assert hhmm(got) == ["03-09 07:30Z", "03-10 07:30Z", "03-11 06:30Z", "03-12 06:30Z"]


def test_the_shifted_spring_forward_run_is_found_from_a_start_after_the_transition() -> None:
    spec = CronSchedule(cron="30 2 * * *", timezone=NY)
    # 07:10Z is 03:10 EDT: past 02:30 on the wall clock, but before the shifted 03:30 run.
    assert next_occurrences(spec, utc(2024, 3, 10, 7, 10), 1) == [utc(2024, 3, 10, 7, 30)]


def test_a_daily_0130_cron_runs_once_on_the_fall_back_day() -> None:
    spec = CronSchedule(cron="30 1 * * *", timezone=NY)
    got = next_occurrences(spec, utc(2024, 11, 1, 12, 0), 4)
    # 01:30 happens twice on 11-03; the run is the first (EDT, 05:30Z), not also 06:30Z.
    assert hhmm(got) == ["11-02 05:30Z", "11-03 05:30Z", "11-04 06:30Z", "11-05 06:30Z"]


def test_an_hourly_cron_pauses_two_hours_when_clocks_go_back() -> None:
    spec = CronSchedule(cron="0 * * * *", timezone=NY)
    got = next_occurrences(spec, utc(2024, 11, 3, 3, 0), 5)
    # 01:00 EDT (05Z) fires; the second 01:00 (EST, 06Z) does not; 02:00 EST is 07Z.
    assert hhmm(got) == [
        "11-03 03:00Z",
        "11-03 04:00Z",
        "11-03 05:00Z",
        "11-03 07:00Z",
        "11-03 08:00Z",
    ]


def test_an_hourly_cron_fires_every_elapsed_hour_when_clocks_go_forward() -> None:
    spec = CronSchedule(cron="0 * * * *", timezone=NY)
    got = next_occurrences(spec, utc(2024, 3, 10, 5, 0), 4)
    # 02:00 does not exist and coincides with 03:00 EDT: no duplicate, no hole.
    assert hhmm(got) == ["03-10 05:00Z", "03-10 06:00Z", "03-10 07:00Z", "03-10 08:00Z"]


def test_an_occurrence_exactly_at_start_is_included() -> None:
    spec = CronSchedule(cron="*/15 * * * *")
    assert next_occurrences(spec, utc(2024, 5, 1, 10, 15), 1) == [utc(2024, 5, 1, 10, 15)]
    assert next_occurrences(spec, utc(2024, 5, 1, 10, 15, 0) + timedelta(microseconds=1), 1) == [
        utc(2024, 5, 1, 10, 30)
    ]


def test_a_cron_that_never_fires_has_no_occurrences() -> None:
    assert next_occurrences(CronSchedule(cron="0 0 30 2 *"), utc(2024, 1, 1), 3) == []


def test_an_interval_is_anchored_to_its_anchor_date() -> None:
    spec = IntervalSchedule(interval=600, anchor_date=utc(2024, 1, 1, 0, 3))
    got = next_occurrences(spec, utc(2024, 6, 1, 12, 0), 3)
    assert got == [utc(2024, 6, 1, 12, 3), utc(2024, 6, 1, 12, 13), utc(2024, 6, 1, 12, 23)]


def test_an_interval_without_anchor_is_aligned_to_2020_in_its_time_zone() -> None:
    spec = IntervalSchedule(interval=3600, timezone="Asia/Kolkata")  # UTC+05:30
    assert next_occurrences(spec, utc(2024, 6, 1, 12, 0), 1) == [utc(2024, 6, 1, 12, 30)]


def test_occurrences_before_the_anchor_keep_its_phase() -> None:
    spec = IntervalSchedule(interval=600, anchor_date=utc(2030, 1, 1, 0, 3))
    assert next_occurrences(spec, utc(2024, 6, 1, 12, 0), 1) == [utc(2024, 6, 1, 12, 3)]


def test_a_daily_interval_keeps_its_local_time_across_spring_forward() -> None:
    anchor = datetime(2024, 3, 1, 2, 30)  # naive: a wall time in the schedule's zone
    spec = IntervalSchedule(interval=86400, anchor_date=anchor, timezone=NY)
    got = next_occurrences(spec, utc(2024, 3, 8, 12, 0), 4)
    assert hhmm(got) == ["03-09 07:30Z", "03-10 07:30Z", "03-11 06:30Z", "03-12 06:30Z"]


def test_a_daily_interval_keeps_its_local_time_across_fall_back() -> None:
    spec = IntervalSchedule(interval=86400, anchor_date=datetime(2024, 10, 1, 9, 0), timezone=NY)
    got = next_occurrences(spec, utc(2024, 11, 2, 0, 0), 3)
    assert hhmm(got) == ["11-02 13:00Z", "11-03 14:00Z", "11-04 14:00Z"]


def test_an_hourly_interval_counts_elapsed_hours_across_fall_back() -> None:
    spec = IntervalSchedule(interval=3600, timezone=NY)
    got = next_occurrences(spec, utc(2024, 11, 3, 4, 0), 4)
    assert hhmm(got) == ["11-03 04:00Z", "11-03 05:00Z", "11-03 06:00Z", "11-03 07:00Z"]


def test_an_rrule_is_read_in_its_time_zone_across_spring_forward() -> None:
    spec = RRuleSchedule(rrule="FREQ=DAILY;BYHOUR=2;BYMINUTE=30", timezone=NY)
    got = next_occurrences(spec, utc(2024, 3, 8, 12, 0), 4)
    assert hhmm(got) == ["03-09 07:30Z", "03-10 07:30Z", "03-11 06:30Z", "03-12 06:30Z"]


def test_an_rrule_fires_once_at_a_repeated_wall_time_on_fall_back() -> None:
    spec = RRuleSchedule(rrule="FREQ=DAILY;BYHOUR=1;BYMINUTE=30", timezone=NY)
    got = next_occurrences(spec, utc(2024, 11, 2, 12, 0), 3)
    assert hhmm(got) == ["11-03 05:30Z", "11-04 06:30Z", "11-05 06:30Z"]


def test_an_rrule_with_dtstart_count_and_exdate_is_honoured() -> None:
    spec = RRuleSchedule(
        rrule="DTSTART:20240101T090000\nRRULE:FREQ=DAILY;COUNT=4\nEXDATE:20240102T090000",
        timezone="Europe/Paris",
    )
    got = next_occurrences(spec, utc(2023, 1, 1), 10)
    assert got == [utc(2024, 1, 1, 8), utc(2024, 1, 3, 8), utc(2024, 1, 4, 8)]


def test_an_rrule_until_in_local_time_ends_the_schedule() -> None:
    spec = RRuleSchedule(rrule="FREQ=DAILY;BYHOUR=9;UNTIL=20240103T090000", timezone=NY)
    got = next_occurrences(spec, utc(2024, 1, 1), 10)
    assert hhmm(got) == ["01-01 14:00Z", "01-02 14:00Z", "01-03 14:00Z"]


def test_an_every_minute_rrule_years_after_its_start_keeps_its_phase() -> None:
    spec = RRuleSchedule(rrule="FREQ=MINUTELY;INTERVAL=7", timezone="UTC")
    start = utc(2031, 6, 1, 12, 0)
    got = next_occurrences(spec, start, 3)
    # 2020-01-01T00:00Z plus whole multiples of 7 minutes.
    epoch = utc(2020, 1, 1)
    assert all((t - epoch) % timedelta(minutes=7) == timedelta(0) for t in got)
    assert got[0] - start < timedelta(minutes=7)
    assert got[1] - got[0] == timedelta(minutes=7)


def test_occurrences_between_is_inclusive_and_bounded() -> None:
    spec = CronSchedule(cron="0 * * * *")
    got = occurrences_between(spec, utc(2024, 1, 1, 1), utc(2024, 1, 1, 4), limit=10)
    assert got == [utc(2024, 1, 1, h) for h in (1, 2, 3, 4)]
    assert len(occurrences_between(spec, utc(2024, 1, 1, 1), utc(2024, 1, 2), limit=3)) == 3


@pytest.mark.parametrize(
    "spec",
    [
        CronSchedule(cron="*/5 * * * *", timezone=NY),
        IntervalSchedule(interval=90, timezone=NY),
        RRuleSchedule(rrule="FREQ=MINUTELY;INTERVAL=5", timezone=NY),
    ],
)
def test_occurrences_are_strictly_increasing_through_both_transitions(
    spec: CronSchedule | IntervalSchedule | RRuleSchedule,
) -> None:
    for start in (utc(2024, 3, 10, 5, 0), utc(2024, 11, 3, 4, 0)):
        got = next_occurrences(spec, start, 80)
        assert len(got) == 80
        assert all(a < b for a, b in itertools.pairwise(got))
        assert got[0] >= start


def test_iter_occurrences_refuses_a_naive_start() -> None:
    with pytest.raises(ScheduleError, match="aware"):
        next(iter_occurrences(CronSchedule(cron="* * * * *"), datetime(2024, 1, 1)))


def test_a_stored_schedule_is_read_back_as_its_wire_model() -> None:
    stored = IntervalSchedule(interval=60, anchor_date=utc(2024, 1, 1)).model_dump(mode="json")
    assert parse_schedule(stored) == IntervalSchedule(interval=60, anchor_date=utc(2024, 1, 1))
    assert isinstance(parse_schedule({"cron": "0 0 * * *"}), CronSchedule)
    assert isinstance(parse_schedule({"rrule": "FREQ=DAILY"}), RRuleSchedule)


def test_an_unreadable_stored_schedule_is_a_schedule_error() -> None:
    with pytest.raises(ScheduleError, match="unreadable schedule"):
        parse_schedule({"every": "tuesday"})
    with pytest.raises(ScheduleError, match="unknown time zone"):
        next_occurrences(
            CronSchedule.model_construct(cron="* * * * *", timezone="Mars/Base"), utc(2024, 1, 1), 1
        )


def test_an_rrule_decades_after_its_start_keeps_its_phase_without_replaying_it() -> None:
    # Replaying 80 years of 30-second steps would take minutes; fast-forward keeps the phase.
    spec = RRuleSchedule(rrule="FREQ=SECONDLY;INTERVAL=30", timezone="UTC")
    near = next_occurrences(spec, utc(2020, 1, 1, 0, 0, 10), 2)
    far = next_occurrences(spec, utc(2099, 1, 1, 0, 0, 10), 2)
    assert [t.second for t in near] == [t.second for t in far] == [30, 0]
