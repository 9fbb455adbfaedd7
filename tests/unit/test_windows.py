from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from onceflow.errors import ConfigError
from onceflow.windows import (
    check_run_id,
    make_run_id,
    parse_run_date,
    run_date_of,
    run_date_with_id,
    wall_instants,
    window_for,
)


def test_utc_window_is_24_hours_from_midnight() -> None:
    window = window_for(date(2025, 1, 23), "UTC")
    assert window.start == datetime(2025, 1, 23, tzinfo=UTC)
    assert window.end == datetime(2025, 1, 24, tzinfo=UTC)
    assert window.hours == 24
    assert window.iso() == ("2025-01-23T00:00:00+00:00", "2025-01-24T00:00:00+00:00")


@pytest.mark.parametrize(
    ("day", "hours", "start", "end"),
    [
        (date(2025, 3, 9), 23, "2025-03-09T00:00:00-05:00", "2025-03-10T00:00:00-04:00"),
        (date(2025, 11, 2), 25, "2025-11-02T00:00:00-04:00", "2025-11-03T00:00:00-05:00"),
        (date(2025, 6, 1), 24, "2025-06-01T00:00:00-04:00", "2025-06-02T00:00:00-04:00"),
    ],
)
def test_dst_days_have_23_or_25_hour_windows(day: date, hours: int, start: str, end: str) -> None:
    window = window_for(day, "America/New_York")
    assert window.hours == hours
    assert window.iso() == (start, end)


def test_run_id_is_deterministic() -> None:
    assert make_run_id("daily_extract", date(2025, 1, 23)) == "daily_extract_20250123"


def test_invalid_date_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--date: invalid date '2025-13-45'"):
        parse_run_date("2025-13-45")


def test_default_date_is_yesterday() -> None:
    assert parse_run_date(None) == parse_run_date("today").fromordinal(
        parse_run_date("today").toordinal() - 1
    )


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "x y"])
def test_run_ids_that_could_escape_the_lake_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="--run-id"):
        check_run_id(bad)


@pytest.mark.parametrize(
    ("wall", "instant"),
    [
        ("2025-03-09 01:59", "2025-03-09 06:59"),  # before the gap: EST
        ("2025-03-09 02:30", "2025-03-09 07:30"),  # skipped: the offset before (EST)
        ("2025-03-09 03:00", "2025-03-09 07:00"),  # after the gap: EDT
        ("2025-11-02 01:30", "2025-11-02 05:30"),  # shown twice: the first (EDT)
        ("2025-11-02 02:00", "2025-11-02 07:00"),
        ("2040-07-01 12:00", "2040-07-01 16:00"),  # summer past 2037 (Arrow has no rule)
    ],
)
def test_wall_instants_reads_a_wall_time_as_the_window_does(wall: str, instant: str) -> None:
    got = wall_instants(pa.array([datetime.fromisoformat(wall)]), "America/New_York")
    assert got.to_pylist() == [datetime.fromisoformat(instant).replace(tzinfo=UTC)]


@pytest.mark.parametrize(
    "zone", ["Europe/London", "Australia/Lord_Howe", "America/Santiago", "Asia/Tokyo"]
)
def test_wall_instants_equals_zoneinfo_across_clock_changes(zone: str) -> None:
    # every 37 minutes over 2024-2025 (each change of the years, midnight ones in
    # Santiago, half-hour ones on Lord Howe), a date, NULL, a chunked column
    walls = [datetime(2024, 1, 1) + timedelta(minutes=37 * i) for i in range(28_500)]
    column = pa.chunked_array([pa.array(walls[:10]), pa.array([*walls[10:], None])])
    tz = ZoneInfo(zone)
    expected = [w.replace(tzinfo=tz).astimezone(UTC) for w in walls]
    assert wall_instants(column, zone).to_pylist() == [*expected, None]
    midnight = datetime(2024, 9, 8).replace(tzinfo=tz).astimezone(UTC)
    assert wall_instants(pa.array([date(2024, 9, 8)]), tz).to_pylist() == [midnight]


def test_wall_instants_in_utc_is_the_naive_value() -> None:
    wall = datetime(2025, 1, 2, 23, 30)
    assert wall_instants(pa.array([wall]), "UTC").to_pylist() == [wall.replace(tzinfo=UTC)]


