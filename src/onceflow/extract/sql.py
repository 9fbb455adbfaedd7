"""SQL text for an extraction: quoted identifiers, and the window as bound parameters."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from onceflow.windows import Window

WINDOW_PARAMS = ("window_start", "window_end")
_NAMED = re.compile(r"(?<![:\w]):(window_start|window_end)\b")


@dataclass(frozen=True)
class ReadSpec:
    """What to read: a table or a query, optionally bounded by a window on a cursor."""

    table: str | None
    query: str | None
    cursor: str | None
    window: Window | None
    batch_rows: int = 100_000
    #: what to do with rows whose cursor is in no window (NULL): `fail` or `skip`
    null_cursor: str = "fail"

    @property
    def audits_cursor(self) -> bool:
        """Whether onceflow places the window on the cursor column itself, so that it
        checks the column's type and counts its rows in no window; a query that places
        :window_start/:window_end itself picks its rows (and its column) on its own."""
        return bool(self.cursor and self.window) and not (self.query and has_markers(self.query))


def quote_ident(name: str, quote: str = '"') -> str:
    """Quote one identifier, doubling the quote character inside it."""
    return quote + name.replace(quote, quote * 2) + quote


def quote_table(table: str, quote: str = '"') -> str:
    """Quote `schema.table` part by part; a name with quotes or semicolons stays one name."""
    parts = table.split(".")
    if len(parts) > 3 or any(not p for p in parts):
        parts = [table]
    return ".".join(quote_ident(p, quote) for p in parts)


def has_markers(sql: str) -> bool:
    """Whether a query places the window itself with :window_start/:window_end."""
    return bool(_NAMED.search(sql))


def build_select(spec: ReadSpec, quote: str = '"') -> tuple[str, list[str]]:
    """SQL with `:window_start`/`:window_end` markers, and the marker names in order."""
    if spec.query:
        base = spec.query.strip().rstrip(";")
        if _NAMED.search(base):
            return base, [m.group(1) for m in _NAMED.finditer(base)]
        if spec.cursor and spec.window:
            sql = (
                f"SELECT * FROM ({base}) onceflow_q WHERE {quote_ident(spec.cursor, quote)} "
                f">= :window_start AND {quote_ident(spec.cursor, quote)} < :window_end"
            )
            return sql, list(WINDOW_PARAMS)
        return base, []
    assert spec.table
    sql = f"SELECT * FROM {quote_table(spec.table, quote)}"
    if spec.cursor and spec.window:
        column = quote_ident(spec.cursor, quote)
        sql += f" WHERE {column} >= :window_start AND {column} < :window_end"
        return sql, list(WINDOW_PARAMS)
    return sql, []


def cursor_source(spec: ReadSpec, quote: str = '"') -> str:
    """What the cursor column is read from in the audit queries: the table itself (so
    that an index on the cursor serves `IS NULL`), or the query as a derived table."""
    if spec.query:
        return f"({spec.query.strip().rstrip(';')}) onceflow_q"
    assert spec.table
    return quote_table(spec.table, quote)


def cursor_probe(spec: ReadSpec, quote: str = '"') -> str:
    """A query with no row whose one column is the cursor: the driver describes its type."""
    assert spec.cursor
    return f"SELECT {quote_ident(spec.cursor, quote)} FROM {cursor_source(spec, quote)} LIMIT 0"


def null_cursor_count(spec: ReadSpec, quote: str = '"', also: str = "") -> str:
    """COUNT(*) of the rows whose cursor is NULL, or matches `also` (`{c}` for the
    column): the rows in no window."""
    assert spec.cursor
    column = quote_ident(spec.cursor, quote)
    extra = f" OR {also.format(c=column)}" if also else ""
    return f"SELECT COUNT(*) FROM {cursor_source(spec, quote)} WHERE {column} IS NULL{extra}"


def without_window(sql: str) -> str:
    """The SQL with each window marker replaced by NULL: the same columns, no parameters
    (a statement that describes the result, such as a view, cannot take parameters)."""
    return _NAMED.sub("NULL", sql)


def to_positional(sql: str, style: str, cast: str | None = None) -> str:
    """Rewrite the window markers into a driver's placeholder style ($n, ?, %s).

    With `cast`, each placeholder is wrapped in CAST(... AS <cast>), so the parameter's type
    does not depend on the column it is compared with (PostgreSQL infers a parameter's
    type from its context: against a `timestamp` column an instant would be taken as UTC
    wall time).
    """
    counter = iter(range(1, 1_000))

    def placeholder(_: re.Match[str]) -> str:
        n = next(counter)
        marker = {"dollar": f"${n}", "qmark": "?", "format": "%s"}[style]
        return f"CAST({marker} AS {cast})" if cast else marker

    if style == "format":
        sql = sql.replace("%", "%%")
    return _NAMED.sub(placeholder, sql)


SETTING_PREFIX = "onceflow."


def to_session_settings(sql: str, cast: str = "timestamptz") -> str:
    """Rewrite the window markers into reads of session settings (PostgreSQL).

    The values are bound into the settings by a separate parameterised `set_config`
    call, so the SQL text still holds no value, while the query itself has no parameters:
    ADBC runs a parameter-free query through COPY and streams it in bounded memory, but
    buffers the whole result of a parameterised one.
    """
    return _NAMED.sub(
        lambda m: f"CAST(current_setting('{SETTING_PREFIX}{m.group(1)}') AS {cast})", sql
    )


def bound_values(names: list[str], values: dict[str, datetime]) -> list[datetime]:
    """The parameter values in placeholder order."""
    return [values[n] for n in names]
