"""Rule declarations: parsing, one-line errors naming table and rule, hashes, config keys."""

from __future__ import annotations

from typing import Any

import pytest

from onceflow.config import config_from_dict
from onceflow.errors import ConfigError
from onceflow.rules import Completeness, Freshness, Uniqueness, parse_duration, rule_list
from onceflow.type_names import same_type

BASE: dict[str, Any] = {"sources": {"shop": {"url": "sqlite:///x.db"}}}


def _config(rules: list[dict[str, Any]], **table: Any) -> Any:
    return config_from_dict(
        {**BASE, "tables": [{"source": "shop", "table": "orders", "rules": rules, **table}]}
    )


def test_rules_of_the_config_are_typed_models_and_scope_follows_the_strategy() -> None:
    config = _config(
        [
            {"name": "id", "type": "completeness", "column": "id"},
            {"name": "u", "type": "uniqueness", "column": "id"},
            {"name": "fresh", "type": "freshness", "column": "ts", "max_age": "2d"},
        ]
    )
    table = config.tables[0]
    assert [type(r) for r in table.rules] == [Completeness, Uniqueness, Freshness]
    assert table.rules[1].columns == ["id"]  # type: ignore[union-attr]
    assert table.rules[2].max_age_seconds == 2 * 86400  # type: ignore[union-attr]
    assert table.validation_scope == "run"  # append: this run's rows
    merged = _config([], load={"strategy": "merge", "primary_key": ["id"]}).tables[0]
    assert merged.validation_scope == "table"
    assert _config([], scope="table").tables[0].validation_scope == "table"
    assert config.validation.max_retries == 3 and config.validation.samples == 20


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            {"name": "x", "type": "nope", "column": "a"},
            r"table shop\.orders, rule 'x': unknown rule type 'nope' \(types: allowed_values, ",
        ),
        (
            {"name": "x", "type": "regex", "column": "a", "pattern": "^(a"},
            r"table shop\.orders, rule 'x': pattern: bad regex '\^\(a'",
        ),
        (
            {"name": "x", "type": "completeness", "column": "a", "mostly": 1.5},
            r"rule 'x': threshold out of range: mostly must be between 0 and 1 .*got 1\.5",
        ),
        (
            {"name": "x", "type": "completeness", "column": "a", "max_failing": -1},
            r"rule 'x': threshold out of range: max_failing must be 0 or more, got -1",
        ),
        ({"name": "x", "type": "range", "column": "a"}, r"rule 'x': a range rule needs min or max"),
        ({"name": "x", "type": "completeness"}, r"rule 'x': column: required field is missing"),
        (
            {"name": "x", "type": "completeness", "column": "a", "colour": 1},
            r"colour: unknown field",
        ),
        (
            {"type": "completeness", "column": "a"},
            r"a rule without a name: every rule needs a `name:`",
        ),
        (
            {
                "name": "x",
                "type": "statistic",
                "statistic": "mean",
                "column": "a",
                "min": 0,
                "mostly": 0.5,
            },
            r"rule 'x': a statistic rule checks one value, not rows",
        ),
        (
            {"name": "x", "type": "sql_query", "query": "SELECT 1"},
            r"rule 'x': query: .*names the table as \{table\}",
        ),
        (
            {"name": "x", "type": "freshness", "column": "t", "max_age": "soon"},
            r"rule 'x': max_age: .*invalid duration 'soon': use e.g. 90s, .*seconds\)",
        ),
        # bounds no value could meet, or that compare with nothing: a rule mistake,
        # never to be reported as bad data
        (
            {"name": "x", "type": "range", "column": "a", "min": 5, "max": 1},
            r"rule 'x': min \(5\) is above max \(1\): no value could pass; swap them",
        ),
        (
            {"name": "x", "type": "range", "column": "d", "min": "2025-02-01", "max": "2025-01-01"},
            r"rule 'x': min \(2025-02-01\) is above max",
        ),
        (
            {"name": "x", "type": "range", "column": "a", "min": 1, "max": 1, "inclusive": False},
            r"rule 'x': min and max are both 1 with inclusive: false: no value could pass",
        ),
        ({"name": "x", "type": "length", "column": "s", "min": 9, "max": 2}, "above max"),
        ({"name": "x", "type": "row_count", "min": 9, "max": 2}, "above max"),
        (
            {
                "name": "x",
                "type": "statistic",
                "statistic": "mean",
                "column": "a",
                "min": 3,
                "max": 2,
            },
            "above max",
        ),
        (
            {"name": "x", "type": "range", "column": "a", "min": float("nan")},
            r"rule 'x': min is NaN, which no value can be compared with; give a number",
        ),
        (
            {
                "name": "x",
                "type": "statistic",
                "statistic": "sum",
                "column": "a",
                "max": float("nan"),
            },
            r"rule 'x': max is NaN",
        ),
        (
            {"name": "x", "type": "completeness", "column": "a", "max_failing": True},
            r"rule 'x': max_failing: a count of failing rows \(a whole number\), got true",
        ),
        (
            {"name": "x", "type": "completeness", "column": "a", "max_failing": 2.5},
            r"max_failing: a count of failing rows \(a whole number\), got 2.5",
        ),
        (
            {"name": "x", "type": "completeness", "column": "a", "mostly": True},
            r"rule 'x': mostly: a fraction of passing rows between 0 and 1, got true",
        ),
        (
            {"name": "x", "type": "schema", "columns": {"s": "no_such_type"}},
            r"rule 'x': columns: column 's': unknown type 'no_such_type' \(use an engine type",
        ),
        (
            {"name": "x", "type": "schema", "columns": {"s": "list<foo>"}},
            r"rule 'x': columns: column 's': unknown type 'list<foo>'",
        ),
        (
            {"name": "x", "type": "schema", "columns": {"s": "decimal(40,2)"}},
            r"unknown type 'decimal\(40,2\)'",
        ),
        (
            {"name": "x", "type": "schema", "columns": {"s": None}, "filter": "s > 1"},
            r"rule 'x': a schema rule checks the table's columns, not rows: filter does not apply",
        ),
        (
            {"name": "x", "type": "range", "column": "a", "max": "NaN"},
            r"rule 'x': max 'NaN' is neither a number nor a date or timestamp literal",
        ),
        (
            {"name": "x", "type": "range", "column": "a", "min": True},
            r"rule 'x': min: a bound is a number or a date, not true",
        ),
        (
            {"name": "x", "type": "allowed_values", "column": "s", "values": [None]},
            r"rule 'x': values: give at least one value that is not null",
        ),
    ],
)
def test_a_bad_rule_is_one_line_naming_table_and_rule(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        _config([rule])
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("config: tables[0]: table shop.orders")


def test_duplicate_rule_names_are_refused() -> None:
    rules = [{"name": "x", "type": "completeness", "column": c} for c in ("a", "b")]
    with pytest.raises(ConfigError, match=r"table shop\.orders, rule 'x': duplicate rule name"):
        _config(rules)


def test_the_seeds_rule_type_names_the_type_too() -> None:
    seed = {"name": "id_check", "rule_type": "completeness", "column": "customer_id"}
    plain = {"name": "id_check", "type": "completeness", "column": "customer_id"}
    (rule,) = rule_list([seed], "customers")
    assert isinstance(rule, Completeness) and rule.name == "id_check"
    assert rule.definition_hash() == rule_list([plain], "customers")[0].definition_hash()
    with pytest.raises(ConfigError, match=r"rule 'x': give `type:` or `rule_type:`, not both"):
        _config([{"name": "x", "type": "completeness", "rule_type": "range", "column": "a"}])


def test_the_definition_hash_follows_what_decides_the_result() -> None:
    base = {"name": "r", "type": "range", "column": "a", "min": 0}
    (one,) = rule_list([base], "t")
    (same,) = rule_list([{**base, "description": "documentation only"}], "t")
    (other,) = rule_list([{**base, "min": 1}], "t")
    assert one.definition_hash("duckdb", 20) == same.definition_hash("duckdb", 20)
    assert one.definition_hash("duckdb", 20) != other.definition_hash("duckdb", 20)
    assert one.definition_hash("duckdb", 20) != one.definition_hash("duckdb", 5)


def test_a_duration_is_hours_minutes_days_weeks_or_bare_seconds() -> None:
    assert [parse_duration(v) for v in ("48h", "30m", "2d", "90", 5, "1w")] == [
        172800.0,
        1800.0,
        172800.0,
        90.0,
        5.0,
        604800.0,
    ]


def test_every_duration_field_reads_one_grammar_but_for_the_unit_of_a_bare_number() -> None:
    """`max_age` took `48 h` but not `1h30m`; `settle` and `max_runtime` the reverse."""
    from onceflow.config import parse_duration as config_duration

    for text, seconds in (("1h30m", 5400), ("48 h", 172800), ("1d 12h", 129600), ("2 min", 120)):
        assert parse_duration(text) == config_duration(text) == seconds
    assert parse_duration("90") == 90 and config_duration("90") == 5400  # seconds, minutes
    for bad in ("30m1h", "1h1h", "1 hour", "1h 30", "-5m", "0", ""):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)
        with pytest.raises(ValueError, match="duration"):
            config_duration(bad)


