"""SQLite windows on date and timestamp text: each row in the window of its own day.

SQLite stores dates as text ('2025-03-30', '2025-03-30 08:00:00', '2025-03-30T08:00:00.5').
The expected rows are computed apart from onceflow: each text parsed, taken as wall time in
the pipeline's zone, and compared as an instant with the day's first instants.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from onceflow.errors import SourceError
from onceflow.extract.readers import sqlite_bound
from onceflow.extract.sql import ReadSpec, build_select, to_positional
from onceflow.windows import window_for
from tests.helpers.extract import read, result, run

# (zone, run date): ordinary days, the 23- and 25-hour DST days, and Havana, whose clocks
# skip from 00:00 to 01:00 on 2025-03-09 (no midnight) and repeat 00:00-01:00 on 2025-11-02
DAYS = [
    ("Europe/Berlin", date(2025, 1, 15)),
    ("Europe/Berlin", date(2025, 3, 30)),
    ("Europe/Berlin", date(2025, 10, 26)),
    ("America/Havana", date(2025, 3, 9)),
    ("America/Havana", date(2025, 11, 2)),
]
TIMES = ["00:00:00", "00:00:00.000001", "00:30", "02:30:00", "12:00:00.5", "23:59:59.999999"]


def _texts(day: date) -> tuple[list[str], list[str]]:
    """Dates alone, and times with either separator, of the day before, the day and after."""
    days = [day + timedelta(days=n) for n in (-1, 0, 1)]
    stamps = [f"{d.isoformat()}{sep}{t}" for d in days for sep in (" ", "T") for t in TIMES]
    return [d.isoformat() for d in days], stamps


def _expected(texts: list[str], zone: ZoneInfo, day: date) -> set[int]:
    """The ids (positions) of the texts whose instant is in the window of `day`."""
    start = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
    after = day + timedelta(days=1)
    end = datetime(after.year, after.month, after.day, tzinfo=zone).astimezone(UTC)
    out = set()
    for i, text in enumerate(texts):
        wall = datetime.fromisoformat(text)  # a date alone: its midnight
        if start <= wall.replace(tzinfo=zone).astimezone(UTC) < end:
            out.add(i)
    return out


def _database(path: Path, dates: list[str], stamps: list[str]) -> str:
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE dates (id INTEGER, d DATE); CREATE INDEX dates_d ON dates (d);"
        "CREATE TABLE stamps (id INTEGER, ts TIMESTAMP);"
        "CREATE TABLE texts (id INTEGER, t TEXT);"
    )
    conn.executemany("INSERT INTO dates VALUES (?, ?)", list(enumerate(dates)))
    conn.executemany("INSERT INTO stamps VALUES (?, ?)", list(enumerate(stamps)))
    conn.executemany("INSERT INTO texts VALUES (?, ?)", list(enumerate(dates + stamps)))
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


@pytest.mark.parametrize(("zone", "day"), DAYS, ids=[f"{z}-{d}" for z, d in DAYS])
@pytest.mark.parametrize("reader", ["native", "sqlalchemy"])
def test_each_date_and_timestamp_text_is_in_the_window_of_its_day(tmp_path, zone, day, reader):
    dates, stamps = _texts(day)
    url = _database(tmp_path / "source.db", dates, stamps)
    tables = [("dates", "d"), ("stamps", "ts"), ("texts", "t")]
    summary = run(
        tmp_path,
        {"lite": {"url": url, "reader": reader} if reader != "native" else url},
        [
            {"source": "lite", "table": t, "extract": {"mode": "incremental", "cursor": c}}
            for t, c in tables
        ],
        date=day.isoformat(),
        timezone=zone,
    )
    assert summary.ok, [r.error for r in summary.results]
    tz = ZoneInfo(zone)
    for table, texts in (("dates", dates), ("stamps", stamps), ("texts", dates + stamps)):
        got = set(read(summary, f"lite.{table}").column("id").to_pylist())
        assert got == _expected(texts, tz, day), table
    # the run date's own date alone is in its window, never in the day before's
    assert 1 in set(read(summary, "lite.dates").column("id").to_pylist())


def test_the_window_is_a_range_an_index_on_the_cursor_serves(tmp_path):
    dates, stamps = _texts(date(2025, 3, 30))
    url = _database(tmp_path / "source.db", dates, stamps)
    zone = ZoneInfo("Europe/Berlin")
    window = window_for(date(2025, 3, 30), zone)
    sql, _ = build_select(ReadSpec("dates", None, "d", window), '"', "sqlite")
    bounds = [sqlite_bound(b, zone, "lite.dates") for b in (window.start, window.end)]
    assert bounds == ["2025-03-30", "2025-03-31"]
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    plan = conn.execute(
        "EXPLAIN QUERY PLAN " + to_positional(sql, "qmark", dialect="sqlite"), bounds
    ).fetchall()
    conn.close()
    assert "USING INDEX dates_d" in " ".join(str(step[-1]) for step in plan)


def test_a_bound_within_a_day_is_refused_not_compared_as_text():
    zone = ZoneInfo("Europe/Berlin")
    with pytest.raises(SourceError, match=r"lite\.t: window bound .* is not the start of a day"):
        sqlite_bound(datetime(2025, 3, 30, 6, tzinfo=zone), zone, "lite.t")


@pytest.mark.parametrize(
    ("declared", "value", "fix"),
    [
        ("TIMESTAMP", "2025-01-01T10:00:00Z", 'strftime(\'%Y-%m-%d %H:%M:%f\', "ts") AS "ts"'),
        ("TIMESTAMP", "2025-01-01T12:00:00.123+02:00", "turns 'Z' and '+02:00' into UTC"),
        ("DATE", "2025-1-5", "reads a DATE as 'YYYY-MM-DD'"),
    ],
)
def test_date_text_that_is_no_date_fails_naming_the_column_and_the_fix(
    tmp_path, declared, value, fix
):
    conn = sqlite3.connect(tmp_path / "source.db")
    conn.execute(f"CREATE TABLE w (id INTEGER, ts {declared})")
    conn.execute("INSERT INTO w VALUES (1, ?)", (value,))
    conn.commit()
    conn.close()
    url = f"sqlite:///{tmp_path / 'source.db'}"
    summary = run(tmp_path, {"lite": url}, [{"source": "lite", "table": "w"}])
    error = result(summary, "lite.w").error
    assert error.startswith("lite.w: column 'ts': cannot convert its values")
    assert "declare column 'ts' of table 'w' TEXT" in error
    assert 'a `query:` (e.g. `SELECT * FROM "w"`)' in error
    assert fix in error
    assert "\n" not in error
    # the fix works: a query reads the text as it is
    (tmp_path / "q").mkdir()
    fixed = run(
        tmp_path / "q",
        {"lite": url},
        [{"source": "lite", "name": "w", "query": 'SELECT * FROM "w"'}],
    )
    assert read(fixed, "lite.w").to_pylist() == [{"id": 1, "ts": value}]
