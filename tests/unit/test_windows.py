from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
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

if TYPE_CHECKING:
    from onceflow.config import Config


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


@pytest.mark.parametrize(
    "run_id", ["x_20251399", "20251399", "daily_extract_20250230", "x_2025-13-01", "2025-02-30"]
)
def test_a_run_id_ending_in_no_real_date_is_refused_as_a_typo_without_a_date(
    run_id: str,
) -> None:
    with pytest.raises(ConfigError, match=f"--run-id: {run_id} ends in .* not a date"):
        run_date_with_id(None, run_id)


@pytest.mark.parametrize("run_id", ["x_20251399", "20251399", "x_2025-13-01"])
def test_a_run_id_ending_in_no_real_date_is_a_label_when_the_date_is_given(run_id: str) -> None:
    # the user states the date; the id, which names none, is only a label
    assert run_date_with_id("2025-01-02", run_id) == "2025-01-02"


def test_a_run_id_ending_in_an_iso_date_names_that_date() -> None:
    assert run_date_of("adhoc_2025-01-23") == date(2025, 1, 23)
    assert run_date_of("2025-01-23") == date(2025, 1, 23)
    assert run_date_of("adhoc-2025-01-23") == date(2025, 1, 23)  # after a dash too
    assert run_date_with_id(None, "2025-01-23") == date(2025, 1, 23)
    with pytest.raises(ConfigError, match="--date 2025-01-22 and --run-id 2025-01-23 disagree"):
        run_date_with_id("2025-01-22", "2025-01-23")


def test_a_stored_run_whose_id_ends_in_no_real_date_is_its_stored_dates_run() -> None:
    assert run_date_with_id(None, "x_20251399", stored="2025-01-02") == date(2025, 1, 2)


def test_a_bare_date_run_id_is_the_run_of_that_date() -> None:
    assert run_date_with_id(None, "20250123") == date(2025, 1, 23)
    with pytest.raises(ConfigError, match="disagree"):
        run_date_with_id("2025-01-22", "20250123")


def _lake_config(lake: Path) -> Config:
    from onceflow.config import config_from_dict

    return config_from_dict(
        {
            "pipeline": "demo",
            "lake": str(lake),
            "sources": {"s": {"url": "sqlite:///s.db"}},
            "tables": [{"source": "s", "table": "t"}, {"source": "s", "table": "u"}],
        }
    )


def _lake_file(lake: Path, table: str, run_id: str, day: date) -> Path:
    """A committed file of `run_id` for `day`, as the extractor leaves it (the sidecar
    is all the lookup reads)."""
    folder = lake / "s" / table / f"{day:%Y%m}" / f"{day:%d}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{run_id}.parquet").write_bytes(b"")
    sidecar = {"run_id": run_id, "run_date": day.isoformat(), "extraction_complete": True}
    (folder / f"{run_id}_metadata.json").write_text(json.dumps(sidecar))
    return folder / f"{run_id}.parquet"


@pytest.mark.parametrize(
    "run_id", ["old_20251399", "adhoc_20250101", "adhoc", "2025-01-01", "demo_20250101"]
)
def test_a_run_the_store_forgot_is_the_run_of_the_date_its_lake_files_record(
    tmp_path: Path, run_id: str
) -> None:
    from onceflow.extract.api import run_context

    config = _lake_config(tmp_path / "lake")
    _lake_file(tmp_path / "lake", "u", run_id, date(2025, 1, 28))
    ctx = run_context(config, None, run_id)
    assert (ctx.run_id, ctx.run_date) == (run_id, date(2025, 1, 28))
    assert run_context(config, "2025-01-28", run_id).run_date == date(2025, 1, 28)
    with pytest.raises(ConfigError) as refused:
        run_context(config, "2025-01-27", run_id)
    assert f"--run-id: run {run_id} is the run of 2025-01-28 (its file s/u/202501/28/" in str(
        refused.value
    )


def test_a_run_id_the_lake_holds_for_several_dates_needs_the_date(tmp_path: Path) -> None:
    from onceflow.extract.api import run_context

    config = _lake_config(tmp_path / "lake")
    _lake_file(tmp_path / "lake", "t", "adhoc", date(2025, 1, 27))
    _lake_file(tmp_path / "lake", "u", "adhoc", date(2025, 1, 28))
    with pytest.raises(ConfigError, match="files of run adhoc of several dates: 2025-01-27"):
        run_context(config, None, "adhoc")
    assert run_context(config, "2025-01-27", "adhoc").run_date == date(2025, 1, 27)


def test_a_run_id_nothing_records_is_read_by_its_name(tmp_path: Path) -> None:
    from onceflow.extract.api import run_context

    config = _lake_config(tmp_path / "lake")
    _lake_file(tmp_path / "lake", "t", "other_20250101", date(2025, 1, 28))
    assert run_context(config, None, "demo_20250123").run_date == date(2025, 1, 23)
    with pytest.raises(ConfigError, match="not a date"):
        run_context(config, None, "old_20251399")
    assert run_context(config, "2025-01-28", "old_20251399").run_date == date(2025, 1, 28)


@pytest.mark.parametrize(
    ("run_id", "day"),
    [
        ("nightly-2026-10-09", date(2026, 10, 9)),
        ("nightly-20261013", date(2026, 10, 13)),
        ("nightly.2026-10-14", date(2026, 10, 14)),
        ("pipeline_2025010", None),
        ("a-b", None),
    ],
)
def test_a_date_after_a_dash_or_a_dot_is_a_dated_run_id(run_id: str, day: date | None) -> None:
    """`nightly-2026-10-09` read as a label extracted yesterday under that name."""
    assert run_date_of(run_id) == day
    if day is not None:
        assert run_date_with_id(None, run_id) == day


def test_a_dash_date_that_is_no_date_is_refused_as_a_typo() -> None:
    with pytest.raises(ConfigError, match="which is not a date"):
        run_date_with_id(None, "nightly-2026-13-45")
