"""How a window's cursor column is judged: the values in no window, the types that are
times, and the query that converts a cursor written in another form, for its refusal.
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from onceflow.extract.sql import quote_ident

# How each dialect turns unix epoch seconds into the time a window compares with, for
# the message that refuses a numeric cursor: `{c}` is the column, `{zone}` the pipeline's
# zone. A naive cursor is compared as wall time in that zone. MySQL's session runs in UTC:
# to a named zone only CONVERT_TZ converts, and only with the server's time zone tables,
# which a default server lacks (no other form without them follows a zone's DST); SQLite
# knows only UTC and the process's own zone (`localtime`).
_EPOCH_TO_TIME = {
    "postgresql": ("to_timestamp({c})", ""),
    "mysql": (
        "CONVERT_TZ(FROM_UNIXTIME({c}), '+00:00', '{zone}')",
        "; CONVERT_TZ needs the server's time zone tables (load them with "
        "mysql_tzinfo_to_sql): without them it gives NULL, every row a NULL cursor",
    ),
    "sqlite": (
        "datetime({c}, 'unixepoch', 'localtime')",
        " and run onceflow with TZ={zone} (SQLite's localtime is the process's zone)",
    ),
}
_EPOCH_TO_TIME_UTC = {
    "mysql": ("FROM_UNIXTIME({c})", ""),
    "sqlite": ("datetime({c}, 'unixepoch')", ""),
}


# A text cursor holding ISO 8601 text (`2025-03-30 10:00:00`), read as the wall time it
# is; its epoch form above would read it as a number (MySQL's FROM_UNIXTIME gives 1970
# for it, silently). DATETIME(6): a bare DATETIME drops the fraction of a second.
_ISO_TO_TIME = {
    "postgresql": "CAST({c} AS timestamp)",
    "mysql": "CAST({c} AS DATETIME(6))",
}
# PostgreSQL's to_timestamp takes a number: text holding one is cast first
_EPOCH_TEXT = {"postgresql": "CAST({c} AS double precision)"}


def epoch_as_time(dialect: str, column: str, zone: ZoneInfo, text: bool = False) -> tuple[str, str]:
    """The SQL expression that reads epoch seconds in `column` (a number, or with `text`
    its digits as text) as a time in `zone`, and what else it needs."""
    forms = _EPOCH_TO_TIME_UTC if str(zone) in ("UTC", "Etc/UTC") else {}
    form, note = forms.get(dialect) or _EPOCH_TO_TIME.get(dialect, ("<{c} as a timestamp>", ""))
    name = quote_ident(column, "`" if dialect == "mysql" else '"')
    if text:
        name = _EPOCH_TEXT.get(dialect, "{c}").format(c=name)
    return form.format(c=name, zone=zone), note.format(zone=zone)


def iso_as_time(dialect: str, column: str) -> str:
    """The SQL expression that reads ISO 8601 text in `column` as a timestamp."""
    name = quote_ident(column, "`" if dialect == "mysql" else '"')
    return _ISO_TO_TIME.get(dialect, "CAST({c} AS TIMESTAMP)").format(c=name)


# text written year first or day first, and a GLOB that matches the same: a fix converts
# only the rows written so, leaving ISO 8601 rows (and any other form) as they are
_D = "[0-9]"
_YEAR_FIRST = (re.compile(r"^\d{4}[/.]\d{2}[/.]\d{2}"), f"{_D * 4}[/.]{_D * 2}[/.]{_D * 2}*")
_DAY_FIRST = (re.compile(r"^\d{2}[/.-]\d{2}[/.-]\d{4}"), f"{_D * 2}[/.-]{_D * 2}[/.-]{_D * 4}*")


def sqlite_iso(column: str, example: object) -> tuple[str, str]:
    """A SQLite expression that turns text written like `example` into ISO 8601 text
    (the rest as it is), and what to check about it."""
    c = quote_ident(column)
    text = example if isinstance(example, str) else ""
    if _YEAR_FIRST[0].match(text):  # 2025/03/30 10:00
        convert = f"substr({c}, 1, 4) || '-' || substr({c}, 6, 2) || '-' || substr({c}, 9)"
        return f"CASE WHEN {c} GLOB '{_YEAR_FIRST[1]}' THEN {convert} ELSE {c} END", ""
    if _DAY_FIRST[0].match(text):  # 30.03.2025 10:00
        convert = (
            f"substr({c}, 7, 4) || '-' || substr({c}, 4, 2) || '-' || substr({c}, 1, 2) "
            f"|| substr({c}, 11)"
        )
        return (
            f"CASE WHEN {c} GLOB '{_DAY_FIRST[1]}' THEN {convert} ELSE {c} END",
            " (that reads it day first: for month first swap the (4, 2) and the (1, 2))",
        )
    return f"<{c} as YYYY-MM-DD HH:MM:SS text>", ""


# the cursor values in no window besides NULL, by dialect (`{c}`: the column), and what
# to call them: PostgreSQL's +-infinity is before or after any window; MySQL's zero date
# (`0000-00-00`, and any date before 1000-01-01) reads as NULL (in a NOT NULL column
# MySQL also matches it with IS NULL)
NO_WINDOW = {
    "postgresql": ("{c} = '-infinity' OR {c} = 'infinity'", "NULL or infinite"),
    "mysql": ("{c} < '1000-01-01'", "NULL or zero-date"),
}
# PostgreSQL: a window compares its cursor with two instants: these types are times
_PG_TIMES = ("date", "timestamp without time zone", "timestamp with time zone")
# and these hold text, which may be a time written out (ISO 8601) or epoch digits
_PG_TEXTS = ("text", "character varying", "character", "name", "citext")


def is_pg_text(kinds: list[str]) -> bool:
    """Whether the cursor's type (`pg_cursor_types`, a domain's base type last) is text."""
    return kinds[-1] in _PG_TEXTS


def pg_not_a_time(kinds: list[str]) -> str | None:
    """None when the cursor's type (`pg_cursor_types`: a domain, then the types under it)
    is a time, else how to name the type in its refusal."""
    if kinds[-1] in _PG_TIMES:
        return None
    if len(kinds) > 1:
        return f"of type {kinds[0]} (a domain over {kinds[-1]})"
    return f"of type {kinds[0]}"
