"""The DST rule, in a table: New York, Berlin and Lord Howe (a 30-minute shift).

Spring forward: a nonexistent local time moves to the next valid minute (fixed-time
schedules) or is skipped (interval schedules). Fall back: a fixed-time schedule fires
once, at the first occurrence; an interval schedule fires on both repeated spans.
Windows are local days: 23/25 hours (23.5/24.5 on Lord Howe) on the change days.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from onceflow.schedule import ScheduleCalculator, calculate_next_run


def ticks(cron: str, zone: str, after: str, until: str) -> list[tuple[str, str]]:
    calc = ScheduleCalculator(cron, zone)
    return [
        (t.local.isoformat(), t.at.isoformat())
        for t in calc.ticks(datetime.fromisoformat(after), until=datetime.fromisoformat(until))
    ]


DAILY = [
    # (zone, cron, after (UTC), until (UTC), expected [(local, utc)])
    pytest.param(
        "America/New_York",
        "30 2 * * *",
        "2025-03-08T12:00:00+00:00",
        "2025-03-10T12:00:00+00:00",
        [
            ("2025-03-09T03:00:00-04:00", "2025-03-09T07:00:00+00:00"),
            ("2025-03-10T02:30:00-04:00", "2025-03-10T06:30:00+00:00"),
        ],
        id="new-york-spring-forward-02:30-moves-to-03:00",
    ),
    pytest.param(
        "America/New_York",
        "30 1 * * *",
        "2025-11-01T12:00:00+00:00",
        "2025-11-03T12:00:00+00:00",
        [
            ("2025-11-02T01:30:00-04:00", "2025-11-02T05:30:00+00:00"),
            ("2025-11-03T01:30:00-05:00", "2025-11-03T06:30:00+00:00"),
        ],
        id="new-york-fall-back-01:30-fires-once",
    ),
    pytest.param(
        "Europe/Berlin",
        "30 2 * * *",
        "2025-03-29T12:00:00+00:00",
        "2025-03-31T12:00:00+00:00",
        [
            ("2025-03-30T03:00:00+02:00", "2025-03-30T01:00:00+00:00"),
            ("2025-03-31T02:30:00+02:00", "2025-03-31T00:30:00+00:00"),
        ],
        id="berlin-spring-forward-02:30-moves-to-03:00",
    ),
    pytest.param(
        "Europe/Berlin",
        "30 2 * * *",
        "2025-10-25T12:00:00+00:00",
        "2025-10-27T12:00:00+00:00",
        [
            ("2025-10-26T02:30:00+02:00", "2025-10-26T00:30:00+00:00"),
            ("2025-10-27T02:30:00+01:00", "2025-10-27T01:30:00+00:00"),
        ],
        id="berlin-fall-back-02:30-fires-once",
    ),
    pytest.param(
        "Australia/Lord_Howe",
        "15 2 * * *",
        "2025-10-04T00:00:00+00:00",
        "2025-10-05T12:00:00+00:00",
        [("2025-10-05T02:30:00+11:00", "2025-10-04T15:30:00+00:00")],
        id="lord-howe-spring-forward-02:15-moves-to-02:30",
    ),
    pytest.param(
        "Australia/Lord_Howe",
        "45 1 * * *",
        "2025-04-05T00:00:00+00:00",
        "2025-04-06T12:00:00+00:00",
        [("2025-04-06T01:45:00+11:00", "2025-04-05T14:45:00+00:00")],
        id="lord-howe-fall-back-01:45-fires-once",
    ),
]


@pytest.mark.parametrize(("zone", "cron", "after", "until", "expected"), DAILY)
def test_daily_schedules_across_dst(
    zone: str, cron: str, after: str, until: str, expected: list[tuple[str, str]]
) -> None:
    assert ticks(cron, zone, after, until) == expected


HOURLY = [
    # zone, cron, local day's UTC span, how many ticks, the repeated/missing local times
    pytest.param(
        "America/New_York",
        "30 * * * *",
        "2025-11-02T04:00:00+00:00",
        "2025-11-03T05:00:00+00:00",
        25,
        id="new-york-fall-back-25-hourly-ticks",
    ),
    pytest.param(
        "America/New_York",
        "30 * * * *",
        "2025-03-09T05:00:00+00:00",
        "2025-03-10T04:00:00+00:00",
        23,
        id="new-york-spring-forward-23-hourly-ticks",
    ),
    pytest.param(
        "Europe/Berlin",
        "0 * * * *",
        "2025-10-25T21:59:00+00:00",
        "2025-10-26T22:59:00+00:00",
        25,
        id="berlin-fall-back-25-hourly-ticks",
    ),
    pytest.param(
        "Europe/Berlin",
        "0 * * * *",
        "2025-03-29T22:59:00+00:00",
        "2025-03-30T21:59:00+00:00",
        23,
        id="berlin-spring-forward-23-hourly-ticks",
    ),
]


@pytest.mark.parametrize(("zone", "cron", "after", "until", "count"), HOURLY)
def test_hourly_schedules_fire_on_both_repeated_hours(
    zone: str, cron: str, after: str, until: str, count: int
) -> None:
    found = ticks(cron, zone, after, until)
    assert len(found) == count
    instants = [utc for _, utc in found]
    assert instants == sorted(set(instants))  # strictly increasing, none twice
    locals_ = [local[11:16] for local, _ in found]
    if count == 25:
        assert len(locals_) - len(set(locals_)) == 1  # one local hour happened twice


def test_interval_schedules_fire_in_both_passes_of_lord_howes_half_hour() -> None:
    found = ticks(
        "*/15 * * * *",
        "Australia/Lord_Howe",
        "2025-04-05T14:00:00+00:00",
        "2025-04-05T16:00:00+00:00",
    )
    assert found == [
        ("2025-04-06T01:15:00+11:00", "2025-04-05T14:15:00+00:00"),
        ("2025-04-06T01:30:00+11:00", "2025-04-05T14:30:00+00:00"),
        ("2025-04-06T01:45:00+11:00", "2025-04-05T14:45:00+00:00"),
        ("2025-04-06T01:30:00+10:30", "2025-04-05T15:00:00+00:00"),
        ("2025-04-06T01:45:00+10:30", "2025-04-05T15:15:00+00:00"),
        ("2025-04-06T02:00:00+10:30", "2025-04-05T15:30:00+00:00"),
        ("2025-04-06T02:15:00+10:30", "2025-04-05T15:45:00+00:00"),
        ("2025-04-06T02:30:00+10:30", "2025-04-05T16:00:00+00:00"),
    ]


FIXED_HOUR = [
    # a step, range or wildcard minute in a fixed hour: the gap's ticks collapse into one
    # at its end, and the change day's run date is processed
    pytest.param(
        "Europe/Berlin",
        "*/15 2 * * *",
        "2026-03-28T12:00:00+00:00",
        "2026-03-30T12:00:00+00:00",
        ["2026-03-29T03:00:00+02:00", *(f"2026-03-30T02:{m:02}:00+02:00" for m in (0, 15, 30, 45))],
        id="berlin-*/15-2-moves-to-03:00",
    ),
    pytest.param(
        "America/New_York",
        "* 2 * * *",
        "2026-03-08T05:00:00+00:00",
        "2026-03-08T12:00:00+00:00",
        ["2026-03-08T03:00:00-04:00"],
        id="new-york-*-2-moves-to-03:00",
    ),
    pytest.param(
        "America/Santiago",
        "*/30 0 * * *",
        "2026-09-05T12:00:00+00:00",
        "2026-09-06T12:00:00+00:00",
        ["2026-09-06T01:00:00-03:00"],
        id="santiago-*/30-0-moves-to-01:00",
    ),
    pytest.param(
        "Europe/Berlin",
        "0 2-3 * * *",
        "2026-03-28T12:00:00+00:00",
        "2026-03-29T12:00:00+00:00",
        ["2026-03-29T03:00:00+02:00"],
        id="berlin-2-3-one-tick-at-03:00",
    ),
    pytest.param(
        "America/New_York",
        "*/30 1 * * *",
        "2026-11-01T04:00:00+00:00",
        "2026-11-01T12:00:00+00:00",
        ["2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00"],
        id="new-york-fall-back-*/30-1-fires-once-each",
    ),
]


@pytest.mark.parametrize(("zone", "cron", "after", "until", "expected"), FIXED_HOUR)
def test_a_step_or_range_in_a_fixed_hour_is_a_fixed_time_across_dst(
    zone: str, cron: str, after: str, until: str, expected: list[str]
) -> None:
    assert [local for local, _ in ticks(cron, zone, after, until)] == expected


@pytest.mark.parametrize(
    ("cron", "zone", "first"),
    [
        ("*/15 2 * * *", "Europe/Berlin", "2026-03-27"),
        ("* 2 * * *", "America/New_York", "2026-03-06"),
        ("*/30 0 * * *", "America/Santiago", "2026-09-04"),
        ("0 */24 * * *", "America/Santiago", "2026-09-04"),
        ("*/15 2 * * *", "Australia/Lord_Howe", "2026-10-02"),
    ],
)
def test_no_run_date_is_lost_on_a_spring_forward_day(cron: str, zone: str, first: str) -> None:
    calc = ScheduleCalculator(cron, zone)
    start = datetime.fromisoformat(first).replace(tzinfo=ZoneInfo(zone))
    dates = sorted({t.run_date for t in calc.ticks(start, until=start + timedelta(days=4))})
    assert dates == [dates[0] + timedelta(days=n) for n in range(len(dates))]
    assert len(dates) >= 3


# Zones whose spring-forward gap ends at midnight (tzdata): the gap's end is the next day.
MIDNIGHT_GAPS = [
    ("America/Nuuk", "2027-03-27"),  # 23:00 -02 -> 00:00 -01, the reviewer's repro
    ("America/Nuuk", "2026-03-28"),
    ("America/Scoresbysund", "2027-03-27"),
    ("Asia/Pyongyang", "2018-05-04"),  # 23:30 -> 00:00: a half-hour gap
    ("Africa/Algiers", "1971-04-25"),
]


@pytest.mark.parametrize(
    ("zone", "gap_day", "cron"),
    [
        (zone, day, cron)
        for zone, day in MIDNIGHT_GAPS
        for cron in ["0 23 * * *", "30 23 * * *", "59 23 * * *", "*/15 23 * * *"]
        # Pyongyang's gap starts at 23:30: 23:00 and 23:15 exist
        if not (zone == "Asia/Pyongyang" and cron in ("0 23 * * *", "*/15 23 * * *"))
    ],
)
@pytest.mark.parametrize("days_before", [1, 0])
def test_a_tick_moved_past_midnight_keeps_the_run_date_of_the_day_it_was_scheduled_on(
    zone: str, gap_day: str, cron: str, days_before: int
) -> None:
    calc = ScheduleCalculator(cron, zone, window_days_before=days_before)
    day = datetime.fromisoformat(gap_day).date()
    start = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone)) - timedelta(days=2)
    got = list(calc.ticks(start, until=start + timedelta(days=5)))
    # the gap day's tick fires at the next midnight, for the gap day's run date: taking
    # the date from the moved local time processed the next day twice and this one never
    (moved,) = [t for t in got if t.local.date() > day and t.local.hour == 0]
    assert moved.local.replace(tzinfo=None) == datetime(day.year, day.month, day.day + 1)
    assert moved.run_date == day - timedelta(days=days_before)
    dates = [t.run_date for t in got]
    days = sorted(set(dates))
    assert days == [days[0] + timedelta(days=n) for n in range(len(days))]
    if cron.split()[0].isdigit():  # one tick a day: each run date once
        assert len(dates) == len(days) == 5
    assert calc.tick_at(moved.at) == moved  # the scheduler rebuilds ticks from instants


@pytest.mark.parametrize("cron", ["0 0 * * *", "30 0 * * *", "*/30 0 * * *", "0 0,23 * * *"])
def test_ticks_after_a_midnight_ending_gap_keep_their_own_day(cron: str) -> None:
    calc = ScheduleCalculator(cron, "America/Nuuk")
    start = datetime(2027, 3, 25, tzinfo=UTC)
    got = list(calc.ticks(start, until=start + timedelta(days=5)))
    days = sorted({t.run_date for t in got})
    assert days == [days[0] + timedelta(days=n) for n in range(len(days))]
    for tick in got:
        if not (cron == "0 0,23 * * *" and tick.local.date().isoformat() == "2027-03-28"):
            assert tick.run_date == tick.local.date() - timedelta(days=1)
    if cron == "0 0,23 * * *":
        # 23:00 on the 27th moves to 00:00 on the 28th, one instant with that day's own
        # 00:00 tick: it keeps the 27th (run date the 26th); the 28th runs at 23:00
        at_midnight = [t for t in got if t.local.isoformat() == "2027-03-28T00:00:00-01:00"]
        assert [t.run_date.isoformat() for t in at_midnight] == ["2027-03-26"]


def test_the_run_dates_across_a_midnight_ending_gap_are_consecutive() -> None:
    calc = ScheduleCalculator("30 23 * * *", "America/Nuuk")
    dates = calc.run_dates(datetime(2027, 3, 24, tzinfo=UTC), 6)
    assert dates == [datetime(2027, 3, 22).date() + timedelta(days=n) for n in range(6)]


@pytest.mark.parametrize(
    ("zone", "after"),
    [("Pacific/Apia", "2011-12-28"), ("Pacific/Kiritimati", "1994-12-29")],
)
def test_a_day_that_a_zone_skips_whole_does_not_stop_the_ticks(zone: str, after: str) -> None:
    # Apia crossed the date line: 2011-12-30 has no local time at all. The search for the
    # gap's end stopped after 3 hours and raised ValueError
    calc = ScheduleCalculator("0 2 * * *", zone)
    got = calc.preview(datetime.fromisoformat(after).replace(tzinfo=UTC), 4)
    days = [t.run_date for t in got]
    assert days == [days[0] + timedelta(days=n) for n in range(4)]


@pytest.mark.parametrize(
    ("cron", "interval"),
    [
        ("0 * * * *", True),
        ("*/15 * * * *", True),
        ("0 */2 * * *", True),
        ("*/15 2 * * *", False),
        ("* 2 * * *", False),
        ("0 2-3 * * *", False),
        ("0 */24 * * *", False),  # hour 0 alone
        ("30 2 * * *", False),
    ],
)
def test_a_schedule_is_an_interval_one_when_its_hour_field_starts_with_a_star(
    cron: str, interval: bool
) -> None:
    assert ScheduleCalculator(cron, "UTC").interval is interval


def test_an_hourly_schedule_still_skips_the_hour_a_spring_forward_gap_removes() -> None:
    quarter = ticks(
        "*/15 * * * *", "Europe/Berlin", "2026-03-28T22:59:00+00:00", "2026-03-29T21:59:00+00:00"
    )
    assert len(quarter) == 23 * 4
    assert not [local for local, _ in quarter if local[11:13] == "02"]


WINDOWS = [
    pytest.param("America/New_York", "2025-03-10T06:30:00+00:00", "2025-03-09", 23.0, id="ny-23h"),
    pytest.param("America/New_York", "2025-11-03T06:30:00+00:00", "2025-11-02", 25.0, id="ny-25h"),
    pytest.param("Europe/Berlin", "2025-03-31T00:30:00+00:00", "2025-03-30", 23.0, id="berlin-23h"),
    pytest.param("Europe/Berlin", "2025-10-27T01:30:00+00:00", "2025-10-26", 25.0, id="berlin-25h"),
    pytest.param(
        "Australia/Lord_Howe", "2025-10-05T15:30:00+00:00", "2025-10-05", 23.5, id="lord-howe-23.5h"
    ),
    pytest.param(
        "Australia/Lord_Howe", "2025-04-06T15:30:00+00:00", "2025-04-06", 24.5, id="lord-howe-24.5h"
    ),
]


@pytest.mark.parametrize(("zone", "instant", "run_date", "hours"), WINDOWS)
def test_a_tick_processes_the_previous_local_day(
    zone: str, instant: str, run_date: str, hours: float
) -> None:
    tick = ScheduleCalculator("30 2 * * *", zone).tick_at(datetime.fromisoformat(instant))
    assert tick.run_date.isoformat() == run_date
    assert tick.window.hours == hours
    assert tick.window.start.tzinfo is not None and tick.window.start.hour == 0


def test_window_days_before_and_the_pipelines_zone() -> None:
    calc = ScheduleCalculator("0 6 * * *", "Europe/Berlin", window_days_before=0, window_zone="UTC")
    tick = calc.next_tick(datetime(2025, 3, 30, 0, 0, tzinfo=UTC))
    assert tick.run_date.isoformat() == "2025-03-30" and tick.window.hours == 24


def test_the_seeds_calculate_next_run_and_is_due() -> None:
    calc = ScheduleCalculator("0 2 * * *", "America/New_York")
    last = datetime(2025, 1, 10, 7, 0, tzinfo=UTC)  # 02:00 EST
    assert calc.calculate_next_run(last) == datetime(2025, 1, 11, 7, 0, tzinfo=UTC)
    assert not calc.is_due(last, datetime(2025, 1, 11, 6, 59, tzinfo=UTC))
    assert calc.is_due(last, datetime(2025, 1, 11, 7, 0, tzinfo=UTC))


def test_the_seeds_calculate_next_run_takes_a_cron_and_a_zone() -> None:
    calculator = ScheduleCalculator()
    before = datetime.now(UTC)
    next_run = calculator.calculate_next_run("0 2 * * *", "America/New_York")
    local = next_run.astimezone(ZoneInfo("America/New_York"))
    assert next_run.tzinfo == UTC and before < next_run <= before + timedelta(hours=25)
    # 02:00 local, or 03:00 on the spring-forward day (the DST rule)
    assert (local.hour, local.minute) in ((2, 0), (3, 0))
    spring = datetime(2025, 3, 8, 12, 0, tzinfo=UTC)
    expected = datetime(2025, 3, 9, 7, 0, tzinfo=UTC)  # 03:00 EDT: 02:00 does not exist
    assert calculator.calculate_next_run("0 2 * * *", "America/New_York", spring) == expected
    assert calculate_next_run("0 2 * * *", "America/New_York", spring) == expected
    assert calculate_next_run("0 2 * * *", after=spring) == datetime(2025, 3, 9, 2, tzinfo=UTC)
    # a calculator with its own cron keeps onceflow's shape, and takes the seed's too
    own = ScheduleCalculator("0 6 * * *", "Europe/Berlin")
    assert own.calculate_next_run(after=spring) == datetime(2025, 3, 9, 5, 0, tzinfo=UTC)
    assert own.calculate_next_run("0 2 * * *", "America/New_York", spring) == expected
    assert own.calculate_next_run("0 2 * * *", after=spring) == datetime(
        2025, 3, 9, 1, 0, tzinfo=UTC
    )  # a cron without a zone is read in the calculator's zone (02:00 CET)


def test_the_seeds_is_due_takes_a_cron_and_the_last_run_on_a_calculator_without_a_cron() -> None:
    calculator = ScheduleCalculator()
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    assert calculator.is_due("0 2 * * *", two_days_ago)
    ran = datetime(2025, 1, 10, 2, 0, tzinfo=UTC)
    assert not calculator.is_due("0 2 * * *", ran, now=ran + timedelta(hours=23, minutes=59))
    last = datetime(2025, 1, 10, 7, 0, tzinfo=UTC)  # 02:00 EST
    next_run = datetime(2025, 1, 11, 7, 0, tzinfo=UTC)
    early, on_time = next_run - timedelta(minutes=1), next_run
    assert not calculator.is_due("0 2 * * *", last, "America/New_York", now=early)
    assert calculator.is_due("0 2 * * *", last, "America/New_York", now=on_time)
    assert calculator.is_due(cron="0 2 * * *", last_run=last, timezone="America/New_York")
    # without a zone, the calculator's: 02:00 UTC came before 07:00 UTC the next day
    assert calculator.is_due("0 2 * * *", last, now=datetime(2025, 1, 11, 2, tzinfo=UTC))
    # a calculator with its own cron takes the seed's shape too, with the cron given
    own = ScheduleCalculator("0 6 * * *", "Europe/Berlin")
    assert not own.is_due("0 2 * * *", last, "America/New_York", now=early)
    assert own.is_due(last, datetime(2025, 1, 11, 5, 0, tzinfo=UTC))  # onceflow's shape


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        # the reported call on a cron-less calculator, in onceflow's shape: no silent False
        (lambda c: c.is_due(datetime(2025, 1, 1, tzinfo=UTC)), ValueError, "no cron expression"),
        (lambda c: c.is_due(None), ValueError, "is_due\\(cron, last_run\\)"),
        (lambda c: c.is_due("0 2 * * *"), TypeError, "give the time of the last run"),
        (lambda c: c.is_due("0 2 * * *", None), ValueError, "never ran has no last run"),
        (lambda c: c.is_due("0 2 * * *", "2025-01-01"), TypeError, "last_run is a datetime"),
        (
            lambda c: c.is_due("0 2 * * *", datetime(2025, 1, 1)),
            ValueError,
            "has no time zone",
        ),
        (
            lambda c: c.is_due("0 2 * * *", datetime.now(UTC), "UTC", datetime.now(UTC)),
            TypeError,
            "4 positional arguments, at most 3",
        ),
        (
            lambda c: c.is_due("0 2 * * *", datetime.now(UTC), last_run=datetime.now(UTC)),
            TypeError,
            "last_run given twice",
        ),
        (lambda c: c.is_due("0 25 * * *", datetime.now(UTC)), ValueError, "invalid cron"),
    ],
)
def test_an_is_due_call_that_fits_neither_shape_is_refused(
    call: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        call(ScheduleCalculator())


def test_onceflows_is_due_refuses_what_is_not_a_time() -> None:
    calc = ScheduleCalculator("0 2 * * *")
    last = datetime(2025, 1, 10, 2, 0, tzinfo=UTC)
    assert not calc.is_due(None)  # nothing to count from, as before
    with pytest.raises(TypeError, match="now is a datetime, got 'UTC'"):
        calc.is_due(last, "UTC")
    with pytest.raises(TypeError, match="unexpected argument timezone="):
        calc.is_due(last, timezone="UTC")
    with pytest.raises(TypeError, match="3 positional arguments, at most 2"):
        calc.is_due(last, last, last)  # type: ignore[call-overload]


def test_a_calculator_without_a_cron_says_what_to_give() -> None:
    calculator = ScheduleCalculator()
    with pytest.raises(ValueError, match="has no cron expression"):
        calculator.calculate_next_run()
    with pytest.raises(ValueError, match="has no cron expression"):
        calculator.is_due(datetime(2025, 1, 1, tzinfo=UTC))
    with pytest.raises(TypeError, match="a time zone goes with a cron expression"):
        ScheduleCalculator("0 2 * * *").calculate_next_run(datetime.now(UTC), "UTC")
    with pytest.raises(ValueError, match="invalid cron expression"):
        calculate_next_run("0 25 * * *", "UTC")


@pytest.mark.parametrize("cron", ["61 * * * *", "* * *", "0 2 * * * *", "every day"])
def test_an_invalid_cron_expression_is_refused(cron: str) -> None:
    with pytest.raises(ValueError, match="invalid cron expression"):
        ScheduleCalculator(cron)


def test_a_schedule_whose_ticks_skip_days_is_warned_about_for_incremental_tables() -> None:
    from onceflow.config import config_from_dict
    from onceflow.schedule import coverage_gaps

    def config(cron: str, mode: str) -> Any:
        extract = {"mode": "incremental", "cursor": "ts"} if mode == "incremental" else {}
        return config_from_dict(
            {
                "sources": {"s": {"url": "sqlite:///x.db"}},
                "tables": [{"source": "s", "table": "t", "extract": extract}],
                "schedules": [{"name": "weekly", "cron": cron}],
            },
            base_dir="/tmp",
        )

    (warning,) = coverage_gaps(config("0 2 * * 0", "incremental"))
    assert warning.startswith("schedule weekly: each tick processes one day, and its ticks skip")
    assert "; use a daily cron, or backfill them (onceflow backfill --schedule weekly" in warning
    assert "the incremental table(s) s.t never extract the days between" in warning
    assert coverage_gaps(config("0 2 * * *", "incremental")) == []  # daily: every day
    assert coverage_gaps(config("0 2 * * 0", "full")) == []  # a full extract misses nothing


def _one_schedule(cron: str, zone: str) -> Any:
    from onceflow.config import config_from_dict

    return config_from_dict(
        {
            "timezone": zone,
            "sources": {"s": {"url": "sqlite:///x.db"}},
            "tables": [
                {"source": "s", "table": "t", "extract": {"mode": "incremental", "cursor": "ts"}}
            ],
            "schedules": [{"name": "q", "cron": cron, "timezone": zone}],
        },
        base_dir="/tmp",
    )


def test_a_schedule_whose_ticks_skip_a_day_only_at_a_dst_change_is_warned_about(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from onceflow.schedule import api, coverage_gaps
    from onceflow.schedule import cron as cron_module

    # weeks before the change: the next 15 tick days are all there, only the change day
    # is not; the old rule (a step in the minute field is an interval) drops it
    monkeypatch.setattr(api, "now", lambda: datetime(2026, 3, 1, tzinfo=UTC))
    config = _one_schedule("*/15 2 * * *", "Europe/Berlin")
    assert coverage_gaps(config) == []  # the fixed-time rule keeps the day
    monkeypatch.setattr(cron_module, "is_interval", lambda cron: True)
    (warning,) = coverage_gaps(config)
    assert warning.startswith(
        "schedule q: each tick processes one day, and its ticks skip days at the DST "
        "change of 2026-03-29 in Europe/Berlin (the day of 2026-03-27, then 2026-03-29)"
    )
    # the cron fires every day already: "use a daily cron" would be no advice
    assert warning.endswith(
        "the cron already fires every day: backfill them "
        "(onceflow backfill --schedule q --from 2026-03-28 --to 2026-03-28)"
    )
    assert "use a daily cron" not in warning


@pytest.mark.parametrize("cron", ["30 23 * * *", "0 23 * * *", "59 23 * * *"])
def test_a_daily_schedule_across_a_midnight_ending_gap_is_not_warned_about(
    monkeypatch: pytest.MonkeyPatch, cron: str
) -> None:
    from onceflow.schedule import api, coverage_gaps

    # Nuuk jumps from 23:00 to 00:00 on 2027-03-27: the moved tick took the next day's
    # run date, so the days read skipped one, and the warning told a daily cron to be one
    monkeypatch.setattr(api, "now", lambda: datetime(2027, 3, 1, tzinfo=UTC))
    assert coverage_gaps(_one_schedule(cron, "America/Nuuk")) == []


def test_an_hourly_schedule_on_one_weekday_is_warned_about() -> None:
    from onceflow.schedule import coverage_gaps

    # 15 ticks are all one Sunday: the check reads days, not ticks
    (warning,) = coverage_gaps(_one_schedule("0 * * * 0", "UTC"))
    assert "its ticks skip days (the day of" in warning


def test_a_past_start_whose_ticks_the_catch_up_policy_leaves_out_is_warned_about() -> None:
    from onceflow.config import config_from_dict
    from onceflow.schedule import coverage_gaps

    def config(mode: str, **schedule: Any) -> Any:
        extract = {"mode": "incremental", "cursor": "ts"} if mode == "incremental" else {}
        return config_from_dict(
            {
                "sources": {"s": {"url": "sqlite:///x.db"}},
                "tables": [{"source": "s", "table": "t", "extract": extract}],
                "schedules": [{"name": "nightly", "cron": "0 2 * * *", **schedule}],
            },
            base_dir="/tmp",
        )

    start = (datetime.now(UTC) - timedelta(days=11)).replace(hour=0, minute=0, second=0)
    first = (start.date() - timedelta(days=1)).isoformat()
    (warning,) = coverage_gaps(config("incremental", start=start.isoformat()))
    assert warning.startswith("schedule nightly: start: ")
    assert "is past and catch_up is latest" in warning
    assert "the incremental table(s) s.t never extract run dates " + first in warning
    assert f"onceflow backfill --schedule nightly --from {first} --to " in warning
    assert "catch_up: all" in warning
    assert coverage_gaps(config("incremental", start=start.isoformat(), catch_up="all")) == []
    assert coverage_gaps(config("full", start=start.isoformat())) == []  # no window lost
    assert coverage_gaps(config("incremental")) == []  # no start: begins now
    later = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    assert coverage_gaps(config("incremental", start=later)) == []


@pytest.mark.parametrize(
    ("start", "first"),
    [
        ("2025-03-09T01:30", "2025-03-09T03:00:00-04:00"),
        # in the spring-forward gap: the end of the gap, and its own tick listed
        ("2025-03-09T02:30", "2025-03-09T03:00:00-04:00"),
        ("2025-03-09T02:59:59", "2025-03-09T03:00:00-04:00"),
        ("2025-03-09T03:00", "2025-03-09T04:00:00-04:00"),  # after a time: strictly
        ("2025-11-02T01:30", "2025-11-02T01:00:00-05:00"),  # a repeated time: the first
    ],
)
def test_a_preview_from_a_local_time_that_does_not_exist_starts_at_the_gaps_end(
    start: str, first: str
) -> None:
    from onceflow.config import config_from_dict
    from onceflow.schedule import preview

    config = config_from_dict(
        {
            "timezone": "America/New_York",
            "sources": {"s": {"url": "sqlite:///x.db"}},
            "tables": [{"source": "s", "table": "t"}],
            "schedules": [{"name": "hourly", "cron": "0 * * * *"}],
        },
        base_dir="/tmp",
    )
    (tick,) = preview(config, "hourly", start=start, count=1)
    assert tick.local.isoformat() == first


@pytest.mark.parametrize(
    ("alias", "fields"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
    ],
)
def test_cron_nicknames_are_accepted_as_their_five_fields(alias: str, fields: str) -> None:
    from onceflow.config import config_from_dict

    after = datetime(2025, 3, 5, 12, 30, tzinfo=UTC)
    assert (
        ScheduleCalculator(alias).next_tick(after).at
        == ScheduleCalculator(fields).next_tick(after).at
    )
    config = config_from_dict(
        {
            "sources": {"s": {"url": "sqlite:///x.db"}},
            "tables": [{"source": "s", "table": "t"}],
            "schedules": [{"name": "n", "cron": alias}],
        },
        base_dir="/tmp",
    )
    assert config.schedules[0].cron == fields


def test_an_unknown_cron_nickname_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="the nicknames are @yearly, @annually"):
        ScheduleCalculator("@reboot")


def test_a_naive_after_is_refused_by_every_shape_of_calculate_next_run() -> None:
    """Read in the host's zone, 03:00 gave the next 02:00 on a UTC host and the same
    day's on a Tokyo one: is_due and the seed calls that take an instant refuse it."""
    from onceflow.schedule.cron import calculate_next_run
    from onceflow.schedule.retry import RetryPolicy

    naive = datetime(2025, 1, 1, 3, 0)
    for call in (
        lambda: calculate_next_run("0 2 * * *", "UTC", naive),
        lambda: ScheduleCalculator("0 2 * * *").calculate_next_run(naive),
        lambda: ScheduleCalculator().calculate_next_run("0 2 * * *", "UTC", naive),
        lambda: RetryPolicy().calculate_retry_time(1, at=naive),
    ):
        with pytest.raises(ValueError, match="has no time zone"):
            call()
    aware = calculate_next_run("0 2 * * *", "UTC", naive.replace(tzinfo=UTC))
    assert aware == datetime(2025, 1, 2, 2, 0, tzinfo=UTC)
