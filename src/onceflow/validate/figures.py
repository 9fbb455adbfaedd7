"""Figures of a report as text, the same in the terminal and the HTML report.

A figure is shown with the digits that tell it from its neighbours: a fraction from its
threshold (0.9999899 against `mostly: 0.99999`), a failing percent from 0 % or 100 %
(99.96 % failing is not all rows), never in scientific notation a reader must decode.
A binary value is marked as one (`binary_text`), never bare hex a text column could hold.
"""

from __future__ import annotations

import math
import re
from typing import Any

#: What `binary_text` writes, for a reader of the report to tell a binary value by.
BINARY_TEXT = re.compile(r"<binary, [\d,]+ bytes?(: [0-9a-f]+(\.\.\. \([\d,]+ more bytes?\))?)?>")


def binary_text(value: bytes, limit: int | None = None) -> str:
    """A binary value (a BLOB, a bytea) in a report: `<binary, 3 bytes: 0a1b2c>`, its
    length and its bytes in hex, marked so that it reads apart from a text column that
    holds hex digits (an md5 in a varchar). With `limit`, the first `limit` bytes and
    `... (N more bytes)`. An empty one is `<binary, 0 bytes>`."""
    n = len(value)
    size = f"{n:,} byte{'' if n == 1 else 's'}"
    if not n:
        return f"<binary, {size}>"
    if limit is None or n <= limit:
        return f"<binary, {size}: {value.hex()}>"
    left = n - limit
    more = f"{left:,} more byte{'' if left == 1 else 's'}"
    return f"<binary, {size}: {value[:limit].hex()}... ({more})>"


def number_text(value: Any) -> str:
    """An observed value or threshold: ints with separators, floats to 10 significant
    digits (enough to tell 0.9999899 from 0.99999), dicts as `key value; ...`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) < 10**18 else f"{value:.6e}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if abs(value) >= 1e15:  # ",.0f" would print made-up digits
            return f"{value:.6e}"
        return f"{value:,.10g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, dict):  # a schema rule's: {"missing": ["a"], "extra": []}
        return "; ".join(
            f"{k} {', '.join(map(str, v)) if isinstance(v, list) else number_text(v)}"
            for k, v in value.items()
            if v not in ([], {}, None)
        )
    return str(value)


def percent_text(value: float | None) -> str:
    """A percent with 3 significant digits, or more where those would read 0 % or 100 %
    for a value that is neither (99.96 %, not 100 %); 1,600 % rather than 1.6e+03 %."""
    if value is None:
        return ""
    if value in (0, 100) or math.isnan(value) or math.isinf(value):
        return f"{value:g}%"
    size = abs(value)
    decimals = 2 if size >= 1 else 2 - math.floor(math.log10(size))
    while True:
        shown = round(value, decimals)
        if shown not in (0, 100, -100) or decimals >= 15:
            break
        decimals += 1
    text = f"{value:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}%"
