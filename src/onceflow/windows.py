"""Run dates, their [start, end) windows in a time zone, and deterministic run ids."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from onceflow.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

_RUN_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
#: onceflow's own run id, <pipeline>_<yyyymmdd> (daily_extract_20250123), which the seeds
#: use too: the seeds read the pipeline's name from it.
DATED_RUN_ID = re.compile(r"^(?P<pipeline>[A-Za-z0-9_.\-]+)_(?P<day>\d{8})$")
#: A run id that ends in a date, after '_', '-' or '.' or alone, names its run date:
#: YYYYMMDD (daily_extract_20250123, nightly-20250123, 20250123) or ISO YYYY-MM-DD
#: (adhoc_2025-01-23, nightly-2025-01-23, 2025-01-23), the form `--date` takes and people
#: type. Read as a label, it would extract yesterday under a name that says another day.
_DATE_AT_END = re.compile(r"^(?:.*[_.\-])?(?P<day>\d{8}|\d{4}-\d{2}-\d{2})$")


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


def wall_instants(values: pa.Array | pa.ChunkedArray, tz: ZoneInfo | str) -> pa.Array:
    """Naive timestamps (or dates, at midnight) read as wall time in `tz`: the same
    instants as timestamp[us, UTC] (NULL stays NULL).

    The rule is `window_for`'s, Python's `datetime(..., tzinfo=zone)` (fold=0): a wall
    time the clock showed twice (a fall-back hour) is its first occurrence; one the clock
    skipped (a spring-forward gap) takes the UTC offset in force before the change, so
    02:30 in New York on 2025-03-09 is 07:30Z, the instant the clock showed as 03:30.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    naive = values.cast(pa.timestamp("us"))
    if isinstance(naive, pa.ChunkedArray):
        naive = naive.combine_chunks()
    if zone.key == "UTC":
        return naive.cast(pa.timestamp("us", tz="UTC"))
    # zoneinfo itself, per day: a day whose two midnights have one offset has it all day
    # (no zone changes its offset and back within a day), for all its values at once;
    # only the values of a day with a clock change are converted one by one. Arrow's
    # assume_timezone would do it all at once, but it reads no rule past 2037 (it takes
    # summer 2040 in London for winter time).
    days = pc.floor_temporal(naive, unit="day")
    distinct = pc.drop_null(pc.unique(days))
    offsets = _day_offsets(distinct.to_pylist(), zone)
    index = pc.index_in(days, value_set=distinct)
    offset = pc.take(pa.array(offsets, pa.duration("us")), index)
    instants = pc.subtract(naive, offset)
    changing = pc.and_(pc.is_null(offset), pc.is_valid(naive))
    if pc.any(changing).as_py():
        rows = pc.indices_nonzero(changing)
        exact = [
            value.replace(tzinfo=zone).astimezone(UTC).replace(tzinfo=None)
            for value in pc.take(naive, rows).to_pylist()
        ]
        instants = pc.replace_with_mask(instants, changing, pa.array(exact, pa.timestamp("us")))
    return instants.cast(pa.timestamp("us", tz="UTC"))


def _day_offsets(days: list[datetime], zone: ZoneInfo) -> list[timedelta | None]:
    """Each day's UTC offset in `zone`, or None if it changes that day."""
    midnight: dict[datetime, timedelta | None] = {}

    def offset(moment: datetime) -> timedelta | None:
        if moment not in midnight:
            midnight[moment] = moment.replace(tzinfo=zone).utcoffset()
        return midnight[moment]

    out = []
    for day in days:
        try:
            after = offset(day + timedelta(days=1))
        except OverflowError:  # 9999-12-31 has no next midnight
            after = None
        first = offset(day)
        out.append(first if first == after else None)
    return out


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


def run_date_of(run_id: str | None) -> date | None:
    """The date a run id such as daily_extract_20250123 (or 20250123, adhoc_2025-01-23,
    2025-01-23) names, or None (no date at its end, or one that is not a date: 20251399)."""
    match = _DATE_AT_END.match(run_id or "")
    if not match:
        return None
    day = match["day"]
    try:
        return datetime.strptime(day, "%Y-%m-%d" if "-" in day else "%Y%m%d").date()
    except ValueError:
        return None


