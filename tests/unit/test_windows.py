from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from onceflow.errors import ConfigError
from onceflow.windows import check_run_id, make_run_id, parse_run_date, window_for


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
