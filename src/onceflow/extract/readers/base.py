"""What every reader shares: the Reader base class (cursor refusals and counts), the
check that a window's cursor is among the columns, and `cast_batches`, which casts a
driver's batches to their exact target schema.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa

from onceflow.config import SourceConfig
from onceflow.errors import SourceError
from onceflow.extract.classify import classify, repeated_columns
from onceflow.extract.readers.cursors import epoch_as_time, iso_as_time, sqlite_iso
from onceflow.extract.sql import ReadSpec, has_markers
from onceflow.extract.types import ConversionError, make_caster, target_schema


def naive_wall(value: datetime, zone: ZoneInfo) -> datetime:
    """`value` as the wall time in `zone`, without a zone: what a window bound is compared
    with in a cursor column that holds no zone (`timestamp`, `DATETIME`)."""
    return value.astimezone(zone).replace(tzinfo=None)


def _ascii_lower(name: str) -> str:
    """A name as SQLite compares names: A-Z folded, every other letter as it is."""
    return name.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def same_name(dialect: str) -> Callable[[str, str], bool]:
    """How `dialect` matches a quoted column name: SQLite folds ASCII letters, MySQL and
    MariaDB every letter's case; PostgreSQL and Oracle keep a quoted name exact."""
    if dialect == "sqlite":
        return lambda a, b: _ascii_lower(a) == _ascii_lower(b)
    if dialect in ("mysql", "mariadb"):
        return lambda a, b: a.casefold() == b.casefold()
    return lambda a, b: a == b


def distinct_columns(names: Sequence[str], where: str) -> None:
    """Refuse a result with two columns of one name (`select a.id, b.id ...`): its file
    would be written, but no reader could pick a column of it by name, so it could never
    be loaded (`Multiple matches for FieldRef.Name(id)`); PostgreSQL refuses the query
    wrapped around it to read a column as text (`column reference "id" is ambiguous`),
    MySQL the derived table of its probe (`Duplicate column name`, `classify`)."""
    twice = [name for name, count in Counter(names).items() if count > 1]
    if twice:
        raise repeated_columns(where, twice)


_SQLITE_RENAMED = re.compile(r"(.+):\d+")


def sqlite_distinct_columns(names: Sequence[str], where: str) -> None:
    """`distinct_columns` for a SQLite query: wrapped in a subquery (to window it, or
    read split), its repeated names come back renamed by SQLite (`id`, `id:1`), names no
    one chose, which a file would keep; a `name:N` beside a `name` is taken for one."""
    present = set(names)
    renamed = [
        found.group(1)
        for name in names
        if (found := _SQLITE_RENAMED.fullmatch(name)) and found.group(1) in present
    ]
    if renamed:
        raise repeated_columns(where, list(dict.fromkeys(renamed)))


@contextlib.contextmanager
def classified(where: str, *closing: Callable[[], object]) -> Iterator[None]:
    """A read's driver errors as onceflow's (`classify`: transient or not, secrets
    masked), a SourceError as it is; then each of `closing` is called whatever happened
    (a close that fails must not hide the read's own error)."""
    try:
        yield
    except SourceError:
        raise
    except Exception as error:
        raise classify(error, where) from None
    finally:
        for close in closing:
            with contextlib.suppress(Exception):
                close()


def check_cursor(spec: ReadSpec, columns: Sequence[str], where: str, dialect: str) -> None:
    """Refuse a window on a cursor column that the rows do not have.

    SQLite takes a double-quoted name that matches no column for a string literal, so
    `"updatd_at" >= ?` would silently select nothing instead of failing, and its cursor
    audit would see the text `updatd_at` in every row: the SQLite readers call this with
    the columns of a query that reads no row (`columns_probe`) before anything reads the
    cursor, and again with the read's own. A name matches a column as the database
    matches it (SQLite: `TS` is the column `ts`).
    """
    if not (spec.cursor and spec.window):
        return
    same = same_name(dialect)
    if any(same(spec.cursor, column) for column in columns):
        return
    if spec.query and has_markers(spec.query, dialect):
        return  # the query applies the window itself, on whatever column it likes
    raise missing_cursor(spec, columns, where)


# how many of a table's columns a missing cursor's refusal lists (a close match is named
# whatever its place): the line stays readable for a table of 500 columns
_SHOWN_COLUMNS = 20


