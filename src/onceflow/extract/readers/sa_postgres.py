"""PostgreSQL through `reader: sqlalchemy` (psycopg 3): values as the native reader has
them, where psycopg's own loaders would change or refuse them.

psycopg parses json/jsonb into Python objects (`'"hello"'` -> `hello`, JSON `null` ->
SQL NULL, `1.0000000000000000001` -> `1.0`), drops a timetz's offset and reads numeric as
Decimal (whose text loses PostgreSQL's: `0.0000000000` -> `0E-10`): these are loaded as
the server's text. Dates, times and timestamps it cannot hold (`infinity`, `24:00:00`,
BC, a timestamptz whose session-zone text falls past year 9999) failed with a DataError
naming no column; here each loads as a marker that `resolve` turns, knowing the column,
into the native reader's value (infinity clamped, `24:00:00` kept) or a refusal naming
the column and the fix. The loaders are registered on the reader's own connection only.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pyarrow as pa

from onceflow.extract.types import (
    PG_INFINITY,
    ConversionError,
    OutOfRange,
    pg_numeric_type,
    pg_value_text,
    sql_name,
)

# PostgreSQL type oids (pg_type.oid, fixed for built-in types)
_JSON, _JSONB, _TIMETZ, _NUMERIC = 114, 3802, 1266, 1700
_DATE, _TIME, _TIMESTAMP, _TIMESTAMPTZ = 1082, 1083, 1114, 1184
_PLAIN = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    700: pa.float32(),
    701: pa.float64(),
    _DATE: pa.date32(),
    _TIME: pa.time64("us"),
    _TIMESTAMP: pa.timestamp("us"),
    _TIMESTAMPTZ: pa.timestamp("us", tz="UTC"),
}
_END_OF_DAY_US = 86_400_000_000  # time '24:00:00' in microseconds, as the native reader


class Clamped:
    """PostgreSQL's +/-infinity: as a column's value, clamped (`value`); in an array,
    refused as the native reader does."""

    __slots__ = ("kind", "text", "value")

    def __init__(self, value: date | datetime, text: str, kind: str) -> None:
        self.value, self.text, self.kind = value, text, kind


class Unheld:
    """A date or timestamp outside the years 1..9999 (`text` as PostgreSQL prints it, a
    timestamptz in UTC), or time `24:00:00` (kind `time`)."""

    __slots__ = ("kind", "text")

    def __init__(self, text: str, kind: str) -> None:
        self.text, self.kind = text, kind


_MARKERS = (Clamped, Unheld)

_TZ_TEXT = re.compile(
    r"(\d+)-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?"
    r"([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?( BC)?"
)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 of a proleptic Gregorian date of any year (0 is 1 BC)."""
    year -= month <= 2  # http://howardhinnant.github.io/date_algorithms.html#days_from_civil
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _instant(text: str) -> datetime | Unheld | None:
    """A timestamptz as the session prints it, as a UTC datetime: psycopg refused those
    whose session-zone text is past 9999 or BC although the instant is in the years
    1..9999 (`9999-12-31 23:59:59.999999+00` east of UTC is `10000-01-01 ...+05:30`).
    An instant outside them is Unheld; text of another form None."""
    found = _TZ_TEXT.fullmatch(text)
    if found is None:
        return None
    year, month, day, hh, mm, ss = (int(found.group(i)) for i in range(1, 7))
    if found.group(12):
        year = 1 - year
    offset = int(found.group(9)) * 3600 + int(found.group(10) or 0) * 60
    offset += int(found.group(11) or 0)
    seconds = _days_from_civil(year, month, day) * 86_400 + hh * 3600 + mm * 60 + ss
    seconds -= offset if found.group(8) == "+" else -offset
    micros = seconds * 1_000_000 + int((found.group(7) or "0").ljust(6, "0"))
    _int_type, _plus, _minus, high, low = PG_INFINITY["timestamptz"]
    if not low <= micros <= high:
        return Unheld(pg_value_text(micros, "timestamptz"), "timestamptz")
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


_ENDS: dict[str, tuple[date | datetime, date | datetime]] = {
    "date": (date(9999, 12, 31), date(1, 1, 1)),
    "timestamp": (datetime(9999, 12, 31, 23, 59, 59, 999999), datetime(1, 1, 1)),
    "timestamptz": (
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
    ),
}


def _fallback(text: str, kind: str) -> Any:
    """The marker (or, for a timestamptz, the value) of text psycopg could not load."""
    if text in ("infinity", "-infinity") and kind in _ENDS:
        high, low = _ENDS[kind]
        return Clamped(high if text == "infinity" else low, text, kind)
    if kind == "timestamptz" and (instant := _instant(text)) is not None:
        return instant
    if kind == "time" and text.startswith("24:00:00"):
        return Unheld(text, "time")
    return Unheld(text, kind) if kind in _ENDS else None