def test_a_run_id_ending_in_a_date_names_that_date_and_others_name_none() -> None:
    assert run_date_of("daily_extract_20261125") == date(2026, 11, 25)
    assert run_date_of("adhoc") is None
    assert run_date_of("x_20261399") is None  # eight digits, but no date
    assert run_date_of("20261125") == date(2026, 11, 25)  # the date alone
    assert run_date_of("x20261125") is None  # no '_' before the date


def test_without_a_date_a_dated_run_id_is_the_run_of_its_date() -> None:
    assert run_date_with_id(None, "daily_extract_20261125") == date(2026, 11, 25)
    assert run_date_with_id("2026-11-25", "daily_extract_20261125") == date(2026, 11, 25)


def test_a_run_id_naming_no_date_keeps_the_date_as_given_default_yesterday() -> None:
    assert run_date_with_id(None, "adhoc") is None
    assert run_date_with_id(None, None) is None
    assert run_date_with_id("2026-11-20", "adhoc") == "2026-11-20"


def test_a_date_that_disagrees_with_the_run_ids_date_is_refused_naming_both() -> None:
    with pytest.raises(ConfigError) as refused:
        run_date_with_id("2026-11-24", "daily_extract_20261125")
    message = str(refused.value)
    assert "--date 2026-11-24" in message
    assert "--run-id daily_extract_20261125" in message
    assert "2026-11-25" in message


def test_the_python_api_takes_a_dated_run_ids_date_as_the_cli_does() -> None:
    """`extract(cfg, run_id=...)` and `Pipeline.run` resolve the run through
    `run_context`: the CLI is a thin call of them, so both mean the id's date."""
    from onceflow.config import config_from_dict
    from onceflow.extract.api import run_context

    config = config_from_dict(
        {
            "pipeline": "daily_extract",
            "lake": "/tmp/lake",
            "sources": {"s": {"url": "sqlite:///s.db"}},
            "tables": [{"source": "s", "table": "t"}],
        }
    )
    ctx = run_context(config, None, "daily_extract_20261125")
    assert (ctx.run_id, ctx.run_date) == ("daily_extract_20261125", date(2026, 11, 25))
    assert run_context(config, "2026-11-25", None).run_id == "daily_extract_20261125"
    with pytest.raises(ConfigError):
        run_context(config, "2026-11-24", "daily_extract_20261125")


def test_a_stored_run_is_the_run_of_its_stored_date_whatever_its_id_names() -> None:
    # a run extracted as --date 2025-01-02 --run-id adhoc_20250101 before dated ids
    assert run_date_with_id(None, "adhoc_20250101", stored="2025-01-02") == date(2025, 1, 2)
    assert run_date_with_id("2025-01-02", "adhoc_20250101", stored="2025-01-02") == "2025-01-02"
    assert run_date_with_id(None, "adhoc", stored=date(2025, 1, 2)) == date(2025, 1, 2)


def test_a_date_other_than_the_stored_one_is_left_for_the_stored_runs_check() -> None:
    # check_same_run / find_run refuse it naming the stored date; no "disagree" here
    assert run_date_with_id("2025-01-01", "adhoc_20250101", stored="2025-01-02") == "2025-01-01"


@pytest.mark.parametrize("run_id", ["x_20251399", "20251399", "daily_extract_20250230"])
def test_a_run_id_ending_in_eight_digits_that_are_no_date_is_refused_as_a_typo(
    run_id: str,
) -> None:
    for value in (None, "2025-01-02"):
        with pytest.raises(ConfigError, match=f"--run-id: {run_id} ends in .* not a date"):
            run_date_with_id(value, run_id)


def test_a_stored_run_whose_id_ends_in_no_real_date_is_its_stored_dates_run() -> None:
    assert run_date_with_id(None, "x_20251399", stored="2025-01-02") == date(2025, 1, 2)


def test_a_bare_date_run_id_is_the_run_of_that_date() -> None:
    assert run_date_with_id(None, "20250123") == date(2025, 1, 23)
    with pytest.raises(ConfigError, match="disagree"):
        run_date_with_id("2025-01-22", "20250123")