def missing_cursor(spec: ReadSpec, columns: Sequence[str], where: str) -> SourceError:
    """The refusal of a `cursor` that is not among `columns`: `column not found`, as a
    server's own refusal is classified (`classify`), with the columns there are and the
    closest one, for the usual cause is a typo."""
    assert spec.cursor
    of = f"a column of {spec.table}" if spec.table else "a column the query returns"
    shown = ", ".join(columns[:_SHOWN_COLUMNS])
    if len(columns) > _SHOWN_COLUMNS:
        shown += f", ... ({len(columns) - _SHOWN_COLUMNS:,} more)"
    close = difflib.get_close_matches(spec.cursor, list(columns), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return SourceError(
        f"{where}: column not found: cursor column {spec.cursor!r} is not {of} "
        f"(columns: {shown}){hint}"
    )


class Reader(ABC):
    """Streams the rows of one ReadSpec from one source."""

    def __init__(self, source: SourceConfig, url: str, zone: ZoneInfo, where: str) -> None:
        self.source = source
        self.url = url
        self.zone = zone
        self.where = where
        #: rows whose cursor is in no window (NULL, ...), counted before the rows are
        #: read; None when not counted (a full extract, a query placing the window itself)
        self.null_cursor_rows: int | None = None

    def _not_a_time(self, spec: ReadSpec, kind: str, text: bool = False) -> SourceError:
        """The refusal of a cursor column whose type `kind` is no date or time; a `text`
        one may hold ISO 8601 text or epoch digits, and each takes its own fix."""
        assert spec.cursor
        alias = f"{spec.cursor}_at"
        dialect = self.source.dialect
        convert, needs = epoch_as_time(dialect, spec.cursor, self.zone, text)
        where = spec.table or "(<your query>) q"
        if text:
            how = (
                "If it holds ISO 8601 text (`2025-03-30 10:00:00`), extract it through a "
                "query that converts it: `query: select *, "
                f"{iso_as_time(dialect, spec.cursor)} AS {alias} from {where}` with "
                f"`cursor: {alias}` (and a `name:`); if it holds unix epoch seconds, "
                f"convert it with {convert} instead{needs}"
            )
        else:
            how = (
                "If it holds unix epoch seconds, extract it through a query that converts "
                f"it: `query: select *, {convert} AS {alias} from {where}` with "
                f"`cursor: {alias}` (and a `name:`){needs}"
            )
        return SourceError(
            f"{self.where}: cursor column {spec.cursor!r} is {kind}, not a date or time: "
            "onceflow's windows are 24-hour time windows, and no such value falls in one. "
            f"{how}; see docs/sources-and-types.md, Cursor columns"
        )

    def _counted(self, spec: ReadSpec, count: int, what: str = "NULL", hint: str = "") -> None:
        """Record the rows whose cursor is in no window; refuse them unless the table's
        `null_cursor` is `skip`. `hint`: a likelier cause than the data, when known."""
        self.null_cursor_rows = count
        if count and spec.null_cursor != "skip":
            raise SourceError(
                f"{self.where}: {count:,} row(s) have a {what} cursor {spec.cursor!r}: they "
                "are in no window and would never be extracted. Give them a value in the "
                "source, or set `null_cursor: skip` under the table's `extract:` to "
                f"extract without them (a warning counts them every run){hint}"
            )

    def _sqlite_counted(self, spec: ReadSpec, row: Sequence[Any]) -> None:
        """Judge the counts of `sqlite_cursor_audit`: numbers and text that is not an ISO
        8601 time are refused (no `null_cursor` setting skips them: they are not missing, they
        are written in a form the window cannot read), NULLs are counted."""
        nulls, numbers, other, example = row
        if numbers:
            raise self._not_a_time(spec, f"a number in {numbers:,} row(s)")
        if other:
            assert spec.cursor
            alias = f"{spec.cursor}_at"
            convert, needs = sqlite_iso(spec.cursor, example)
            shown = repr(example) if len(repr(example)) <= 60 else repr(example)[:56] + "...'"
            raise SourceError(
                f"{self.where}: cursor column {spec.cursor!r} holds {other:,} value(s) that "
                f"are not ISO 8601 dates or times (e.g. {shown}): SQLite compares them as "
                "text with the window's days (YYYY-MM-DD), so they fall in no window, or in "
                "a wrong one. Extract it through a query that converts them: `query: select "
                f"*, {convert} AS {alias} from {spec.table or '(<your query>) q'}` with "
                f"`cursor: {alias}` (and a `name:`){needs}; see docs/sources-and-types.md, "
                "Cursor columns"
            )
        self._counted(spec, int(nulls))

    @abstractmethod
    def batches(self, spec: ReadSpec) -> Iterator[pa.RecordBatch]:
        """Yield batches with one stable, exact schema; SourceError on failure."""

    def _window_values(self, spec: ReadSpec) -> dict[str, datetime]:
        if spec.window is None:
            return {}
        return {"window_start": spec.window.start, "window_end": spec.window.end}


def cast_batches(
    reader: Any,
    where: str,
    overrides: dict[str, pa.DataType] | None = None,
    when_empty: dict[str, pa.DataType] | None = None,
    fixes: dict[str, str] | None = None,
) -> Iterator[pa.RecordBatch]:
    """The reader's batches cast to their target schema; with no row, one empty batch.

    `when_empty` gives the types of a result without rows, for a driver that types columns
    from their values and so has nothing to go on (SQLite: every column int64). `fixes`:
    what to do when a column's values do not convert, added to its error.
    """
    distinct_columns(reader.schema.names, where)
    schema = target_schema(reader.schema, overrides)
    cast = make_caster(reader.schema, schema)
    got_any = False
    for batch in reader:
        if batch.num_rows:
            got_any = True
            try:
                converted = cast(batch)
            except ConversionError as error:
                fix = (fixes or {}).get(error.column or "")
                raise SourceError(f"{where}: {error}" + (f". {fix}" if fix else "")) from None
            yield converted
    if not got_any:
        if when_empty:
            schema = target_schema(reader.schema, {**when_empty, **(overrides or {})})
        yield pa.RecordBatch.from_pylist([], schema=schema)
