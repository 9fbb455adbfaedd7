"""Run dates, their [start, end) windows in a time zone, and deterministic run ids."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from onceflow.errors import ConfigError

_RUN_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class Window:
    """A half-open interval [start, end) of aware datetimes."""

    start: datetime
    end: datetime

    @property
    def hours(self) -> float:
        """Length in hours: 24, or 23/25 on a DST change day."""
        # Same-zone aware subtraction is wall-clock arithmetic in Python; go through UTC.
        utc = self.as_utc()
        return (utc.end - utc.start).total_seconds() / 3600

    def as_utc(self) -> Window:
        """The same instants expressed in UTC."""
        return Window(self.start.astimezone(UTC), self.end.astimezone(UTC))

    def iso(self) -> tuple[str, str]:
        """ISO-8601 strings with offsets, as stored in state and sidecars."""
        return self.start.isoformat(), self.end.isoformat()


def window_for(run_date: date, tz: ZoneInfo | str = "UTC") -> Window:
    """The window of a run date: [run date 00:00, next day 00:00) in `tz`."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    start = datetime(run_date.year, run_date.month, run_date.day, tzinfo=zone)
    try:
        nxt = run_date + timedelta(days=1)
    except OverflowError:
        raise ConfigError(
            f"--date: {run_date} is out of range; its window would end after year 9999",
            field="date",
        ) from None
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
    # Wall-clock midnight exists on every DST day in IANA zones we support; normalise the
    # offset so that the stored ISO string carries the real one.
    return Window(start.astimezone(zone), end.astimezone(zone))


def parse_run_date(
    value: str | date | None, tz: ZoneInfo | str = "UTC", *, option: str = "--date"
) -> date:
    """Parse YYYY-MM-DD (or 'today'/'yesterday'); default: yesterday in `tz`. A bad
    value is a ConfigError naming `option`, the flag it came from."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    if isinstance(value, date):
        return value
    today = datetime.now(zone).date()
    if value is None or value == "yesterday":
        return today - timedelta(days=1)
    if value == "today":
        return today
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{option}: invalid date {value!r}; expected YYYY-MM-DD (e.g. 2025-01-23), "
            "'today' or 'yesterday'",
            field=option.lstrip("-"),
        ) from None


def make_run_id(pipeline: str, run_date: date) -> str:
    """The deterministic run id of (pipeline, run date), e.g. daily_extract_20250123."""
    return f"{pipeline}_{run_date:%Y%m%d}"


def check_run_id(run_id: str) -> str:
    """Refuse run ids that could escape the lake folder."""
    if not _RUN_ID.match(run_id) or ".." in run_id:
        raise ConfigError(
            f"--run-id: invalid run id {run_id!r}; use letters, digits, '_', '.' or '-'"
        )
    return run_id
