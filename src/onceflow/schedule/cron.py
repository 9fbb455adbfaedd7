"""Cron ticks in a time zone, with onceflow's own DST rule around croniter.

croniter only matches cron fields against *naive wall-clock* times, where it is exact;
it is never given an aware datetime (croniter fires a daily job twice on a fall-back day
when its time is in the repeated hour, and older releases mishandled zoneinfo). Each
matching local time is then resolved to UTC instants here, the way Vixie cron does:

* a local time that does not exist (the spring-forward gap) moves to the next valid
  minute, the end of the gap (02:30 in New York on 2025-03-09 fires at 03:00 EDT), once;
  an *interval* schedule skips it instead, since it follows elapsed time: 23 hourly
  ticks on a 23-hour day;
* a local time that happens twice (the fall-back repeat) fires once, at its first
  occurrence, for a *fixed-time* schedule (a daily job runs once), and at both
  occurrences for an interval schedule (25 hourly ticks on a 25-hour day).

An interval schedule's hour field starts with `*` (`0 * * * *`, `*/15 * * * *`,
`0 */2 * * *`): it ticks in many hours a day, so skipping a gap's hour loses no day. Any
other hour field makes a fixed-time schedule, whatever its minute field (`30 2`,
`*/15 2`, `* 2`, `0 2-3`): its ticks in a gap collapse into one at the gap's end, as
Dagster runs a nonexistent time at the next one that exists. Vixie cron's wildcard rule
(a `*` in the minute field too) dropped every tick of `*/15 2 * * *` on a spring-forward
day, and with it that day's run date (docs/schedule.md, "Time zones and DST").

The rule holds for shifts of any size (Australia/Lord_Howe moves 30 minutes). A tick is
stored as its UTC instant; its run date is a local date (the day it was *scheduled* on,
minus the schedule's `window` days), and its window is that date's local day in the
pipeline's time zone: 23 or 25 hours long on a DST change day. A tick moved to a gap's
end keeps the day it was scheduled on even when the gap ends at the next midnight
(America/Nuuk jumps from 23:00 to 00:00 on the last Saturday of March): taking the day
from the moved local time gave `30 23 * * *` that night the next day's run date, so one
run date was processed twice and the one before it never.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, overload
from zoneinfo import ZoneInfo

from onceflow.cronspec import check_cron
from onceflow.windows import Window, window_for

# No zone's fall-back repeat lasts longer (Antarctica/Troll's is 2 hours): instants are
# released in UTC order once the naive iteration is this far past them.
_FOLD_HORIZON = timedelta(hours=3)
# A gap may be a whole calendar day: Pacific/Apia skipped 2011-12-30 when it crossed the
# date line (Pacific/Kiritimati 1994-12-31); 3 hours raised ValueError on those days.
_GAP_LIMIT_MINUTES = 25 * 60


@dataclass(frozen=True)
class Tick:
    """One firing of a schedule: its UTC instant, its local time, and what it processes."""

    at: datetime
    local: datetime
    run_date: date
    window: Window

    def as_dict(self) -> dict[str, str | float]:
        """JSON-ready form, as `schedule preview --json` prints it."""
        start, end = self.window.iso()
        return {
            "tick_utc": self.at.isoformat(),
            "local": self.local.isoformat(),
            "run_date": self.run_date.isoformat(),
            "window_start": start,
            "window_end": end,
            "window_hours": self.window.hours,
        }


def is_interval(cron: str) -> bool:
    """Whether a (checked) cron expression is an *interval* schedule under the DST rule:
    its hour field starts with `*` (`*`, `*/2`) and so names more than one hour a day.
    Any other hour field is *fixed*, whatever its minute field (`*/15 2`, `* 2`, `0 2-3`):
    its ticks in a spring-forward gap move to the gap's end. Classifying by the minute
    field too (Vixie cron's MIN_STAR) dropped every tick of `*/15 2 * * *` on a
    spring-forward day in Berlin, so that day's run date was never processed."""
    hour = cron.split()[1]
    if not hour.startswith("*"):
        return False
    # `*/24` (or a larger step) names hour 0 alone: a fixed time, or a Santiago
    # midnight gap would drop its day
    base, _, step = hour.partition("/")
    return not (base == "*" and step.isdigit() and int(step) >= 24)


def fires_every_day(cron: str) -> bool:
    """Whether a (checked) cron expression names every day: its day-of-month, month and
    day-of-week fields are all `*`. Such a schedule that still skips a day does so at a
    DST change, where "use a daily cron" is no advice."""
    return all(field in ("*", "?") for field in cron.split()[2:5])


def _as_zone(zone: ZoneInfo | str) -> ZoneInfo:
    return zone if isinstance(zone, ZoneInfo) else ZoneInfo(zone)


class ScheduleCalculator:
    """The ticks of one cron expression in one time zone (the seed's ScheduleCalculator).

    `window_days_before` picks the run date of a tick (1: the previous local day), and
    `window_zone` the zone of its window (the pipeline's; default the schedule's).
    """

    def __init__(
        self,
        cron: str | None = None,
        timezone: ZoneInfo | str = "UTC",
        *,
        window_days_before: int = 1,
        window_zone: ZoneInfo | str | None = None,
    ) -> None:
        if cron is not None:
            # ValueError naming the bad field, or that it never fires; `@daily` -> 0 0 * * *
            cron = check_cron(cron)
        # None: the seed's stateless calculator, which is given a cron expression per call
        # (`ScheduleCalculator().calculate_next_run(cron, zone)`)
        self._cron = cron
        self.zone = _as_zone(timezone)
        self.window_zone = _as_zone(window_zone) if window_zone is not None else self.zone
        self.window_days_before = window_days_before
        self.interval = is_interval(cron or "0 0 * * *")

    @property
    def cron(self) -> str:
        """The cron expression (ValueError for a calculator made without one)."""
        if self._cron is None:
            raise ValueError(
                "this ScheduleCalculator has no cron expression: make it with one "
                "(ScheduleCalculator(cron, zone)) or pass one per call "
                "(calculate_next_run(cron, zone), is_due(cron, last_run))"
            )
        return self._cron

    # --- resolving local wall-clock times -------------------------------------------

    def _exists(self, naive: datetime) -> bool:
        aware = naive.replace(tzinfo=self.zone, fold=0)
        return aware.astimezone(UTC).astimezone(self.zone).replace(tzinfo=None) == naive

    def resolve(self, naive: datetime) -> list[datetime]:
        """The UTC instants at which a matching local time fires (the DST rule)."""
        if not self._exists(naive):
            if self.interval:
                return []
            moved = naive
            for _ in range(_GAP_LIMIT_MINUTES):
                moved += timedelta(minutes=1)
                if self._exists(moved):
                    return [moved.replace(tzinfo=self.zone, fold=0).astimezone(UTC)]
            raise ValueError(f"no valid local time after {naive} in {self.zone.key}")
        first = naive.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        second = naive.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
        if second != first and self.interval:
            return [first, second]
        return [first]

    # --- iterating ----------------------------------------------------------------------

    def instants(self, after: datetime) -> Iterator[datetime]:
        """Every tick instant (UTC) strictly after `after`, in order, without end."""
        from croniter import croniter

        after = after.astimezone(UTC)
        start = after.astimezone(self.zone).replace(tzinfo=None) - _FOLD_HORIZON
        it = croniter(self.cron, start.replace(second=0, microsecond=0) - timedelta(minutes=1))
        heap: list[datetime] = []
        last: datetime | None = None
        while True:
            naive: datetime = it.get_next(datetime)
            for instant in self.resolve(naive):
                heapq.heappush(heap, instant)
            floor = naive.replace(tzinfo=self.zone, fold=0).astimezone(UTC) - _FOLD_HORIZON
            while heap and heap[0] <= floor:
                instant = heapq.heappop(heap)
                if instant > after and instant != last:
                    last = instant
                    yield instant

    def scheduled_at(self, instant: datetime) -> datetime:
        """The naive local time a tick instant was scheduled at: its own local time, or,
        for a fixed-time tick moved to the end of a spring-forward gap, the first time of
        the cron in that gap (which may be on the day before: Nuuk's gap ends at
        midnight). Derived from the instant alone, since the scheduler stores instants."""
        local = instant.astimezone(self.zone).replace(tzinfo=None)
        if self.interval or self._exists(local - timedelta(minutes=1)):
            return local  # not the end of a gap: nothing was moved here
        from croniter import croniter

        start = local - timedelta(minutes=1)
        for _ in range(_GAP_LIMIT_MINUTES):
            if self._exists(start - timedelta(minutes=1)):
                break
            start -= timedelta(minutes=1)
        # the earliest match in [gap start, gap end): the tick the others collapsed into
        first: datetime = croniter(self.cron, start - timedelta(minutes=1)).get_next(datetime)
        return first if first < local else local

    def tick_at(self, instant: datetime) -> Tick:
        """The tick of an instant: its local time, run date and window. The run date
        counts from the day the tick was scheduled on (`scheduled_at`), not the day a
        spring-forward gap moved it to."""
        local = instant.astimezone(self.zone)
        day = self.scheduled_at(instant).date()
        run_date = day - timedelta(days=self.window_days_before)
        return Tick(
            instant.astimezone(UTC), local, run_date, window_for(run_date, self.window_zone)
        )

    def ticks(
        self, after: datetime, until: datetime | None = None, limit: int | None = None
    ) -> Iterator[Tick]:
        """Ticks in (after, until], at most `limit` of them."""
        if until is None and limit is None:
            raise ValueError("give `until` or `limit`: a schedule has no last tick")
        for n, instant in enumerate(self.instants(after)):
            if (until is not None and instant > until) or (limit is not None and n >= limit):
                return
            yield self.tick_at(instant)

    def next_tick(self, after: datetime) -> Tick:
        """The first tick strictly after `after`."""
        return self.tick_at(next(self.instants(after)))

    def preview(self, start: datetime, count: int) -> list[Tick]:
        """The next `count` ticks after `start`, for `onceflow schedule preview`."""
        return list(self.ticks(start, limit=count))

    def run_dates(self, after: datetime, count: int) -> list[date]:
        """The run dates of the first `count` local days with a tick after `after`, in
        order. One tick a day is read: the search jumps to the next local day, so an
        hourly cron on Sundays (`0 * * * 0`) shows its six-day gaps, which `count`
        ticks alone (all on one Sunday) would not."""
        dates: list[date] = []
        moment = after.astimezone(UTC)
        for _ in range(count):
            tick = self.next_tick(moment)
            if not dates or dates[-1] != tick.run_date:
                dates.append(tick.run_date)
            # the day after the one the tick was scheduled on: a tick moved past midnight
            # (Nuuk's gap ends at 00:00) is followed by that day's own tick
            day = tick.run_date + timedelta(days=self.window_days_before + 1)
            midnight = datetime(day.year, day.month, day.day)
            # the earliest instant the next day's midnight may be (fold=1 takes a gap's
            # later offset, which is earlier in UTC): never past that day's first tick
            starts = min(midnight.replace(tzinfo=self.zone, fold=f).astimezone(UTC) for f in (0, 1))
            moment = max(tick.at, starts - timedelta(microseconds=1))
        return dates

    # --- the seed's names -------------------------------------------------------------

    def calculate_next_run(
        self,
        cron_or_after: str | datetime | None = None,
        timezone: ZoneInfo | str | None = None,
        after: datetime | None = None,
    ) -> datetime:
        """The UTC instant of the next tick after `after` (default now), in two shapes:

        * `calc.calculate_next_run(after)`: this calculator's cron expression and zone;
        * `calc.calculate_next_run(cron, zone[, after])`, the seed's: any cron expression
          in `zone` (default this calculator's zone), as `calculate_next_run` below.
        """
        if isinstance(cron_or_after, str):
            zone = timezone if timezone is not None else self.zone
            return calculate_next_run(cron_or_after, zone, after)
        if timezone is not None:
            raise TypeError(
                "calculate_next_run: a time zone goes with a cron expression: "
                "calculate_next_run(cron, zone[, after]), or calculate_next_run(after)"
            )
        if cron_or_after is not None and after is not None:
            raise TypeError("calculate_next_run: `after` given twice")
        moment = cron_or_after if cron_or_after is not None else after
        given = _moment(moment, "after", optional=True, call="calculate_next_run")
        return self.next_tick(given or datetime.now(UTC)).at

    @overload
    def is_due(self, last_tick: datetime | None, now: datetime | None = None) -> bool: ...

    @overload
    def is_due(
        self,
        cron: str,
        last_run: datetime,
        timezone: ZoneInfo | str | None = None,
        *,
        now: datetime | None = None,
    ) -> bool: ...

    def is_due(self, *args: Any, **kwargs: Any) -> bool:
        """True when a tick fell in (last run, now]: the schedule should run. Two shapes,
        told apart by the first argument:

        * `calc.is_due(last_tick[, now])`: this calculator's cron and zone (False when
          `last_tick` is None: nothing to count from);
        * `calc.is_due(cron, last_run[, timezone], now=None)`, the seed's, on any
          calculator (`ScheduleCalculator()` has no cron of its own): `cron` in
          `timezone` (default this calculator's zone), as `calculate_next_run(cron, zone)`.

        A call that fits neither (a calculator without a cron given no cron, a time that
        is not an aware datetime, an argument too many) is refused with TypeError or
        ValueError: each would otherwise be a silent wrong answer (a cron string taken
        for the last tick was always "not due")."""
        seed = bool(args and isinstance(args[0], str)) or "cron" in kwargs
        names = ("cron", "last_run", "timezone", "now") if seed else ("last_tick", "now")
        given = _bind("is_due", names, args, kwargs, positional=3 if seed else 2)
        if not seed:
            _ = self.cron  # ValueError saying what to give, on a calculator without one
            last_tick = _moment(given.get("last_tick"), "last_tick", optional=True)
            moment = _moment(given.get("now"), "now", optional=True) or datetime.now(UTC)
            return last_tick is not None and self.calculate_next_run(last_tick) <= moment
        cron = given.get("cron")
        if not isinstance(cron, str):
            raise TypeError(f"is_due(cron, last_run): cron is a cron expression, got {cron!r}")
        if "last_run" not in given:
            raise TypeError("is_due(cron, last_run): give the time of the last run")
        last_run = _moment(given["last_run"], "last_run", optional=False)
        assert last_run is not None
        moment = _moment(given.get("now"), "now", optional=True) or datetime.now(UTC)
        zone = given.get("timezone")
        return calculate_next_run(cron, zone if zone is not None else self.zone, last_run) <= moment


def dst_changes(zone: ZoneInfo | str, after: datetime, count: int) -> list[datetime]:
    """The UTC instants of the next `count` UTC-offset changes of `zone` after `after`
    (DST starting or ending), found within two years; fewer for a zone without DST."""
    tz = _as_zone(zone)
    found: list[datetime] = []
    lo = after.astimezone(UTC).replace(second=0, microsecond=0)
    for _ in range(2 * 366):
        if len(found) >= count:
            break
        hi = lo + timedelta(days=1)
        if lo.astimezone(tz).utcoffset() != hi.astimezone(tz).utcoffset():
            # offsets change once a day at most: bisect to the minute
            a, b = lo, hi
            while b - a > timedelta(minutes=1):
                mid = a + (b - a) / 2
                if mid.astimezone(tz).utcoffset() == a.astimezone(tz).utcoffset():
                    a = mid
                else:
                    b = mid
            found.append(b.replace(second=0, microsecond=0))
        lo = hi
    return found


def _bind(
    call: str,
    names: tuple[str, ...],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    positional: int,
) -> dict[str, Any]:
    """The arguments of one shape of a call by name (TypeError for too many, an unknown
    one, or one given twice), as Python would bind a signature."""
    shape = f"{call}({', '.join([*names[:positional], *(f'{n}=' for n in names[positional:])])})"
    if len(args) > positional:
        raise TypeError(f"{shape}: {len(args)} positional arguments, at most {positional}")
    given = dict(zip(names, args, strict=False))
    for name, value in kwargs.items():
        if name not in names:
            raise TypeError(f"{shape}: unexpected argument {name}=")
        if name in given:
            raise TypeError(f"{shape}: {name} given twice")
        given[name] = value
    return given


def _moment(value: Any, name: str, *, optional: bool, call: str = "is_due") -> datetime | None:
    """An aware datetime argument: a naive one has no instant (which zone's 02:00?)."""
    if value is None:
        if optional:
            return None
        raise ValueError(
            f"{call}: {name} is None; a schedule that never ran has no last run to count "
            "ticks from: give the time it was created or enabled"
        )
    if not isinstance(value, datetime):
        raise TypeError(f"{call}: {name} is a datetime, got {value!r}")
    if value.tzinfo is None:
        raise ValueError(
            f"{call}: {name} {value.isoformat()} has no time zone; give an aware datetime "
            "(datetime.now(UTC), or .replace(tzinfo=ZoneInfo(...)))"
        )
    return value


def calculate_next_run(
    cron: str, timezone: ZoneInfo | str = "UTC", after: datetime | None = None
) -> datetime:
    """The UTC instant of the next tick of `cron` in `timezone` after `after` (default
    now), under onceflow's DST rule: the seed's `calculate_next_run(cron, zone)`."""
    return ScheduleCalculator(cron, timezone).calculate_next_run(after)
