"""How a rule's values meet the column's: NaN and infinities as numbers, no implicit
conversion between kinds of values, UTC offsets, and column names in their exact case."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from onceflow.validate import Validator

NAN, INF = float("nan"), float("inf")


def one(rule: dict[str, Any], data: pa.Table, **refs: pa.Table) -> Any:
    validator = Validator(rules_by_table={"t": [{"name": "r", **rule}]}, references=refs)
    return validator.validate_table(data, "t").result("r")


def test_a_nan_among_allowed_values_matches_nan_and_fails_the_other_values() -> None:
    data = pa.table({"x": pa.array([1.0, 2.0, 99.0, NAN], pa.float64())})
    result = one({"type": "allowed_values", "column": "x", "values": [1.0, NAN]}, data)
    assert (result.outcome, result.failing_rows) == ("fail", 2)


@pytest.mark.parametrize(
    ("bounds", "failing"),
    [({"max": INF}, 0), ({"min": -INF}, 0), ({"min": 10.0, "max": INF}, 1), ({"max": -INF}, 2)],
)
def test_an_infinite_range_bound_is_a_number(bounds: dict[str, float], failing: int) -> None:
    # a column named "inf" would have been what an unquoted `inf` bound compared with
    data = pa.table({"x": [5.0, 50.0], "inf": [1.0, 1.0], "Infinity": [1.0, 1.0]})
    result = one({"type": "range", "column": "x", **bounds}, data)
    assert (result.outcome, result.failing_rows) == ("pass" if not failing else "fail", failing)


def test_infinities_among_allowed_values_are_numbers() -> None:
    data = pa.table({"x": [INF, -INF, 5.0, 6.0]})
    result = one({"type": "allowed_values", "column": "x", "values": [INF, -INF, 5.0]}, data)
    assert (result.outcome, result.failing_rows) == ("fail", 1)