def register_loaders(conn: Any) -> None:
    """Register onceflow's loaders on a psycopg 3 connection (a SQLAlchemy connection's
    driver connection); any other driver is left as it is."""
    try:
        import psycopg
    except ImportError:
        return
    raw = conn.connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        return
    from psycopg.adapt import Loader
    from psycopg.pq import Format
    from psycopg.types.string import TextLoader

    # the server's text, exactly: JSON as written (jsonb normalised by the server, as
    # the native reader gives it), a timetz with its offset, a numeric as PostgreSQL
    # prints it (the declared decimal is cast from it; unconstrained numeric stays text)
    for oid in (_JSON, _JSONB, _TIMETZ, _NUMERIC):
        raw.adapters.register_loader(oid, TextLoader)
    for oid, kind in ((_DATE, "date"), (_TIME, "time"), (_TIMESTAMP, "timestamp")):
        raw.adapters.register_loader(oid, _tolerant(raw, oid, kind, Loader, Format))
    raw.adapters.register_loader(
        _TIMESTAMPTZ, _tolerant(raw, _TIMESTAMPTZ, "timestamptz", Loader, Format)
    )


def _tolerant(raw: Any, oid: int, kind: str, loader: Any, fmt: Any) -> Any:
    """A loader wrapping psycopg's own for `oid` (its C class cannot be subclassed): its
    value, else `_fallback`'s for text it refused."""
    import psycopg

    base = raw.adapters.get_loader(oid, fmt.TEXT)

    class Tolerant(loader):  # type: ignore[misc]
        def __init__(self, oid: int, context: Any = None) -> None:
            super().__init__(oid, context)
            self._base = base(oid, context)

        def load(self, data: Any) -> Any:
            try:
                return self._base.load(data)
            except psycopg.DataError:
                value = _fallback(bytes(data).decode(), kind)
                if value is None:
                    raise
                return value

    return Tolerant


def pg_declared(description: Any) -> dict[str, pa.DataType]:
    """The Arrow types the result's description fixes (psycopg: type oid and typmod):
    numeric by its declared precision and scale (as the native reader: unconstrained as
    text), json/jsonb as JSON text, timetz as text, and the integers, floats and times
    as the native reader types them (a query's were inferred from the Python values:
    int64, double, a timestamptz in the session's zone)."""
    out: dict[str, pa.DataType] = {}
    for column in description or ():
        oid = column.type_code
        if oid in _PLAIN:
            out[column.name] = _PLAIN[oid]
        elif oid == _NUMERIC:
            out[column.name] = pg_numeric_type(int(getattr(column, "_fmod", -1)))
        elif oid in (_JSON, _JSONB):
            out[column.name] = pa.json_(pa.string())
        elif oid == _TIMETZ:
            out[column.name] = pa.string()
    return out


def has_markers(values: list[Any]) -> bool:
    """Whether a column's values (or its arrays' elements) hold a marker."""
    for value in values:
        if isinstance(value, _MARKERS):
            return True
        if isinstance(value, list) and has_markers(value):
            return True
    return False


def resolve(name: str, values: list[Any]) -> tuple[list[Any], pa.DataType | None]:
    """A column's values with each marker resolved as the native reader does: infinity
    clamped, `24:00:00` as its microseconds (the column then built as time64 from them,
    the type returned), else ConversionError naming the column and the fix."""
    out: list[Any] = []
    end_of_day = False
    for value in values:
        if isinstance(value, Clamped):
            out.append(value.value)
        elif isinstance(value, Unheld) and value.kind == "time":
            end_of_day = True
            out.append(_END_OF_DAY_US)
        elif isinstance(value, Unheld):
            raise ConversionError(OutOfRange(value.text, value.kind, False).explain(name), name)
        elif isinstance(value, list) and has_markers(value):
            raise ConversionError(_in_array(name, value), name)
        else:
            out.append(value)
    if end_of_day:
        micros = [_micros(v) if isinstance(v, time) else v for v in out]
        return micros, pa.time64("us")
    return out, None


def _micros(value: time) -> int:
    return ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond


def _in_array(name: str, values: list[Any]) -> str:
    """Why an array holding a marker is refused (as the native reader: an array's
    infinity is not clamped)."""
    marker = next(v for v in _flat(values) if isinstance(v, _MARKERS))
    if marker.kind == "time":
        sql = sql_name(name)
        return (
            f"column {name!r} (time[]) holds {marker.text} in an array, which Python's time "
            f"cannot hold. Extract the table with a query reading it as text, e.g. "
            f"`{sql}::text AS {sql}` (the array's exact text)"
        )
    return OutOfRange(marker.text, marker.kind, True).explain(name)


def _flat(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        out.extend(_flat(value) if isinstance(value, list) else [value])
    return out