def run_date_with_id(
    value: str | date | None,
    run_id: str | None,
    tz: ZoneInfo | str = "UTC",
    *,
    stored: str | date | None = None,
) -> str | date | None:
    """The run date of a command given --date `value` and --run-id `run_id`, and `stored`,
    the run date recorded for `run_id`: the state store's, else that of its files' sidecars
    in the lake (`run_context` looks; None: neither holds such a run).

    A run that is recorded is the run of its recorded date, whatever its id says: before
    dated ids meant their date, `--run-id adhoc_20250101 --date 2025-01-02` was a legal
    run, and reading its date from its name would lock it out (neither re-extracted, nor
    reset, nor resumed), also once the store forgot it. Without --date it is the recorded
    date; a --date is returned as given, for the command's own check of the recorded run
    to refuse another day, naming the recorded date (`check_same_run`, `find_run`,
    `run_context`).

    A run id nothing records that names a date (`run_date_of`: YYYYMMDD or YYYY-MM-DD at
    its end) is the run of that date, so without --date it is that date, not yesterday (a
    seed's run id daily_extract_20250123 would otherwise extract yesterday's window under
    the 23rd's name, and the 23rd never). Given both, they must agree (ConfigError naming
    both). One that ends in what looks like a date but is none (x_20251399) is refused as
    a typo without --date: read as undated, it would extract yesterday under a name that
    says otherwise. With --date the user states the date and the id is only a label, as an
    undated one is. A run id that names no date changes nothing: `value` as given, None
    still meaning yesterday."""
    if stored is not None:
        if value is not None:
            return value
        return stored if isinstance(stored, date) else date.fromisoformat(stored)
    named = run_date_of(run_id)
    if named is None:
        digits = _DATE_AT_END.match(run_id or "")
        if digits and value is None:
            form = "YYYY-MM-DD" if "-" in digits["day"] else "YYYYMMDD"
            raise ConfigError(
                f"--run-id: {run_id} ends in {digits['day']}, which is not a date ({form}): "
                "a run id that ends in a date is the run of that date. Correct the date, "
                "give the run's --date (the id is then only a label), or give a run id that "
                "does not end in a date",
                field="run_id",
            )
        return value
    if value is None:
        return named
    day = parse_run_date(value, tz)
    if day != named:
        raise ConfigError(
            f"--date {day} and --run-id {run_id} disagree: the run id names {named}. Give "
            "one of them (the run id alone means its date), or a --run-id that ends in no date",
            field="date",
        )
    return day


def check_run_id(run_id: str) -> str:
    """Refuse run ids that could escape the lake folder."""
    if not _RUN_ID.match(run_id) or ".." in run_id:
        raise ConfigError(
            f"--run-id: invalid run id {run_id!r}; use letters, digits, '_', '.' or '-'"
        )
    return run_id


@dataclass(frozen=True)
class Seam:
    """Where the windows of two consecutive run dates of a pipeline meet. They tile when
    the earlier window's end is the later one's start; otherwise the instants between are
    in no window (a gap: their rows are never extracted) or in both (an overlap: their
    rows are extracted, and loaded, twice). Both arise when the config's `timezone`
    changed between the two dates' extractions."""

    earlier: str  # run id
    later: str
    earlier_end: datetime
    later_start: datetime

    @property
    def kind(self) -> str:
        """'gap', 'overlap' or 'tiled'."""
        if self.earlier_end < self.later_start:
            return "gap"
        return "overlap" if self.earlier_end > self.later_start else "tiled"

    def describe(self) -> str:
        """One phrase: the runs and the instants in no window (gap) or in both (overlap)."""
        low, high = sorted((self.earlier_end, self.later_start))
        where = "in neither window" if self.kind == "gap" else "in both windows"
        return (
            f"{self.kind} between run {self.earlier} (ends {self.earlier_end.isoformat()}) and "
            f"run {self.later} (starts {self.later_start.isoformat()}): "
            f"{low.astimezone(UTC).isoformat()} → {high.astimezone(UTC).isoformat()} is {where}"
        )

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "earlier_run": self.earlier,
            "earlier_end": self.earlier_end.isoformat(),
            "later_run": self.later,
            "later_start": self.later_start.isoformat(),
        }


@dataclass(frozen=True)
class StoredWindow:
    """A run's stored window, as the seam check reads it."""

    run_id: str
    run_date: date
    start: datetime
    end: datetime

    @classmethod
    def of(cls, run_id: str, run_date: str, start: str, end: str) -> StoredWindow:
        """From the ISO strings the state store holds."""
        return cls(
            run_id,
            date.fromisoformat(run_date),
            datetime.fromisoformat(start),
            datetime.fromisoformat(end),
        )


def broken_seams(windows: list[StoredWindow]) -> list[Seam]:
    """The seams between the windows of consecutive run dates that do not tile (gaps and
    overlaps), in date order. Runs of the same date (several run ids) are each compared
    with each run of the next date; dates with no run between are not a seam (a date not
    yet run leaves no gap: its run will take its window)."""
    by_date: dict[date, list[StoredWindow]] = {}
    for w in windows:
        by_date.setdefault(w.run_date, []).append(w)
    out: list[Seam] = []
    for day in sorted(by_date):
        for earlier in by_date[day]:
            for later in by_date.get(day + timedelta(days=1), []):
                seam = Seam(earlier.run_id, later.run_id, earlier.end, later.start)
                if seam.kind != "tiled":
                    out.append(seam)
    return out
