"""Each rule type on data in memory: pass, fail, warn, error, thresholds, NULL semantics,
empty input, and the statements the fused plan costs (DuckDB in process, no server)."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from onceflow.type_names import same_type
from onceflow.validate import ValidationReport, Validator
from onceflow.validate.metrics import merge, statistic_value

T0 = datetime(2025, 1, 31, tzinfo=UTC)


def table() -> pa.Table:
    """Six rows; NULLs in every checked column but `ts`."""
    return pa.table(
        {
            "id": pa.array([1, 2, 3, 3, 5, None], pa.int64()),
            "v": pa.array([1, 5, 10, None, 20, 3], pa.int64()),
            "s": ["a", "b", "x", None, "a", "b"],
            "e": ["a@b.c", "bad", None, "x@y.z", "q@r.s", "no at"],
            "c": pa.array([10, 11, 99, None, 10, 12], pa.int64()),
            "ts": pa.array([T0 - timedelta(hours=h) for h in (1, 2, 3, 4, 5, 50)]),
        }
    )


def validate(rules: list[dict[str, Any]], data: Any = None, **options: Any) -> ValidationReport:
    refs = {"customers": pa.table({"cid": pa.array([10, 11, 12], pa.int64())})}
    validator = Validator(rules_by_table={"t": rules}, references=refs, **options)
    return validator.validate_table(table() if data is None else data, "t")


def one(rule: dict[str, Any], data: Any = None) -> Any:
    return validate([{"name": "r", **rule}], data).result("r")


ROW_RULES = [
    # rule, failing rows, judged (non-NULL) rows
    ({"type": "completeness", "column": "v"}, 1, 6),
    ({"type": "range", "column": "v", "min": 1, "max": 10}, 1, 5),
    ({"type": "range", "column": "v", "min": 1, "max": 10, "inclusive": False}, 3, 5),
    ({"type": "allowed_values", "column": "s", "values": ["a", "b"]}, 1, 5),
    ({"type": "regex", "column": "e", "pattern": "^[^@ ]+@[^@ ]+$"}, 2, 5),
    ({"type": "length", "column": "s", "min": 1, "max": 1}, 0, 5),
    ({"type": "sql_predicate", "expression": "v < 10 OR s = 'a'"}, 1, 5),
    (
        {
            "type": "referential",
            "column": "c",
            "reference": {"table": "customers", "column": "cid"},
        },
        1,
        5,
    ),
    ({"type": "sql_query", "query": "SELECT * FROM {table} WHERE v >= 10"}, 2, 6),
]


@pytest.mark.parametrize(
    ("rule", "failing", "judged"), ROW_RULES, ids=[r[0]["type"] for r in ROW_RULES]
)
def test_row_rules_count_failing_rows_with_the_null_semantics(
    rule: dict[str, Any], failing: int, judged: int
) -> None:
    result = one(rule)
    assert (result.failing_rows, result.evaluated_rows, result.total_rows) == (failing, judged, 6)
    assert result.outcome == ("pass" if failing == 0 else "fail")
    assert result.failing_percent == pytest.approx(100 * failing / 6)
    if rule["type"] in ("completeness", "sql_query"):
        assert result.failing_percent_non_null is None  # every row is judged
    else:
        assert result.failing_percent_non_null == pytest.approx(100 * failing / judged)
    assert result.threshold == {"max_failing": 0} and result.observed == failing


FAILING = [
    *[r for r, failing, _judged in ROW_RULES if failing],
    {"type": "uniqueness", "columns": ["id"]},
    {"type": "row_count", "max": 3},
    {"type": "statistic", "statistic": "mean", "column": "v", "max": 1},
    {"type": "freshness", "column": "ts", "max_age": "1m", "reference_time": T0.isoformat()},
    {"type": "schema", "columns": {"zz": None}},
]


@pytest.mark.parametrize("rule", FAILING, ids=[r["type"] for r in FAILING])
def test_every_rule_type_fails_as_an_error_and_warns_as_a_warning(rule: dict[str, Any]) -> None:
    assert one(rule).outcome == "fail"
    warned = validate([{"name": "r", **rule, "severity": "warn"}])
    assert warned.result("r").outcome == "warn" and warned.exit_code == 0


def test_thresholds_mostly_and_max_failing() -> None:
    regex = {"type": "regex", "column": "e", "pattern": "@"}  # 2 of 5 non-NULL fail
    assert one({**regex, "mostly": 0.6}).outcome == "pass"  # 3/5 pass
    low = one({**regex, "mostly": 0.61})
    assert (low.outcome, low.observed, low.threshold) == ("fail", 0.6, {"mostly": 0.61})
    assert one({**regex, "max_failing": 2}).outcome == "pass"
    assert one({**regex, "max_failing": 1}).outcome == "fail"


def test_warn_severity_never_fails_and_a_filter_narrows_the_rows() -> None:
    warned = one({"type": "completeness", "column": "v", "severity": "warn"})
    assert (warned.outcome, warned.failing_rows) == ("warn", 1)
    filtered = one({"type": "completeness", "column": "v", "filter": "s = 'a' OR s = 'b'"})
    assert (filtered.outcome, filtered.total_rows) == ("pass", 4)
    report = validate([{"name": "w", "type": "completeness", "column": "v", "severity": "warn"}])
    assert report.exit_code == 0 and report.ok


def test_uniqueness_reports_duplicated_rows_and_distinct_values() -> None:
    single = one({"type": "uniqueness", "columns": ["id"]})
    assert (single.failing_rows, single.distinct_failing, single.evaluated_rows) == (2, 1, 5)
    assert single.samples == [{"id": 3, "n": 2}]
    composite = one({"type": "uniqueness", "columns": ["id", "s"]})
    assert composite.outcome == "pass" and composite.failing_rows == 0


def test_uniqueness_of_a_key_column_named_like_its_row_count() -> None:
    # the group's row count once shared the key's name `n`: the sum added key values
    data = pa.table({"n": pa.array([7, 7, 7, 8, 8, 9], pa.int64())})
    rule = {"name": "u", "type": "uniqueness", "columns": ["n"]}
    result = validate([rule], data).result("u")
    assert (result.failing_rows, result.distinct_failing) == (5, 2)
    assert result.failing_percent == pytest.approx(500 / 6)
    assert result.samples == [{"n": 7, "n_rows": 3}, {"n": 8, "n_rows": 2}]


def test_aggregate_rules_compare_one_value() -> None:
    rows = one({"type": "row_count", "min": 7})
    assert (rows.outcome, rows.observed, rows.threshold) == ("fail", 6, {"min": 7})
    values = [1, 5, 10, 20, 3]
    cases = {
        "mean": statistics.mean(values),
        "min": 1,
        "max": 20,
        "sum": 39,
        "stddev": statistics.stdev(values),
    }
    for statistic, expected in cases.items():
        result = one({"type": "statistic", "statistic": statistic, "column": "v", "max": 100})
        assert result.observed == pytest.approx(expected) and result.outcome == "pass", statistic
    median = one(
        {"type": "statistic", "statistic": "quantile", "quantile": 0.5, "column": "v", "max": 4}
    )
    assert (median.observed, median.outcome) == (5.0, "fail")


def test_freshness_against_the_reference_time() -> None:
    fresh = {"type": "freshness", "column": "ts", "max_age": "2h", "reference_time": T0.isoformat()}
    result = one(fresh)
    assert result.outcome == "pass" and result.observed == pytest.approx(1.0)
    assert result.details["newest"] == (T0 - timedelta(hours=1)).isoformat()
    stale = one({**fresh, "reference_time": (T0 + timedelta(hours=2)).isoformat()})
    assert (stale.outcome, stale.observed) == ("fail", pytest.approx(3.0))


def test_a_schema_rule_fails_on_missing_wrong_typed_and_unexpected_columns() -> None:
    ok = one({"type": "schema", "columns": {"id": "int64", "s": "string", "ts": None}})
    assert ok.outcome == "pass"
    bad = one({"type": "schema", "columns": {"id": "varchar", "zz": None}, "allow_extra": False})
    assert bad.outcome == "fail"
    assert bad.observed["missing"] == ["zz"]
    assert bad.observed["wrong_type"] == {"id": {"expected": "varchar", "actual": "BIGINT"}}
    assert bad.observed["unexpected"] == ["v", "s", "e", "c", "ts"]
    assert same_type("decimal", "DECIMAL(12,2)") and same_type(
        "timestamptz", "TIMESTAMP WITH TIME ZONE"
    )


def test_a_nanosecond_zoned_column_is_a_zoned_timestamp_to_a_schema_rule() -> None:
    """DuckDB 2.0 reads timestamp[ns, tz=...] as TIMESTAMPTZ_NS: `timestamptz` failed it."""
    from datetime import UTC, datetime

    at = pa.array([datetime(2025, 1, 1, tzinfo=UTC)], pa.timestamp("ns", tz="Europe/Paris"))
    data = pa.table({"t": at})
    for spelling in ("timestamptz", "timestamp with time zone", "timestamp[us, tz=UTC]"):
        rule = {"type": "schema", "columns": {"t": spelling}}
        assert one(rule, data).outcome == "pass", spelling
    assert same_type("timestamptz_ns", "TIMESTAMPTZ_NS")
    assert not same_type("timestamptz_ns", "TIMESTAMP WITH TIME ZONE")
    assert not same_type("timestamp", "TIMESTAMPTZ_NS")  # naive is not zoned


def test_empty_input_passes_row_rules_and_fails_statistics() -> None:
    empty = table().slice(0, 0)
    assert one({"type": "range", "column": "v", "min": 0}, empty).outcome == "pass"
    mean = one({"type": "statistic", "statistic": "mean", "column": "v", "min": 0}, empty)
    assert mean.outcome == "fail" and "no non-NULL values of 'v'" in (mean.message or "")
    assert mean.observed is None
    fresh = one({"type": "freshness", "column": "ts", "max_age": "1h"}, empty)
    assert fresh.outcome == "fail"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            {"type": "completeness", "column": "nope"},
            "unknown column 'nope' in the rule (columns: id, v",
        ),
        ({"type": "sql_predicate", "expression": "v >>> 3 ("}, "bad SQL in expression"),
        (
            {"type": "sql_predicate", "expression": "no_such_fn(v) > 1"},
            "could not run: Catalog Error",
        ),
        (
            {"type": "regex", "column": "e", "pattern": "(?=a)"},
            "could not run: Invalid Input Error",
        ),
        (
            {"type": "referential", "column": "c", "reference": {"table": "gone", "column": "x"}},
            "reference table 'gone' not found",
        ),
        (
            {"type": "completeness", "column": "v", "filter": "zz = 1"},
            "unknown column 'zz' in filter",
        ),
        ({"type": "sql_predicate", "expression": "s <> 'it''s"}, "bad SQL in expression"),
        ({"type": "completeness", "column": "v", "filter": "s = 'a"}, "bad SQL in filter"),
        ({"type": "sql_query", "query": "SELECT * FROM {table} WHERE s = 'a"}, "bad SQL in"),
        (
            {"type": "sql_predicate", "expression": "v >> "},
            "bad SQL in expression 'v >>': an incomplete expression (BitwiseRightShift has "
            "no expression: something is missing after an operator or keyword)",
        ),
        (
            {"type": "sql_predicate", "expression": "string_agg(s, ',') = 'x'"},
            "holds an aggregate (string_agg), but it is judged row by row",
        ),
        (
            {"type": "sql_predicate", "expression": "v IN (SELECT v FROM {table})"},
            "names {table}, but it is a condition on each row; a query over the table is a "
            "sql_query",
        ),
        (
            # the count never evaluates the cast; the failing rows' query does
            {"type": "sql_query", "query": "SELECT CAST(s AS INTEGER) AS bad FROM {table}"},
            "could not run: Conversion Error",
        ),
        (
            {"type": "sql_predicate", "expression": "count(*) > 1"},
            "the expression 'count(*) > 1' holds an aggregate (count), but it is judged "
            "row by row; use a sql_query",
        ),
        (
            {"type": "completeness", "column": "v", "filter": "row_number() OVER () > 1"},
            "the filter 'row_number() OVER () > 1' holds a window function "
            "(row_number(...) OVER (...))",
        ),
        # sqlglot reads `> >` as the shift `>>`, a valid other rule; DuckDB refuses it
        (
            {"type": "sql_predicate", "expression": "v > > 200"},
            "bad SQL in expression 'v > > 200': syntax error at or near \">\"",
        ),
        (
            {"type": "row_count", "min": 1, "filter": "v < < 1000"},
            "bad SQL in filter 'v < < 1000': syntax error at or near \"<\"",
        ),
        (
            {"type": "sql_query", "query": "SELECT * FROM {table} WHERE v > > 3"},
            "bad SQL in query 'SELECT * FROM {table} WHERE v > > 3': syntax error",
        ),
    ],
    ids=[
        "unknown column",
        "bad SQL",
        "unknown function",
        "RE2 rejects the regex",
        "missing table",
        "bad filter",
        "unclosed quote in an expression",
        "unclosed quote in a filter",
        "unclosed quote in a query",
        "sqlglot's node names, not its classes",
        "an aggregate named as written, not as sqlglot spells it",
        "{table} in a predicate",
        "a query that fails when its rows are read",
        "an aggregate in a row-level expression",
        "a window function in a filter",
        "a predicate the engine refuses but sqlglot takes for a shift",
        "a filter the engine refuses but sqlglot takes for a shift",
        "a query the engine refuses but sqlglot takes for a shift",
    ],
)
def test_a_rule_that_cannot_run_is_error_and_the_others_still_run(
    rule: dict[str, Any], message: str
) -> None:
    report = validate(
        [
            {"name": "bad", **rule},
            {"name": "good", "type": "completeness", "column": "id", "mostly": 0.5},
            {"name": "rows", "type": "row_count", "min": 1},
        ]
    )
    bad = report.result("bad")
    assert bad.outcome == "error" and message in (bad.message or "") and "\n" not in bad.message
    assert report.result("good").outcome == "pass" and report.result("rows").outcome == "pass"
    assert report.exit_code == 2


def test_one_fused_query_and_one_limit_query_per_failing_rule() -> None:
    rules = [
        {"name": "a", "type": "completeness", "column": "id"},  # fails
        {"name": "b", "type": "range", "column": "v", "min": 0},
        {"name": "c", "type": "allowed_values", "column": "s", "values": ["a", "b"]},  # fails
        {"name": "d", "type": "regex", "column": "e", "pattern": "."},
        {"name": "e", "type": "row_count", "min": 1},
        {"name": "f", "type": "statistic", "statistic": "mean", "column": "v", "min": 0},
        {
            "name": "g",
            "type": "statistic",
            "statistic": "quantile",
            "quantile": 0.9,
            "column": "v",
            "min": 0,
        },
        {"name": "h", "type": "freshness", "column": "ts", "max_age": "1000d"},
        {"name": "u", "type": "uniqueness", "columns": ["s"]},  # fails
        {
            "name": "r",
            "type": "referential",
            "column": "c",
            "reference": {"table": "customers", "column": "cid"},
        },
        {"name": "q", "type": "sql_query", "query": "SELECT * FROM {table} WHERE v < 0"},
    ]
    report = validate(rules)
    outcomes = {r.rule: r.outcome for r in report.results}
    assert [k for k, v in outcomes.items() if v == "fail"] == ["a", "c", "u", "r"]
    # 1 fused + 1 uniqueness + 1 referential + 1 custom, + 4 sample queries (a, c, u, r)
    assert report.data_queries == 8
    assert report.tables[0].statements == 8
    assert len(report.result("a").sql) == 2 and report.result("b").sql == report.result("e").sql
    passing = [r for r in report.results if r.outcome == "pass"]
    assert passing and all(not r.samples and "LIMIT" not in " ".join(r.sql) for r in passing)
    assert len(report.result("q").sql) == 2  # the fused query, then its own count
    assert report.result("c").samples == [
        {
            "id": 3,
            "v": 10,
            "s": "x",
            "e": None,
            "c": 99,
            "ts": (T0 - timedelta(hours=3)).isoformat(),
        }
    ]


def test_the_size_cap_splits_the_fused_query() -> None:
    rules = [{"name": f"r{i}", "type": "range", "column": "v", "min": -i} for i in range(6)]
    validator = Validator(rules_by_table={"t": rules})
    validator.settings = type(validator.settings)(
        **{**validator.settings.__dict__, "max_fused_aggregates": 4}
    )
    report = validator.validate_table(table(), "t")
    assert all(r.outcome == "pass" for r in report.results)
    # per rule: rows and evaluated (shared) + its failing count; a cap of 4 fits two rules
    assert report.data_queries == 3


def test_pandas_and_polars_frames_give_the_same_report() -> None:
    import pandas as pd
    import polars as pl

    rules = [
        {"name": "a", "type": "completeness", "column": "v"},
        {"name": "b", "type": "range", "column": "v", "max": 10},
    ]
    arrow = validate(rules)
    frames = [table().to_pandas(), pl.from_arrow(table())]
    for frame in frames:
        got = validate(rules, frame)
        assert [r.comparable() for r in got.results] == [r.comparable() for r in arrow.results]
    assert isinstance(frames[0], pd.DataFrame)


def test_chan_merge_of_two_halves_is_the_whole() -> None:
    values = [float(x) ** 1.5 for x in range(1, 200)]
    halves = (values[:77], values[77:])

    def state(xs: list[float]) -> dict[str, Any]:
        mean = statistics.fmean(xs)
        return {"n": len(xs), "mean": mean, "m2": sum((x - mean) ** 2 for x in xs)}

    merged = merge(state(halves[0]), state(halves[1]))
    from onceflow.rules import Statistic

    rule = Statistic(name="s", column="x", statistic="stddev", max=1e9)
    assert statistic_value(rule, merged) == pytest.approx(statistics.stdev(values), rel=1e-12)
    assert math.isclose(merged["mean"], statistics.fmean(values), rel_tol=1e-12)


# -- found by checking against an independent computation (see docs/validate.md) --------


def test_mostly_exactly_at_the_threshold_passes() -> None:
    # 1 - 7/100 is 0.9299999999999999 in floating point; 93/100 is 0.93
    data = pa.table({"x": pa.array([-1] * 7 + [1] * 93, pa.int64())})
    got = one({"type": "range", "column": "x", "min": 0, "mostly": 0.93}, data)
    assert (got.outcome, got.observed) == ("pass", 0.93)


def test_a_filtered_stddev_is_the_stddev_of_the_filtered_values() -> None:
    data = pa.table({"x": [1.0, 2.0, 3.0, 4.0, 100.0, 200.0], "g": ["a"] * 4 + ["b"] * 2})
    rule = {"type": "statistic", "statistic": "stddev", "column": "x", "max": 10}
    got = one({**rule, "filter": "g = 'a'"}, data)
    assert got.observed == pytest.approx(statistics.stdev([1, 2, 3, 4]), rel=1e-12)
    assert got.outcome == "pass" and got.evaluated_rows == 4


def test_a_stddev_of_nan_or_infinite_values_is_nan_and_fails_its_bound() -> None:
    data = pa.table({"x": [1.0, 2.0, math.nan], "y": [1.0, 2.0, math.inf]})
    for name in ("x", "y"):
        got = one({"type": "statistic", "statistic": "stddev", "column": name, "max": 0.5}, data)
        assert got.outcome == "fail" and got.observed == "nan"  # as DuckDB's stddev_samp


def test_a_statistic_needs_a_numeric_column_and_the_other_rules_still_run() -> None:
    report = validate(
        [
            {"name": "first", "type": "statistic", "statistic": "min", "column": "ts", "min": 0},
            {"name": "rows", "type": "row_count", "min": 1},
        ]
    )
    got = report.result("first")
    assert got.outcome == "error" and got.message == (
        "a statistic needs a numeric column; 'ts' is TIMESTAMP WITH TIME ZONE (for dates "
        "and times use freshness or range)"
    )
    assert report.result("rows").outcome == "pass"


def test_a_decimal_quantile_is_interpolated_not_cut_to_the_columns_scale() -> None:
    from decimal import Decimal

    values = [Decimal("0.01"), Decimal("0.02")]
    data = pa.table({"d": pa.array(values, pa.decimal128(12, 2))})
    rule = {"type": "statistic", "statistic": "quantile", "quantile": 0.5, "column": "d"}
    got = one({**rule, "min": 0.015}, data)
    assert (got.outcome, got.observed) == ("pass", 0.015)  # as pandas and PostgreSQL


def test_a_naive_reference_time_is_utc() -> None:
    rule = {"name": "r", "type": "freshness", "column": "ts", "max_age": "2h"}
    validator = Validator(rules_by_table={"t": [rule]})
    naive = validator.validate_table(table(), "t", reference_time=T0.replace(tzinfo=None))
    aware = validator.validate_table(table(), "t", reference_time=T0)
    assert naive.result("r").observed == aware.result("r").observed == 1.0


def test_a_timestamp_bound_on_a_date_column_keeps_its_time_of_day() -> None:
    from datetime import date

    data = pa.table({"d": pa.array([date(2024, 1, 1), date(2024, 1, 2)])})
    noon = "2024-01-01 12:00:00"
    assert one({"type": "range", "column": "d", "min": noon}, data).failing_rows == 1
    strict = {"type": "range", "column": "d", "max": noon, "inclusive": False}
    assert one(strict, data).failing_rows == 1  # 2024-01-02 is after noon the day before
    assert one({"type": "range", "column": "d", "min": "2024-01-01"}, data).failing_rows == 0
    # allowed values alike: noon allows no date; a midnight or a plain date allows its day
    allowed = {"type": "allowed_values", "column": "d"}
    assert one({**allowed, "values": [noon]}, data).failing_rows == 2
    assert one({**allowed, "values": [noon, "2024-01-02 00:00:00"]}, data).failing_rows == 1
    assert one({**allowed, "values": ["2024-01-01"]}, data).failing_rows == 1


@pytest.mark.parametrize("expression", ["x", "i - 1", "s || 'a'", "'yes'", "X"])
def test_a_predicate_that_is_a_number_or_text_is_an_error_not_cast_to_a_truth(
    expression: str,
) -> None:
    """DuckDB casts `x` or `i - 1` to a boolean (non-zero is true) and judges that."""
    data = pa.table({"x": [1.0, 0.0], "i": [1, 2], "s": ["a", "b"], "b": [True, False]})
    result = one({"type": "sql_predicate", "expression": expression}, data)
    assert result.outcome == "error"
    assert "not a condition: a row passes where the expression is true" in result.message


def test_a_boolean_column_or_a_function_is_a_predicate() -> None:
    data = pa.table({"b": [True, False, None], "x": [1.0, 0.0, None]})
    assert one({"type": "sql_predicate", "expression": "b"}, data).failing_rows == 1
    assert one({"type": "sql_predicate", "expression": "isnan(x)"}, data).failing_rows == 2


def test_merged_min_and_max_order_nan_as_the_engine_does() -> None:
    # NaN is above every number: a max with one is NaN, a min skips it unless all are
    assert math.isnan(merge({"max": 3.0}, {"max": math.nan})["max"])
    assert math.isnan(merge({"max": math.nan}, {"max": 3.0})["max"])
    assert merge({"min": math.nan}, {"min": 5.0})["min"] == 5.0
    assert merge({"min": 5.0}, {"min": math.nan})["min"] == 5.0
    assert math.isnan(merge({"min": math.nan}, {"min": math.nan})["min"])


def test_an_all_null_pandas_column_has_no_values_rather_than_a_wrong_type() -> None:
    import pandas as pd

    nulls = pd.Series([None, None], dtype=object)  # DuckDB reads its type as NULL
    data = pd.DataFrame({"x": nulls, "t": nulls})
    report = validate(
        [
            {"name": "mean", "type": "statistic", "statistic": "mean", "column": "x", "min": 0},
            {"name": "fresh", "type": "freshness", "column": "t", "max_age": "1d"},
        ],
        data,
    )
    assert [(r.outcome, r.evaluated_rows) for r in report.results] == [("fail", 0), ("fail", 0)]


def test_a_merged_stddev_of_a_constant_column_is_exactly_zero() -> None:
    # each half's mean of the same value may be off in its last bit; a full run says 0
    value = 0.1 + 0.2
    a = {"n": 3, "mean": value, "m2": 0.0}
    b = {"n": 7, "mean": math.nextafter(value, 1.0), "m2": 0.0}
    merged = merge(a, b)
    rule = Validator(
        rules_by_table={
            "t": [
                {"name": "s", "type": "statistic", "statistic": "stddev", "column": "x", "max": 0}
            ]
        }
    ).rules["t"][0]
    assert merged["m2"] == 0.0 and statistic_value(rule, merged) == 0.0
    spread = merge({"n": 2, "mean": 1.0, "m2": 0.5}, {"n": 2, "mean": 3.0, "m2": 0.5})
    assert spread["m2"] == pytest.approx(1.0 + 4.0 * 2 * 2 / 4)  # a real difference stays


def test_a_validation_that_raises_is_not_left_running(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onceflow.state import open_store
    from onceflow.validate import runner

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(runner.sql, "compile_rule", broken)
    state = f"sqlite:///{tmp_path / 'state.db'}"
    with pytest.raises(RuntimeError, match="a bug"):
        validate([{"name": "rows", "type": "row_count", "min": 1}], state=state)
    with open_store(state) as store:
        (last,) = store.rules.last_validations("standalone")
    assert (last.status, last.ended_at is not None) == ("error", True)


def test_a_data_or_reference_url_with_a_password_is_masked_in_the_report() -> None:
    secret = "Sekret123"
    rules = [
        {"name": "c", "type": "completeness", "column": "id"},
        {
            "name": "ref",
            "type": "referential",
            "column": "id",
            "reference": {"table": f"foo://AKIA:{secret}@bucket/c", "column": "id"},
        },
    ]
    validator = Validator(rules_by_table={"t": rules})
    unreadable = validator.validate_table(f"foo://AKIA:{secret}@bucket/x", "t")
    in_memory = validator.validate_table(pa.table({"id": [1]}), "t")
    assert unreadable.tables[0].source == "foo://AKIA:***@bucket/x"
    assert in_memory.result("ref").message == (
        "reference table 'foo://AKIA:***@bucket/c': no such Delta table or Parquet file"
    )
    for report in (unreadable, in_memory):
        assert secret not in report.to_json()


def test_a_subquerys_aggregate_is_row_level_and_an_integer_sum_is_exact() -> None:
    rules: list[dict[str, Any]] = [
        {
            "name": "below_max",
            "type": "sql_predicate",
            "expression": "v <= (SELECT max(x) FROM (VALUES (5)) s(x))",
        },
        {"name": "sum", "type": "statistic", "statistic": "sum", "column": "big", "min": 2**53 + 1},
    ]
    data = pa.table({"big": pa.array([2**53, 1], pa.int64()), "v": [1, 2]})
    report = Validator(rules_by_table={"t": rules}).validate_table(data, "t")
    assert report.result("below_max").outcome == "pass"
    # as a double, 2**53 + 1 is 2**53, below its own bound
    assert report.result("sum").observed == 2**53 + 1 and report.result("sum").outcome == "pass"


def test_a_decimal_statistic_is_judged_exactly_not_as_its_double(tmp_path: Any) -> None:
    """9007199254740992.50 as a double is 2**53, which met `max: 2**53`; the range rule on
    the same row failed. The decimal judges, incremental merges included."""
    from decimal import Decimal

    from deltalake import write_deltalake

    bound = 2**53
    rules: list[dict[str, Any]] = [
        {"name": kind, "type": "statistic", "statistic": kind, "column": "d", "max": bound}
        for kind in ("max", "sum", "mean")
    ] + [{"name": "in_range", "type": "range", "column": "d", "max": bound}]
    row = pa.array([Decimal("9007199254740992.50")], pa.decimal128(19, 2))
    report = Validator(rules_by_table={"t": rules}).validate_table(pa.table({"d": row}), "t")
    assert {r.rule: r.outcome for r in report.results} == dict.fromkeys(
        ("max", "sum", "mean", "in_range"), "fail"
    )
    # a first pass just at the bound, then an append that goes over it by 0.5
    path, state = str(tmp_path / "d"), f"sqlite:///{tmp_path / 'state.db'}"
    at = pa.array([Decimal(bound)], pa.decimal128(19, 2))
    write_deltalake(path, pa.table({"d": at}))
    kept = rules[:1]
    assert Validator(rules_by_table={"t": kept}, state=state).validate_table(path, "t").ok
    write_deltalake(path, pa.table({"d": row}), mode="append")
    grown = Validator(rules_by_table={"t": kept}, state=state).validate_table(path, "t")
    assert grown.result("max").incremental and grown.result("max").outcome == "fail"


def test_a_decimal_statistic_at_a_decimal_bound_meets_it() -> None:
    """0.10 + 0.20 is exactly 0.30, which meets `max: 0.3` as written, though the double
    0.3 is below 0.30 (like GX's SQL engine and Soda); a range rule agrees."""
    from decimal import Decimal

    values = pa.array([Decimal(v) for v in ("0.10", "0.20", "0.70")], pa.decimal128(12, 2))
    rules: list[dict[str, Any]] = [
        {"name": "min", "type": "statistic", "statistic": "min", "column": "d", "min": 0.1},
        {"name": "max", "type": "statistic", "statistic": "max", "column": "d", "max": 0.7},
        {"name": "sum", "type": "statistic", "statistic": "sum", "column": "d", "max": 1.0},
        {"name": "in_range", "type": "range", "column": "d", "min": 0.1, "max": 0.7},
        {"name": "above", "type": "statistic", "statistic": "max", "column": "d", "max": 0.69},
    ]
    report = Validator(rules_by_table={"t": rules}).validate_table(pa.table({"d": values}), "t")
    outcomes = {r.rule: r.outcome for r in report.results}
    assert outcomes == {"min": "pass", "max": "pass", "sum": "pass", "in_range": "pass"} | {
        "above": "fail"
    }
    pair = pa.table({"d": values.slice(0, 2)})
    mean = {"name": "mean", "type": "statistic", "statistic": "mean", "column": "d", "max": 0.15}
    assert Validator(rules_by_table={"t": [mean]}).validate_table(pair, "t").ok


def test_a_decimal_range_compares_its_bounds_as_decimals_not_doubles() -> None:
    """On a DECIMAL(38,2) column 12345678901234567890.12 met `max: 12345678901234567890.11`
    (both the double 1.2345678901234567e19), and 0.100000000000000001 met `max: 0.1`. A
    bound finer than the column's scale stays exact (0.10 < 0.105 < 0.11), and one beyond
    the type's range decides for every value."""
    from decimal import Decimal

    big = pa.array([Decimal("12345678901234567890.12"), None], pa.decimal128(38, 2))
    small = pa.array([Decimal(v) for v in ("0.10", "0.11", "9.99")], pa.decimal128(3, 2))
    fine = [Decimal("0.1"), Decimal("0.100000000000000001"), Decimal("0.2")]
    cases: list[tuple[str, dict[str, Any], int]] = [
        ("big", {"max": 12345678901234567890}, 1),
        ("big", {"max": 12345678901234567890.11}, 1),  # as written: 1.2345678901234567e19
        ("fine", {"max": 0.1}, 2),
        ("fine", {"min": 0.1, "inclusive": False}, 1),
        ("big", {"max": 12345678901234567891}, 0),
        ("big", {"min": 12345678901234567890, "inclusive": False}, 0),
        ("small", {"max": 0.105}, 2),
        ("small", {"max": 0.105, "inclusive": False}, 2),
        ("small", {"min": 0.105}, 1),
        ("small", {"min": 0.1, "max": 0.11, "inclusive": False}, 3),
        ("small", {"min": 0.1, "max": 0.11}, 1),
        ("small", {"max": 1e40}, 0),
        ("small", {"min": 1e40}, 3),
        ("small", {"max": -1e40}, 3),
        ("small", {"min": -1e40}, 0),
    ]
    for column, bounds, failing in cases:
        rule = {"name": "r", "type": "range", "column": column, **bounds}
        table = pa.table(
            {
                "big": big.take([0, 1, 1]),
                "small": small,
                "fine": pa.array(fine, pa.decimal128(38, 18)),
            }
        )
        result = Validator(rules_by_table={"t": [rule]}).validate_table(table, "t").result("r")
        assert result.failing_rows == failing, (column, bounds)


def test_a_float_bound_on_an_integer_column_is_compared_exactly() -> None:
    """Above 2**53 two integers are one double: 9007199254740993 met `max:
    9007199254740992.0` when the column was cast to DOUBLE. A float bound on an integer
    column is rounded inwards to an integer (4.5 -> <= 4, > 5.0 stays > 5)."""
    values = pa.array([9007199254740993, 5, None], pa.int64())
    table = pa.table({"b": values, "u": pa.array([2**64 - 1, 0, None], pa.uint64())})
    cases: list[tuple[str, dict[str, Any], int]] = [
        ("b", {"max": 9007199254740992.0}, 1),
        ("b", {"min": 9007199254740994.0}, 2),
        ("b", {"max": 4.5}, 2),
        ("b", {"min": 4.5, "max": 5.5, "inclusive": False}, 1),
        ("b", {"min": 5.0, "inclusive": False}, 1),
        ("b", {"max": 1e40}, 0),
        ("b", {"min": -1e300}, 0),
        ("b", {"max": -1e300}, 2),
        ("u", {"max": 1.8446744073709552e19}, 0),
        ("u", {"max": 1.8446744073709550e19}, 1),
    ]
    for column, bounds, failing in cases:
        rule = {"name": "r", "type": "range", "column": column, **bounds}
        result = Validator(rules_by_table={"t": [rule]}).validate_table(table, "t").result("r")
        assert (result.outcome, result.failing_rows) == (
            "fail" if failing else "pass",
            failing,
        ), (column, bounds)


def test_a_validation_that_cannot_read_its_data_is_the_tables_last_one(tmp_path: Any) -> None:
    """`status` shows the latest validation: one whose data is gone is recorded (every
    rule `error`, in the history too), not left out so that an older pass shows."""
    from onceflow.state import open_store

    state = f"sqlite:///{tmp_path / 'state.db'}"
    rules = [{"name": "rows", "type": "row_count", "min": 1}]
    assert validate(rules, state=state).tables[0].status == "passed"
    gone = validate(rules, str(tmp_path / "missing.parquet"), state=state)
    assert gone.exit_code == 2 and gone.result("rows").outcome == "error"
    with open_store(state) as store:
        (last,) = store.rules.last_validations("standalone")
        history = store.rules.history("standalone", "t")
    assert (last.status, last.validation_id) == ("error", gone.tables[0].validation_id)
    assert [h.outcome for h in history][-1] == "error"


@pytest.mark.parametrize(
    "rule",
    [
        {"type": "sql_predicate", "expression": "v < 100 -- the ids start at 1"},
        {"type": "sql_predicate", "expression": "v < 100;"},
        {"type": "completeness", "column": "v", "filter": "v > 1 -- the big ones"},
        {"type": "sql_query", "query": "PIVOT (SELECT s, v FROM {table}) ON s USING sum(v)"},
    ],
    ids=["a trailing comment", "a trailing semicolon", "a filter's comment", "a PIVOT query"],
)
def test_sql_the_engine_runs_is_not_refused_by_the_parser_check(rule: dict[str, Any]) -> None:
    """The engine's parser check refuses what it cannot parse, nothing it can run."""
    result = one(rule)
    assert result.outcome != "error", result.message


def test_a_delta_table_in_a_folder_with_a_space_is_read_not_reported_unreadable(
    tmp_path: Any,
) -> None:
    """delta-rs lists a local table's files percent-encoded (`my%20warehouse`): read as
    they were, DuckDB found no file and every rule was an `error`. Also its incremental
    pass over files appended later."""
    from deltalake import write_deltalake

    from onceflow.validate.inputs import resolve_input

    path, state = str(tmp_path / "my warehouse" / "t"), f"sqlite:///{tmp_path / 'state.db'}"
    write_deltalake(path, pa.table({"v": pa.array([1, None], pa.int64())}))
    files = resolve_input(path).snapshot_files()
    assert files is not None and all(f.startswith(str(tmp_path / "my warehouse")) for f in files)
    rules: list[dict[str, Any]] = [
        {"name": "present", "type": "completeness", "column": "v"},
        {"name": "top", "type": "statistic", "statistic": "max", "column": "v", "max": 5},
    ]
    first = Validator(rules_by_table={"t": rules}, state=state).validate_table(path, "t")
    assert {r.rule: (r.outcome, r.failing_rows) for r in first.results} == {
        "present": ("fail", 1),
        "top": ("pass", None),
    }
    write_deltalake(path, pa.table({"v": pa.array([9], pa.int64())}), mode="append")
    grown = Validator(rules_by_table={"t": rules}, state=state).validate_table(path, "t")
    assert grown.result("top").outcome == "fail" and grown.result("top").observed == 9


def test_a_cached_error_reports_the_severity_the_rule_has_now(tmp_path: Any) -> None:
    """The cache key leaves the severity out: a stored `error` (a column that is not there)
    served again after the rule became `warn` said `error`, as when it was stored."""
    import pyarrow.parquet as pq

    path, state = str(tmp_path / "d.parquet"), f"sqlite:///{tmp_path / 'state.db'}"
    pq.write_table(pa.table({"v": [1, 2]}), path)
    rule: dict[str, Any] = {"name": "r", "type": "completeness", "column": "nope"}
    first = Validator(rules_by_table={"t": [rule]}, state=state).validate_table(path, "t")
    assert (first.result("r").outcome, first.result("r").severity) == ("error", "error")
    softened = [{**rule, "severity": "warn"}]
    again = Validator(rules_by_table={"t": softened}, state=state).validate_table(path, "t")
    result = again.result("r")
    assert (result.outcome, result.cached, result.severity) == ("error", True, "warn")
