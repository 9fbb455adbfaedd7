"""Checking a five-field cron expression, field by field, before croniter ever sees it.

croniter's own errors do not say which field is wrong, and an expression whose fields
are each valid may still never fire (`0 2 31 4 *`: April has no 31st), which croniter
only finds when asked for a tick (CroniterBadDateError). `check_cron` names the bad
field with its range, and refuses an expression that can never fire, so that a schedule
is refused when the config is read rather than when a scheduler runs it.

Each field is a comma-separated list of `*`, `N`, `N-M`, each optionally `/STEP`
(STEP >= 1); months and weekdays also by name (`jan`, `mon`); day-of-month also `L`
(its last day), weekday also `N#K` (the K-th of the month) and `NL` (the last). A range
may wrap around (`22-2`, `fri-mon`). The nicknames `@yearly` (`@annually`), `@monthly`,
`@weekly`, `@daily` (`@midnight`) and `@hourly` stand for their five fields.
"""

from __future__ import annotations

import re
from datetime import datetime

FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),  # 0 and 7 are Sunday
)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NAMES = {
    "month": {m: i + 1 for i, m in enumerate(_MONTHS)},
    "day-of-week": {d: i for i, d in enumerate(_DAYS)},
}
_STEP = re.compile(r"^(?P<base>[^/]+)(?:/(?P<step>.*))?$")
#: The nicknames of cron(5) (Vixie cron, cronie), which Airflow and Dagster accept too,
#: as the five fields they stand for (`@reboot` has none: it is no schedule).
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
EXAMPLE = "e.g. '0 2 * * *' (02:00 every day)"


def _value(text: str, name: str, lo: int, hi: int, expr: str) -> int:
    names = _NAMES.get(name, {})
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise ValueError(
            f"invalid cron expression {expr!r}: {name} field has {text!r}, expected a "
            f"number from {lo} to {hi}" + (" or a name (jan, mon)" if names else "")
        )
    value = int(text)
    if not lo <= value <= hi:
        raise ValueError(
            f"invalid cron expression {expr!r}: {name} {value} is out of range {lo}-{hi}"
        )
    return value


def _item(item: str, name: str, lo: int, hi: int, expr: str) -> None:
    match = _STEP.match(item)
    if not match:
        raise ValueError(f"invalid cron expression {expr!r}: {name} field has {item!r}")
    base, step = match.group("base"), match.group("step")
    if step is not None and (not step.isdigit() or int(step) < 1):
        raise ValueError(
            f"invalid cron expression {expr!r}: {name} step {step!r} must be a whole "
            "number of at least 1"
        )
    if base == "*":
        return
    if name == "day-of-month" and base.upper() == "L" and step is None:
        return
    if name == "day-of-week" and step is None:
        special = re.match(r"^(\w+)(#[1-5]|L)$", base, re.IGNORECASE)
        if special:
            _value(special.group(1), name, lo, hi, expr)
            return
    first, dash, last = base.partition("-")
    _value(first, name, lo, hi, expr)
    if dash:  # a range may wrap around (`22-2`, `fri-mon`), as croniter reads it
        _value(last, name, lo, hi, expr)


def check_cron(expr: str) -> str:
    """`expr` when it is a valid five-field cron expression that fires at some time (a
    nickname such as `@daily` as its five fields, `0 0 * * *`); else ValueError naming
    the bad field and its range, or why it never fires."""
    from croniter import CroniterBadDateError, croniter

    expr = ALIASES.get(expr.strip().lower(), expr)
    if expr.startswith("@"):
        raise ValueError(
            f"invalid cron expression {expr!r}: the nicknames are {', '.join(ALIASES)}; {EXAMPLE}"
        )
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(
            f"invalid cron expression {expr!r}: expected 5 fields (minute hour "
            f"day-of-month month day-of-week), got {len(fields)}; {EXAMPLE}"
        )
    for text, (name, lo, hi) in zip(fields, FIELDS, strict=True):
        for item in text.split(","):
            _item(item, name, lo, hi, expr)
    if not croniter.is_valid(expr):
        raise ValueError(f"invalid cron expression {expr!r}; {EXAMPLE}")
    try:
        # a day that exists once in 4 years (Feb 29) is found; one that never does is not
        croniter(expr, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(
            f"cron expression {expr!r} never fires: no month has that day-of-month "
            f"({fields[2]} in month {fields[3]})"
        ) from None
    return expr
