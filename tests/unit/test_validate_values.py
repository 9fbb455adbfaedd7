"""How a rule's values meet the column's: NaN and infinities as numbers, no implicit
conversion between kinds of values, UTC offsets, and column names in their exact case."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
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


def test_a_column_named_in_another_case_is_unknown_and_says_which_was_meant() -> None:
    data = pa.table({"id": [1, None]})
    result = one({"type": "completeness", "column": "ID"}, data)
    assert result.outcome == "error"
    assert "unknown column 'ID' in the rule (did you mean 'id'?" in result.message


@pytest.mark.parametrize("name", ["id", "ID"])
@pytest.mark.parametrize("source", ["memory", "parquet"])
def test_columns_that_differ_only_in_case_cannot_be_checked(
    name: str, source: str, tmp_path: Any
) -> None:
    # DuckDB reads them as `id` and `ID_1`, and "ID" binds to `id`: the check would
    # judge the other column
    data: Any = pa.table({"id": [1, 1], "ID": [None, 2]})
    if source == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(data, tmp_path / "t.parquet")
        data = str(tmp_path / "t.parquet")
    result = one({"type": "completeness", "column": name}, data)
    other = "id" if name == "ID" else "ID"
    assert result.outcome == "error"
    assert f"column {name!r} in the rule cannot be told apart from {other!r}" in result.message
    assert "rename one" in result.message


def test_a_filter_names_columns_in_sql_case_rules_unquoted_and_exact_quoted() -> None:
    data = pa.table({"CustomerId": [1, 2, None], "v": [1, 2, 3]})
    rule = {"type": "completeness", "column": "CustomerId"}
    assert one({**rule, "filter": "customerid > 1 OR v = 3"}, data).failing_rows == 1
    assert one({**rule, "filter": '"CustomerId" > 1 OR v = 3'}, data).failing_rows == 1
    result = one({**rule, "filter": '"customerid" > 1'}, data)
    assert result.outcome == "error"
    assert "unknown column 'customerid' in filter (did you mean 'CustomerId'?" in result.message


def test_mixed_case_columns_work_in_every_rule_that_names_one() -> None:
    data = pa.table({"CustomerId": pa.array([1, 2, 2], pa.int64()), "Name": ["a", "b", "c"]})
    parent = pa.table({"CustomerKey": pa.array([1, 2], pa.int64())})
    rules: list[dict[str, Any]] = [
        {"type": "completeness", "column": "CustomerId"},
        {"type": "uniqueness", "columns": ["CustomerId", "Name"]},
        {"type": "range", "column": "CustomerId", "min": 1},
        {"type": "allowed_values", "column": "Name", "values": ["a", "b", "c"]},
        {"type": "statistic", "statistic": "max", "column": "CustomerId", "max": 2},
        {"type": "sql_predicate", "expression": "CustomerId > 0"},
        {"type": "schema", "columns": {"CustomerId": "bigint", "Name": None}},
        {
            "type": "referential",
            "column": "CustomerId",
            "reference": {"table": "p", "column": "CustomerKey"},
        },
    ]
    for rule in rules:
        assert one(rule, data, p=parent).outcome == "pass", rule


def test_the_schema_rule_and_the_reference_column_match_names_in_their_exact_case() -> None:
    data = pa.table({"id": pa.array([1], pa.int64())})
    shape = one({"type": "schema", "columns": {"ID": "bigint"}, "allow_extra": False}, data)
    assert (shape.outcome, shape.observed["missing"], shape.observed["unexpected"]) == (
        "fail",
        ["ID"],
        ["id"],
    )
    parent = pa.table({"key": pa.array([1], pa.int64())})
    rule = {"type": "referential", "column": "id", "reference": {"table": "p", "column": "KEY"}}
    result = one(rule, data, p=parent)
    assert result.outcome == "error"
    assert "unknown column 'KEY' in the reference table 'p' (did you mean 'key'?" in result.message


@pytest.mark.parametrize(
    ("column", "values", "says"),
    [
        (pa.array(["01", "1", "7"]), [1, 9], "is VARCHAR but the values 1, 9 are numbers"),
        (pa.array(["01", "abc"]), [1], "quote them: YAML reads 01 as the number 1"),
        (pa.array([1, 2], pa.int64()), ["1", "02"], "write them as numbers, without quotes"),
        (pa.array([True, False]), ["true"], "write them as true or false"),
    ],
)
def test_allowed_values_of_another_kind_than_the_column_are_refused_not_converted(
    column: pa.Array, values: list[Any], says: str
) -> None:
    # VARCHAR '01' IN (1) was true, BIGINT 2 IN ('02') too, and 'abc' a conversion error
    result = one(
        {"type": "allowed_values", "column": "x", "values": values}, pa.table({"x": column})
    )
    assert result.outcome == "error"
    assert says in result.message


def test_numbers_of_any_kind_and_iso_text_for_dates_are_the_columns_kind() -> None:
    data = pa.table({"n": pa.array([1, 2], pa.int64()), "d": pa.array([0, 1], pa.date32())})
    assert (
        one({"type": "allowed_values", "column": "n", "values": [1.0, 2]}, data).outcome == "pass"
    )
    dates = {"type": "allowed_values", "column": "d", "values": ["1970-01-01", "1970-01-02"]}
    assert one(dates, data).outcome == "pass"
    assert one({"type": "range", "column": "d", "max": "1970-01-01"}, data).failing_rows == 1
    result = one({"type": "range", "column": "d", "min": 0}, data)
    assert result.outcome == "error"
    assert "is DATE but the bounds 0 are numbers" in result.message
    uuid = "00000000-0000-0000-0000-000000000001"
    as_uuid = pa.table({"u": pa.array([bytes(15) + b"\x01"], pa.uuid())})
    assert (
        one({"type": "allowed_values", "column": "u", "values": [uuid]}, as_uuid).outcome == "pass"
    )
    text = one({"type": "range", "column": "s", "min": 0}, pa.table({"s": ["1", "abc"]}))
    assert "a range compares numbers, dates or times" in text.message


@pytest.mark.parametrize("parent", [pa.array([1], pa.int64()), pa.array(["1"])])
def test_referential_keys_of_another_kind_than_the_reference_are_refused(parent: pa.Array) -> None:
    # VARCHAR '01', ' 1' and '1.0' all found BIGINT 1 through an implicit cast
    child = pa.array(["01", " 1", "1.0"]) if pa.types.is_integer(parent.type) else pa.array([1])
    rule = {"type": "referential", "column": "c", "reference": {"table": "p", "column": "k"}}
    result = one(rule, pa.table({"c": child}), p=pa.table({"k": parent}))
    assert result.outcome == "error"
    assert "make the types match in the source, or write a sql_query" in result.message


def test_referential_keys_compare_numbers_of_any_width_and_dates_with_timestamps() -> None:
    rule = {"type": "referential", "column": "c", "reference": {"table": "p", "column": "k"}}
    ints = pa.table({"c": pa.array([1, 2], pa.int32())})
    parent = pa.table({"k": pa.array([Decimal("1.0"), Decimal("2.0")], pa.decimal128(5, 1))})
    assert one(rule, ints, p=parent).outcome == "pass"
    days = pa.table({"c": pa.array([0], pa.date32())})
    moments = pa.table({"k": pa.array([0], pa.timestamp("us"))})
    assert one(rule, days, p=moments).outcome == "pass"


@pytest.mark.parametrize("unit", ["us", "ns"])
def test_a_bound_with_a_utc_offset_on_a_naive_timestamp_is_that_moment_in_utc(unit: str) -> None:
    # 03:00+05:00 is 22:00 UTC the day before: a naive (UTC) 02:00 is after it
    data = pa.table({"ts": pa.array([datetime(2024, 1, 1, 2)], pa.timestamp(unit))})
    bound = "2024-01-01T03:00:00+05:00"
    assert one({"type": "range", "column": "ts", "max": bound}, data).failing_rows == 1
    assert one({"type": "range", "column": "ts", "min": bound}, data).failing_rows == 0


def test_a_bound_with_a_utc_offset_on_a_timestamp_with_time_zone_keeps_it() -> None:
    data = pa.table(
        {"ts": pa.array([datetime(2024, 1, 1, 2, tzinfo=UTC)], pa.timestamp("us", "UTC"))}
    )
    assert (
        one(
            {"type": "range", "column": "ts", "max": "2024-01-01T03:00:00+05:00"}, data
        ).failing_rows
        == 1
    )
    assert (
        one(
            {"type": "range", "column": "ts", "max": "2024-01-01T07:00:00+05:00"}, data
        ).failing_rows
        == 0
    )


def test_allowed_timestamps_with_a_utc_offset_on_a_naive_column_are_utc() -> None:
    data = pa.table({"ts": pa.array([datetime(2024, 1, 1, 2)], pa.timestamp("us"))})
    rule = {"type": "allowed_values", "column": "ts", "values": ["2024-01-01T07:00:00+05:00"]}
    assert one(rule, data).failing_rows == 0


def test_a_bound_with_a_utc_offset_on_a_date_column_is_its_utc_moment() -> None:
    data = pa.table({"d": pa.array([date(2024, 1, 1)], pa.date32())})
    # 2024-01-01T03:00+05:00 is 2023-12-31 22:00 UTC: the date's midnight is after it
    rule = {"type": "range", "column": "d", "max": "2024-01-01T03:00:00+05:00"}
    assert one(rule, data).failing_rows == 1


@pytest.mark.parametrize("rule_type", ["regex", "length"])
def test_a_regex_or_length_on_a_number_is_an_error_saying_how_to_write_it(rule_type: str) -> None:
    rule = {"type": rule_type, "column": "i", "pattern": "^[0-9]+$", "max": 2}
    rule = {k: v for k, v in rule.items() if k != ("max" if rule_type == "regex" else "pattern")}
    result = one(rule, pa.table({"i": [1, 22, 333]}))
    assert result.outcome == "error"
    assert result.message.startswith(f"a {rule_type} rule needs a text column; 'i' is BIGINT")
    assert 'CAST("i" AS VARCHAR)' in result.message


def test_text_kinds_a_regex_and_a_length_apply_to() -> None:
    category = pd.DataFrame({"c": pd.Categorical(["a", "bb", "a"])})  # an ENUM in DuckDB
    assert one({"type": "regex", "column": "c", "pattern": "^a$"}, category).failing_rows == 1
    assert one({"type": "length", "column": "c", "max": 1}, category).failing_rows == 1
    lists = pa.table({"l": pa.array([[1], [1, 2], []])})  # a list's length: its elements
    assert one({"type": "length", "column": "l", "max": 1}, lists).failing_rows == 1
