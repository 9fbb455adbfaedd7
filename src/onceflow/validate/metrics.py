"""A rule's metrics: encoded for the state store, merged across appended files, judged.

A rule's metrics (see `compile.py` for their names) are its partial aggregate state.
Counts and sums add, min and max take the extreme, a stddev's (n, mean, m2) merge with
Chan's formula, duplicate counts change by `unique_delta_query`; a quantile does not
merge: the runner takes it from a stored window of the sorted column and the new rows
(`quantile_window_new`), else from a band of the whole table (`quantile_band_query`),
which leaves the next window.
The observed value is always derived from the state (a mean is sum / n in both a full
and an incremental run), so both give the same result.

`judge` turns metrics into an outcome with the NULL semantics of the README: a row-level
rule judges non-NULL rows (`evaluated`), completeness counts NULLs; the failing percent
is given of all rows in scope and of the judged rows.
"""

from __future__ import annotations

import math
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from onceflow.rules import (
    AnyRule,
    Completeness,
    Freshness,
    RowCount,
    SqlQuery,
    Statistic,
    Uniqueness,
)
from onceflow.validate.figures import binary_text
from onceflow.validate.results import FAIL, PASS, WARN

ADDITIVE = {"rows", "evaluated", "failing", "n", "sum", "dup_rows", "dup_values"}


def encode(value: Any) -> Any:
    """A metric or sample value as JSON (Decimal and time types tagged, exact)."""
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    return value


def decode(value: Any) -> Any:
    """The value `encode` was given."""
    if isinstance(value, dict) and len(value) == 1:
        ((tag, text),) = value.items()
        if tag == "$decimal":
            return Decimal(text)
        if tag == "$datetime":
            return datetime.fromisoformat(text)
        if tag == "$date":
            return date.fromisoformat(text)
        if tag == "$float":
            return float(text)
    return value


def plain(value: Any) -> Any:
    """A value for a report: JSON types as they are, the rest as text (a binary one
    marked: `figures.binary_text`)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return binary_text(bytes(value))
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return str(value)


def encode_all(metrics: dict[str, Any]) -> dict[str, Any]:
    """Each metric `encode`d: a rule's metrics as the store keeps them."""
    return {k: encode(v) for k, v in metrics.items()}


