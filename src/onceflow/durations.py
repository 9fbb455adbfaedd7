"""Durations written in config: one grammar for a schedule's `max_runtime`, a table's
`settle` and a freshness rule's `max_age`.

A duration is one or more parts `<number><unit>`, largest unit first, each unit at most
once, spaces allowed between and inside them: `90s`, `45m`, `48 h`, `1h30m`, `1d 12h`,
`1.5w`. Units: `w`, `d`, `h`, `m`/`min`, `s`/`sec`. A bare number is read in the unit
its field has always used: minutes for `settle` and `max_runtime`, seconds for `max_age`
(the seed validator's). Only that differs between them, so each field accepts what the
others do.
"""

from __future__ import annotations

import re

_SIZE = {"w": 604_800, "d": 86_400, "h": 3600, "min": 60, "m": 60, "sec": 1, "s": 1}
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(w|d|h|min|m|sec|s)(?![a-z])", re.IGNORECASE)
_NUMBER = re.compile(r"^\s*\d+(?:\.\d+)?\s*$")
EXAMPLES = "e.g. 90s, 45m, 2h, 1h30m or 1d"


def duration_seconds(value: str | float | int, *, bare: float, bare_name: str) -> float:
    """Seconds of the duration `value`; a bare number counts `bare` seconds each (its
    unit's name is `bare_name`, for the error). ValueError names what is accepted."""
    hint = f"use {EXAMPLES} (a bare number is {bare_name})"
    if isinstance(value, bool):  # YAML's `true`: a number to Python, no duration
        raise ValueError(f"invalid duration {value!r}: {hint}")
    if isinstance(value, int | float) or _NUMBER.match(value):
        seconds = float(value) * bare
    else:
        seconds = _parts(value, hint)
    if not seconds > 0:  # NaN too
        raise ValueError(f"duration must be positive, got {value!r}")
    return seconds


def _parts(text: str, hint: str) -> float:
    seconds, at, previous = 0.0, 0, float("inf")
    for match in _PART.finditer(text):
        size = _SIZE[match[2].lower()]
        # contiguous parts, each unit once and largest first: `30m1h` is likelier a typo
        if match.start() != at or size >= previous:
            raise ValueError(f"invalid duration {text!r}: {hint}")
        seconds += float(match[1]) * size
        at, previous = match.end(), size
    if at == 0 or text[at:].strip():
        raise ValueError(f"invalid duration {text!r}: {hint}")
    return seconds
