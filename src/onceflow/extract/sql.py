"""SQL text for an extraction: quoted identifiers, and the window as bound parameters.

A query's `:window_start`/`:window_end` markers are found the way its database reads the
text: a marker inside a string literal, a quoted identifier or a comment is that text, not
a marker (`_markers`), on every dialect, so it is neither bound nor rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Callable
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


# One part of a configured table name: "quoted" or `quoted` (a doubled quote inside is
# one), else plain text up to the next dot
_NAME_PART = r'"(?:[^"]|"")+"|`(?:[^`]|``)+`|[^."`]+'
_DOTTED_NAME = re.compile(rf"(?:{_NAME_PART})(?:\.(?:{_NAME_PART})){{0,2}}")


def table_parts(table: str) -> list[str]:
    """The parts of a configured `table:` name, [schema,] table (or catalog.schema.table).

    A part may be quoted as in SQL (`"` or MySQL's `` ` ``, a doubled one inside is one),
    so a dot inside it is no separator: `public."we.ird"` names the table `we.ird`. Any
    other name is split at every dot, each part taken as it is, quotes and all
    (`shop.x"; drop table y; --` is the table `x"; drop table y; --`); one with an empty
    part or more than three is one name as given."""
    if _DOTTED_NAME.fullmatch(table):
        return [
            part[1:-1].replace(part[0] * 2, part[0]) if part[0] in '"`' else part
            for part in re.findall(_NAME_PART, table)
        ]
    parts = table.split(".")
    if len(parts) > 3 or any(not p for p in parts):
        return [table]
    return parts


def quote_table(table: str, quote: str = '"') -> str:
    """Quote `schema.table` part by part (`table_parts`); a name with stray quotes or
    semicolons stays one name."""
    return ".".join(quote_ident(p, quote) for p in table_parts(table))


# Where a string literal, quoted identifier or comment may open: the scan jumps between these
_OPENERS = re.compile(r"['\"`\[#$:]|--|/\*|[qQ]'")
_IDENT_CHAR = re.compile(r"[\w$]")
_DOLLAR_TAG = re.compile(r"\$(?:[^\W\d]\w*)?\$")
_ORACLE_CLOSE = {"[": "]", "{": "}", "<": ">", "(": ")"}
_DIALECTS = {"postgres": "postgresql", "mariadb": "mysql"}


def _quoted_end(sql: str, i: int, quote: str, backslash: bool) -> int:
    """Just past the quote closing the one at `i` (a doubled quote is one character of
    the text; with `backslash`, so is a backslash's next character); len(sql) if none."""
    j = i + 1
    while j < len(sql):
        c = sql[j]
        if (backslash and c == "\\") or (c == quote and sql.startswith(quote * 2, j)):
            j += 2
        elif c == quote:
            return j + 1
        else:
            j += 1
    return len(sql)


def _block_comment_end(sql: str, i: int, nested: bool) -> int:
    """Just past the `*/` closing the `/*` at `i` (PostgreSQL nests them); len(sql) if none."""
    depth, j = 0, i
    while j < len(sql):
        if sql.startswith("/*", j) and (nested or depth == 0):
            depth, j = depth + 1, j + 2
        elif sql.startswith("*/", j):
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        else:
            j += 1
    return len(sql)


def _line_end(sql: str, i: int) -> int:
    end = sql.find("\n", i)
    return len(sql) if end < 0 else end + 1


def _after_ident(sql: str, i: int) -> bool:
    """Whether sql[i] continues a word (an identifier or keyword) rather than opening one."""
    return i > 0 and bool(_IDENT_CHAR.match(sql, i - 1))


def _skipped_end(sql: str, i: int, dialect: str) -> int | None:
    """If a string literal, quoted identifier or comment opens at `i` in `dialect`, the
    index just past it; None for code. Dialect rules: MySQL strings take backslash escapes
    and `"` quotes a string, `#` and `-- ` open comments, `/*! */` is code; PostgreSQL has
    E'' strings with backslash escapes, nested comments and $tag$ quoting; SQLite also
    quotes names with `` ` `` and [ ] (as SQL Server does); Oracle has q'[...]' quoting."""
    c, rest = sql[i], sql[i + 1 : i + 2]
    mysql = dialect == "mysql"
    if c == "'":
        escaped = mysql or (
            dialect == "postgresql"
            and sql[i - 1 : i] in ("E", "e")
            and not _after_ident(sql, i - 1)
        )
        return _quoted_end(sql, i, "'", escaped)
    if c == '"':
        return _quoted_end(sql, i, '"', mysql)
    if c == "`" and dialect in ("mysql", "sqlite"):
        return _quoted_end(sql, i, "`", False)
    if c == "[" and dialect in ("sqlite", "mssql"):
        return _quoted_end(sql, i, "]", False)
    if c == "-" and rest == "-":
        # MySQL: `--` opens a comment only before a space or control character
        after = sql[i + 2 : i + 3]
        if not mysql or after == "" or after.isspace() or ord(after) < 32:
            return _line_end(sql, i)
        return None
    if c == "#" and mysql:
        return _line_end(sql, i)
    if c == "/" and rest == "*":
        if mysql and (sql.startswith("/*!", i) or sql.startswith("/*M!", i)):
            return None  # an executable comment: MySQL/MariaDB run what it holds
        return _block_comment_end(sql, i, nested=dialect == "postgresql")
    if c == "$" and dialect == "postgresql" and not _after_ident(sql, i):
        if tag := _DOLLAR_TAG.match(sql, i):
            end = sql.find(tag.group(), tag.end())
            return len(sql) if end < 0 else end + len(tag.group())
        return None
    if c in "qQ" and dialect == "oracle" and rest == "'" and len(sql) > i + 2:
        before = i - 1 if sql[i - 1 : i] in ("n", "N") else i  # nq'...' is a q'...' too
        if not _after_ident(sql, before):
            closing = _ORACLE_CLOSE.get(sql[i + 2], sql[i + 2]) + "'"
            end = sql.find(closing, i + 3)
            return len(sql) if end < 0 else end + len(closing)
    return None


def _markers(sql: str, dialect: str = "") -> list[re.Match[str]]:
    """The window markers of `sql` that its database reads as code, in order."""
    dialect = _DIALECTS.get(dialect, dialect)
    found: list[re.Match[str]] = []
    i = 0
    while (opener := _OPENERS.search(sql, i)) is not None:
        i = opener.start()
        if (marker := _NAMED.match(sql, i)) is not None:
            found.append(marker)
            i = marker.end()
        elif (end := _skipped_end(sql, i, dialect)) is not None:
            i = end
        else:
            i += 1
    return found


def _rewrite(
    sql: str,
    dialect: str,
    marker: Callable[[re.Match[str]], str],
    between: Callable[[str], str] = lambda text: text,
) -> str:
    """`sql` with each window marker replaced by `marker(match)` and the text between the
    markers by `between(text)`."""
    parts, last = [], 0
    for found in _markers(sql, dialect):
        parts += [between(sql[last : found.start()]), marker(found)]
        last = found.end()
    parts.append(between(sql[last:]))
    return "".join(parts)


def has_markers(sql: str, dialect: str = "") -> bool:
    """Whether a query places the window itself with :window_start/:window_end."""
    return bool(_markers(sql, dialect))


def build_select(spec: ReadSpec, quote: str = '"', dialect: str = "") -> tuple[str, list[str]]:
    """SQL with `:window_start`/`:window_end` markers, and the marker names in order."""
    if spec.query:
        base = spec.query.strip().rstrip(";")
        if "--" in base.rsplit("\n", 1)[-1] or "#" in base.rsplit("\n", 1)[-1]:
            base += "\n"  # a line comment at its end would swallow what wraps the query
        if markers := _markers(base, dialect):
            return base, [m.group(1) for m in markers]
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
        # a newline before ")": a query ending in a `--` comment would swallow it
        return f"({spec.query.strip().rstrip(';')}\n) onceflow_q"
    assert spec.table
    return quote_table(spec.table, quote)


def columns_probe(spec: ReadSpec, quote: str = '"') -> str:
    """A query with no row and every column the cursor is read from: their names, to
    find the cursor among before SQLite reads it (`check_cursor`), which takes a
    double-quoted name that is no column for a string literal."""
    return f"SELECT * FROM {cursor_source(spec, quote)} LIMIT 0"


def cursor_probe(spec: ReadSpec, quote: str = '"') -> str:
    """A query with no row whose one column is the cursor: the driver describes its type."""
    assert spec.cursor
    return f"SELECT {quote_ident(spec.cursor, quote)} FROM {cursor_source(spec, quote)} LIMIT 0"


def pg_cursor_types(spec: ReadSpec) -> str:
    """PostgreSQL: the cursor's type, then each type under it when it is a domain (a
    domain over a domain...), one row each, the base type last: a domain over
    `timestamptz` compares with the window as its base type does."""
    return (
        "WITH RECURSIVE onceflow_t(oid, depth) AS ("
        f"SELECT CAST(pg_typeof(({cursor_probe(spec)})) AS oid), 0 "
        "UNION ALL SELECT t.typbasetype, d.depth + 1 FROM pg_type t "
        "JOIN onceflow_t d ON t.oid = d.oid WHERE t.typtype = 'd' AND d.depth < 100"
        ") SELECT CAST(CAST(oid AS regtype) AS text) FROM onceflow_t ORDER BY depth"
    )


# SQLite: text that a window holds. Its bounds are days alone ('2025-03-30', see
# `sqlite_bound`), so a text beginning with a date in this form sorts in the window of
# that date, whatever follows it (a time after ` ` or `T`, an offset)
_ISO_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*"


def sqlite_cursor_audit(spec: ReadSpec) -> str:
    """SQLite, in one pass over the cursor column: its NULLs, its numbers (they sort
    before any text, so no window holds one), the rest that is not ISO 8601 text (a blob,
    `2025/03/30`, `30.03.2025`: in no window, or in a wrong one), and one of those.
    Only for a cursor known to be a column (`columns_probe`): SQLite would read a name
    that is none as the text of the name, in every row."""
    assert spec.cursor
    c = quote_ident(spec.cursor)
    other = f"({c} >= '' AND (typeof({c}) = 'blob' OR {c} NOT GLOB '{_ISO_GLOB}'))"
    return (
        f"SELECT COALESCE(SUM({c} IS NULL), 0), COALESCE(SUM({c} < ''), 0), "
        f"COALESCE(SUM({other}), 0), MIN(CASE WHEN {other} THEN {c} END) "
        f"FROM {cursor_source(spec)}"
    )


def null_cursor_count(spec: ReadSpec, quote: str = '"', also: str = "") -> str:
    """COUNT(*) of the rows whose cursor is NULL, or matches `also` (`{c}` for the
    column): the rows in no window."""
    assert spec.cursor
    column = quote_ident(spec.cursor, quote)
    extra = f" OR {also.format(c=column)}" if also else ""
    return f"SELECT COUNT(*) FROM {cursor_source(spec, quote)} WHERE {column} IS NULL{extra}"


def without_window(sql: str, dialect: str = "") -> str:
    """The SQL with each window marker replaced by NULL: the same columns, no parameters
    (a statement that describes the result, such as a view, cannot take parameters)."""
    return _rewrite(sql, dialect, lambda _: "NULL")


def to_positional(sql: str, style: str, cast: str | None = None, dialect: str = "") -> str:
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

    if style == "format":  # every % is formatted, in a string literal too
        return _rewrite(sql, dialect, placeholder, lambda text: text.replace("%", "%%"))
    return _rewrite(sql, dialect, placeholder)


def to_sqlalchemy(sql: str, dialect: str = "") -> str:
    """The SQL for SQLAlchemy's text(): the window markers as its `:name` parameters,
    every other colon escaped, for text() takes `:word` as a parameter anywhere, even in
    a string literal."""
    return _rewrite(
        sql, dialect, lambda found: found.group(), lambda text: text.replace(":", "\\:")
    )


SETTING_PREFIX = "onceflow."


def to_session_settings(sql: str, cast: str = "timestamptz") -> str:
    """Rewrite the window markers into reads of session settings (PostgreSQL).

    The values are bound into the settings by a separate parameterised `set_config`
    call, so the SQL text still holds no value, while the query itself has no parameters:
    ADBC runs a parameter-free query through COPY and streams it in bounded memory, but
    buffers the whole result of a parameterised one.
    """
    return _rewrite(
        sql,
        "postgresql",
        lambda m: f"CAST(current_setting('{SETTING_PREFIX}{m.group(1)}') AS {cast})",
    )


def bound_values(names: list[str], values: dict[str, datetime]) -> list[datetime]:
    """The parameter values in placeholder order."""
    return [values[n] for n in names]
