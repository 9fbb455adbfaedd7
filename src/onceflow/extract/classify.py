"""Classify source database errors as transient (retry) or permanent (fail the table now)."""

from __future__ import annotations

import re

from onceflow.errors import SourceError, is_panic, plain_message
from onceflow.redact import redact

# SQLSTATE classes and codes: connection trouble, serialization failures, deadlocks,
# cancelled statements and resource limits may pass; everything else will not.
_TRANSIENT_SQLSTATES = ("08", "40001", "40P01", "53", "57P01", "57P02", "57P03", "57014", "HYT00")
_PERMANENT_SQLSTATES = {
    "28000": "authentication failed",
    "28P01": "authentication failed (wrong password?)",
    "42P01": "table not found",
    "42S02": "table not found",
    "42703": "column not found",
    "42S22": "column not found",
    "3F000": "schema not found",
    "3D000": "database not found",
    "42501": "permission denied",
    "42601": "SQL syntax error",
    "42000": "SQL syntax error or access violation",
}
_MYSQL_TRANSIENT = {1205, 1213, 2002, 2003, 2006, 2013, 1040, 1053, 1159, 1161}
_MYSQL_PERMANENT = {
    1045: "authentication failed (wrong password?)",
    1044: "access denied to database",
    1049: "database not found",
    1146: "table not found",
    1054: "column not found",
    1064: "SQL syntax error",
    1142: "permission denied",
}
# `(?<!_)`: a setting's name is no timeout (`statement_timeout=abc` is a bad value, for good)
_TRANSIENT_TEXT = re.compile(
    r"connection refused|connection reset|server closed the connection|(?<!_)timed? ?out|"
    r"could not connect|deadlock|lock wait timeout|broken pipe|too many connections|"
    r"terminating connection|the database system is (starting|shutting) up|"
    r"lost connection|gone away|temporarily unavailable",
    re.IGNORECASE,
)
_CONNECTION_TEXT = re.compile(
    r"connection refused|connection reset|server closed the connection|could not connect|"
    r"terminating connection|lost connection|gone away|broken pipe|failed to connect",
    re.IGNORECASE,
)
_TIMEOUT_TEXT = re.compile(r"(?<!_)timed? ?out", re.IGNORECASE)


def _kinds(error: BaseException, text: str) -> tuple[str, ...]:
    """The built-in errors a driver's failure amounts to (see SourceError.kinds)."""
    kinds = []
    if isinstance(error, ConnectionError) or _CONNECTION_TEXT.search(text):
        kinds.append("ConnectionError")
    if isinstance(error, TimeoutError) or _TIMEOUT_TEXT.search(text):
        kinds.append("TimeoutError")
    return tuple(kinds)


_PERMANENT_TEXT = [
    # a setting in the URL (`?options=-c statement_timeout=abc`) the server refuses: the
    # same URL is refused again, however often it is tried
    (
        re.compile(
            r"invalid value for parameter|unrecognized configuration parameter|"
            r"invalid connection option|for connection option|invalid URI query parameter",
            re.I,
        ),
        "invalid connection setting",
    ),
    # MySQL's 1044 and 1142 without their code (a driver that only gives the text): an
    # access refused to a known user, not a wrong password (1045)
    (re.compile(r"access denied for user \S+ to database", re.I), "access denied to database"),
    (re.compile(r"command denied to user", re.I), "permission denied"),
    (
        re.compile(r"password authentication failed|access denied|authentication", re.I),
        "authentication failed (wrong password?)",
    ),
    (re.compile(r"role \S+ does not exist", re.I), "authentication failed (unknown user)"),
    (
        re.compile(r"relation \S+ does not exist|no such table|table \S+ doesn't exist", re.I),
        "table not found",
    ),
    (
        re.compile(r"column \S+ does not exist|no such column|unknown column", re.I),
        "column not found",
    ),
    (re.compile(r"database \S+ does not exist|unknown database", re.I), "database not found"),
]
_MYSQL_CODE = re.compile(r"ERROR (\d{4})|\((\d{4}),")
_SQLSTATE = re.compile(r"SQLSTATE[: ]+([0-9A-Z]{5})")


_MYSQL_DUPLICATE_COLUMN = 1060  # ER_DUP_FIELDNAME: a derived table's repeated column name
_MYSQL_DUPLICATE_NAME = re.compile(r"Duplicate column name '(.*)'")


def repeated_columns(where: str, names: list[str]) -> SourceError:
    """The refusal of a result with more than one column of each of `names`: the one
    wording, whether onceflow saw the names or MySQL refused to wrap the query (1060)."""
    from onceflow.extract.types import sql_name

    shown = ", ".join(repr(name) for name in names)
    column, alias = sql_name(names[0]), sql_name(f"b_{names[0]}")
    return SourceError(
        f"{where}: the query returns more than one column named {shown}: the lake's file "
        "needs one name per column. Give each its own name with AS, e.g. "
        f"`select a.{column}, b.{column} AS {alias} ...`"
    )


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[0] if lines else text.strip()


def classify(error: BaseException, where: str) -> SourceError:
    """A SourceError with a one-line, redacted message and a transient flag."""
    if isinstance(error, SourceError):
        return error
    text = redact(plain_message(str(error)))
    detail = _first_line(text)[:300]
    if is_panic(error):
        # a Rust driver (ConnectorX) gave up on something it cannot handle, mostly a value
        # it cannot convert: the same read panics again, so it is not worth a retry
        return SourceError(f"{where}: the source driver failed (a panic): {detail}")
    sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if not sqlstate:
        diag = getattr(error, "diag", None)
        sqlstate = getattr(diag, "sqlstate", None)
    if not sqlstate and (m := _SQLSTATE.search(text)):
        sqlstate = m.group(1)
    code: int | None = None
    args = getattr(error, "args", ())
    if args and isinstance(args[0], int):
        code = args[0]
    elif m := _MYSQL_CODE.search(text):
        code = int(m.group(1) or m.group(2))

    if code == _MYSQL_DUPLICATE_COLUMN and (m := _MYSQL_DUPLICATE_NAME.search(text)):
        return repeated_columns(where, [m.group(1)])
    # MySQL's error code first: its SQLSTATE is a class (42000 is a syntax error, or an
    # access denied to a database, 1044, or to a table, 1142)
    if code in _MYSQL_PERMANENT:
        return SourceError(f"{where}: {_MYSQL_PERMANENT[code]}: {detail}")
    if sqlstate in _PERMANENT_SQLSTATES:
        return SourceError(f"{where}: {_PERMANENT_SQLSTATES[sqlstate]}: {detail}")
    kinds = _kinds(error, text)
    if sqlstate and sqlstate.startswith(_TRANSIENT_SQLSTATES):
        return SourceError(
            f"{where}: transient source error: {detail}", transient=True, kinds=kinds
        )
    if code in _MYSQL_TRANSIENT:
        return SourceError(
            f"{where}: transient source error: {detail}", transient=True, kinds=kinds
        )
    for pattern, label in _PERMANENT_TEXT:
        if pattern.search(text):
            return SourceError(f"{where}: {label}: {detail}")
    if isinstance(error, (ConnectionError, TimeoutError)) or _TRANSIENT_TEXT.search(text):
        return SourceError(
            f"{where}: transient source error: {detail}", transient=True, kinds=kinds
        )
    return SourceError(f"{where}: {type(error).__name__}: {detail}")