def test_a_null_among_allowed_values_changes_nothing() -> None:
    # NULLs are not judged by allowed_values (a completeness rule forbids them), so
    # `[new, null]` is `[new]`, with the same results and the same cache key
    with_null = _config(
        [{"name": "x", "type": "allowed_values", "column": "s", "values": ["new", None]}]
    )
    without = _config([{"name": "x", "type": "allowed_values", "column": "s", "values": ["new"]}])
    assert with_null.tables[0].rules == without.tables[0].rules


def test_schema_types_in_engine_and_arrow_spellings_match_the_same_columns() -> None:
    assert same_type("numeric(12,2)", "DECIMAL(12,2)")
    assert same_type("decimal128(12, 2)", "DECIMAL(12,2)")
    assert not same_type("decimal(12,2)", "DECIMAL(12,3)")
    assert same_type("decimal", "DECIMAL(38,10)")
    assert same_type("date32", "DATE") and same_type("large_string", "VARCHAR")
    assert same_type("varchar(20)", "VARCHAR")
    # bare `timestamp`: any unit (Arrow data is TIMESTAMP_NS, the same data in Delta
    # TIMESTAMP); a unit asks for that unit
    assert same_type("timestamp", "TIMESTAMP_NS") and same_type("timestamp", "TIMESTAMP")
    assert same_type("timestamp[us]", "TIMESTAMP") and not same_type("timestamp[ns]", "TIMESTAMP")
    assert same_type("timestamp[us, tz=UTC]", "TIMESTAMP WITH TIME ZONE")
    # a zoned timestamp is one engine type, an instant: neither zone nor unit is compared
    assert same_type("timestamp[ns, tz=America/New_York]", "TIMESTAMP WITH TIME ZONE")
    assert same_type("timestamp_ntz", "TIMESTAMP") and same_type("timestamp_ntz", "TIMESTAMP_NS")
    assert not same_type("timestamp_ntz", "TIMESTAMP WITH TIME ZONE")
    assert not same_type("timestamptz", "TIMESTAMP") and not same_type(
        "timestamp", "TIMESTAMP WITH TIME ZONE"
    )
    assert same_type("int8", "TINYINT") and not same_type("bigint", "INTEGER")  # Arrow's int8
    assert same_type("INTEGER[]", "INTEGER[]") and same_type(
        "struct(a integer)", "STRUCT(a INTEGER)"
    )
    # nested types in Arrow's spelling too, part by part (a family inside a list as outside)
    assert same_type("list<int64>", "BIGINT[]") and same_type("large_list<item: int64>", "BIGINT[]")
    assert same_type("struct<a: int64, b: string>", "STRUCT(a BIGINT, b VARCHAR)")
    assert same_type("map<string, int64>", "MAP(VARCHAR, BIGINT)")
    assert same_type("list<timestamp>", "TIMESTAMP_NS[]") and not same_type(
        "list<int32>", "BIGINT[]"
    )