def decode_all(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics `encode_all` was given."""
    return {k: decode(v) for k, v in metrics.items()}


def _add(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The metrics of old + new rows, from each one's metrics (see the module doc)."""
    out = dict(old)
    for key, value in new.items():
        if key in ADDITIVE:
            out[key] = _add(old.get(key), value)
        elif key in ("min", "max", "newest"):
            out[key] = _extreme(key, old.get(key), value)
        elif key in ("mean", "m2"):
            continue  # merged below, together with n
        else:
            out[key] = value  # recomputed on the whole table (quantile), or carried
    if "m2" in new:
        na, nb = int(old.get("n") or 0), int(new.get("n") or 0)
        if na == 0:
            out["mean"], out["m2"] = new.get("mean"), new.get("m2")
        elif nb == 0:
            out["mean"], out["m2"] = old.get("mean"), old.get("m2")
        else:
            ma, mb = float(old["mean"]), float(new["mean"])
            delta = mb - ma
            if abs(delta) <= 4 * sys.float_info.epsilon * max(abs(ma), abs(mb)):
                # two means of equal values may differ in their last bits (each is a
                # rounded sum / n); that noise would give a constant column a stddev of
                # ~1e-15 where a full run gives exactly 0 (and `max: 0` would fail)
                delta = 0.0
            n = na + nb
            out["mean"] = ma + delta * nb / n
            out["m2"] = float(old["m2"]) + float(new["m2"]) + delta * delta * na * nb / n
    return out


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _extreme(key: str, a: Any, b: Any) -> Any:
    """min or max of two partial results in the engine's order, where NaN is above every
    number (Python's min and max would answer by argument order)."""
    values = [v for v in (a, b) if v is not None]
    if not values:
        return None
    numbers = [v for v in values if not _is_nan(v)]
    if key == "min":
        return min(numbers) if numbers else values[0]
    return math.nan if len(numbers) < len(values) else max(numbers)


def _number(value: Any) -> float | int:
    # an integer column's sum, min or max stays exact: as a double, 2**53 + 1 would be
    # 2**53 and fail a bound it meets
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return float(value)


def statistic_value(rule: Statistic, m: dict[str, Any]) -> float | int | None:
    """The statistic from its parts (None when there are no values)."""
    n = int(m.get("n") or 0)
    if n == 0:
        return None
    kind = rule.statistic
    if kind == "mean":
        total = m["sum"]
        if isinstance(total, Decimal):
            return float(total / Decimal(n))
        return _number(total) / n
    if kind == "sum":
        return _number(m["sum"])
    if kind in ("min", "max", "quantile"):
        value = m.get(kind)
        return None if value is None else _number(value)
    # stddev (sample): sqrt(m2 / (n - 1)); one value has no spread
    if n < 2:
        return None
    m2 = float(m["m2"])
    if not math.isfinite(m2):  # NaN or infinite values: no spread to speak of, as DuckDB
        return math.nan
    return math.sqrt(max(0.0, m2) / (n - 1))


def _exact_statistic(rule: Statistic, m: dict[str, Any]) -> Decimal | None:
    """A decimal column's sum, min, max or mean as the exact decimal, to judge with: its
    observed value is a double, and 9007199254740992.50 as a double meets `max:
    9007199254740992` (Python compares a Decimal with an int or a float exactly)."""
    key = "sum" if rule.statistic == "mean" else rule.statistic
    value = m.get(key)
    if not isinstance(value, Decimal) or not value.is_finite():
        return None
    if rule.statistic == "mean":
        return value / Decimal(int(m["n"]))
    return value if rule.statistic in ("sum", "min", "max") else None


def _in_bounds(value: float | Decimal, low: Any, high: Any) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def _as_written(bound: Any) -> Any:
    """A float bound as the decimal its shortest repr writes: YAML's 0.7 is the double
    0.6999999999999999555910790149937, which an exact decimal 0.70 does not meet."""
    if isinstance(bound, float) and math.isfinite(bound):
        return Decimal(repr(bound))
    return bound


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


def judge(
    rule: AnyRule, m: dict[str, Any], *, reference_time: datetime | None = None
) -> dict[str, Any]:
    """Outcome, observed value, threshold and counts of a rule from its metrics."""
    bad = WARN if rule.severity == "warn" else FAIL
    rows = m.get("rows")
    out: dict[str, Any] = {"total_rows": None if rows is None else int(rows)}
    if isinstance(rule, RowCount):
        observed = int(rows or 0)
        ok = _in_bounds(observed, rule.min, rule.max)
        out |= {"observed": observed, "threshold": _bounds(rule.min, rule.max)}
        out["outcome"] = PASS if ok else bad
        return out
    if isinstance(rule, Statistic):
        value = statistic_value(rule, m)
        out["threshold"] = _bounds(rule.min, rule.max)
        out["evaluated_rows"] = int(m.get("n") or 0)
        if value is None:
            # like an aggregate expectation of Great Expectations: a statistic that cannot
            # be computed is not within bounds (a gate fails closed); see docs/validate.md
            out["outcome"] = bad
            if out["evaluated_rows"] == 1:  # only a stddev needs more than one value
                out["message"] = f"one non-NULL value of {rule.column!r}: a stddev needs two"
            else:
                out["message"] = (
                    f"no non-NULL values of {rule.column!r} to compute a {rule.statistic} on"
                )
            return out
        out["observed"] = value
        exact = _exact_statistic(rule, m)
        if exact is None:
            ok = _in_bounds(value, rule.min, rule.max)
        else:
            ok = _in_bounds(exact, _as_written(rule.min), _as_written(rule.max))
        out["outcome"] = PASS if ok else bad
        return out
    if isinstance(rule, Freshness):
        newest = _aware(m.get("newest"))
        # a naive time, the rule's or the run's, is UTC (as the docs say)
        reference = _aware(rule.reference_time) or _aware(reference_time) or datetime.now(UTC)
        limit_h = rule.max_age_seconds / 3600
        out["threshold"] = {"max_age_hours": limit_h}
        out["evaluated_rows"] = int(m.get("n") or 0)
        out["details"] = {"reference_time": reference.isoformat(), "newest": None}
        if newest is None:
            out["outcome"] = bad
            out["message"] = f"no values of {rule.column!r}: no data is fresh"
            return out
        age_h = (reference - newest).total_seconds() / 3600
        out["details"]["newest"] = newest.isoformat()
        out["observed"] = age_h
        out["outcome"] = PASS if age_h <= limit_h else bad
        return out
    return _judge_rows(rule, m, out, bad)


def _bounds(low: Any, high: Any) -> dict[str, Any]:
    return {k: v for k, v in (("min", low), ("max", high)) if v is not None}


def _judge_rows(rule: AnyRule, m: dict[str, Any], out: dict[str, Any], bad: str) -> dict[str, Any]:
    """A rule that counts failing rows: completeness, the row-level rules, uniqueness,
    referential and custom queries."""
    total = int(m.get("rows") or 0)
    if isinstance(rule, Uniqueness):
        failing = int(m.get("dup_rows") or 0)
        out["distinct_failing"] = int(m.get("dup_values") or 0)
    else:
        failing = int(m.get("failing") or 0)
    # NULLs are what completeness counts, and a custom query's rows are all rows
    judged = total if isinstance(rule, Completeness | SqlQuery) else int(m.get("evaluated") or 0)
    out["failing_rows"] = failing
    out["evaluated_rows"] = judged
    out["failing_percent"] = 100.0 * failing / total if total else None
    if not isinstance(rule, Completeness | SqlQuery):
        out["failing_percent_non_null"] = 100.0 * failing / judged if judged else None
    if rule.mostly is not None:
        # (judged - failing) / judged, not 1 - failing / judged: 93/100 is 0.93 exactly
        # in floating point, 1 - 7/100 is 0.9299999999999999 (and `mostly: 0.93` failed)
        passing = max(0, judged - failing) / judged if judged else 1.0
        out["observed"] = passing
        out["threshold"] = {"mostly": rule.mostly}
        ok = passing >= rule.mostly
    else:
        limit = rule.max_failing or 0
        out["observed"] = failing
        out["threshold"] = {"max_failing": limit}
        ok = failing <= limit
    out["outcome"] = PASS if ok else bad
    return out