def test_a_bound_with_an_exponent_yaml_1_1_reads_as_text_is_that_number() -> None:
    """PyYAML (YAML 1.1) reads `1e6` (no dot) and `2.5e1` (no sign in the exponent) as
    text, so `max: 1e6` was refused asking for "a number without quotes": it is the
    number, as YAML 1.2 and JSON read it. Quoted digits without an exponent still fail."""
    from onceflow.config import parse_yaml

    text = """
sources: {shop: {url: "sqlite:///x.db"}}
tables:
  - source: shop
    table: orders
    rules:
      - {name: r, type: range, column: amount, min: -1E-3, max: 1e6}
      - {name: s, type: statistic, statistic: mean, column: amount, max: 2.5e1}
      - {name: n, type: row_count, min: 1e0, max: 1e6}
"""
    range_, statistic, count = config_from_dict(parse_yaml(text, "onceflow.yml")).tables[0].rules
    assert (range_.min, range_.max) == (-0.001, 1_000_000)
    assert statistic.max == 25
    assert (count.min, count.max) == (1, 1_000_000) and isinstance(count.max, int)
    with pytest.raises(ConfigError, match="write a number without quotes"):
        _config([{"name": "r", "type": "range", "column": "amount", "max": "5"}])
    # 1e400 is no double: taken as inf, a bound every value met; it is refused
    with pytest.raises(ConfigError, match=r"max '1e400' is neither a number"):
        _config([{"name": "r", "type": "range", "column": "amount", "max": "1e400"}])
    # a count written with an exponent, as row_count takes it
    counted = _config(
        [{"name": "r", "type": "range", "column": "amount", "max": 1, "max_failing": "1e3"}]
    )
    assert counted.tables[0].rules[0].max_failing == 1000
