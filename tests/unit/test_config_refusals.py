"""Values `check` accepted and a later step failed on, or read as something else: each is
refused when the config is read, one line naming the field and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from onceflow.config import config_from_dict
from onceflow.errors import ConfigError

SOURCES = {"shop": {"url": "postgresql://app@localhost/shop"}}


def _refusal(data: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as refused:
        config_from_dict({"sources": SOURCES, **data}, origin="onceflow.yml")
    return refused.value


def _table(**table: Any) -> dict[str, Any]:
    return {"tables": [{"source": "shop", "table": "t", **table}]}


SCD2 = {"strategy": "scd2", "primary_key": ["id"]}


@pytest.mark.parametrize(
    ("load", "field", "message"),
    [
        (
            {**SCD2, "effective_from_column": ""},
            "effective_from_column",
            "'' names no column: give the column's name, or leave `effective_from_column` "
            "out for its default '_effective_from'",
        ),
        (
            {"strategy": "merge", "primary_key": [""]},
            "primary_key",
            "'' names no column: give the column's name",
        ),
        (
            {"strategy": "merge", "primary_key": ["id", " "]},
            "primary_key",
            "' ' names no column: give the column's name",
        ),
        (
            {**SCD2, "tracking_columns": [""]},
            "tracking_columns",
            "'' names no column: give the column's name",
        ),
    ],
)
def test_an_empty_column_name_in_a_load_option_is_refused(
    load: dict[str, Any], field: str, message: str
) -> None:
    """`primary_key: ['']` passed `check` and failed every load (`primary key column(s)
    '' missing`); `effective_from_column: ''` loaded a column without a name."""
    refused = _refusal(_table(load=load))
    assert refused.field == f"tables[0].load.{field}"
    assert str(refused) == f"onceflow.yml: tables[0].load.{field}: {message}"


@pytest.mark.parametrize(
    ("load", "field", "partner"),
    [
        (
            {"is_current_column": "_effective_to"},
            "is_current_column",
            "`effective_to_column` (its default)",
        ),
        (
            {"effective_to_column": "_effective_from"},
            "effective_to_column",
            "`effective_from_column` (its default)",
        ),
        (
            {"effective_from_column": "_is_deleted"},
            "effective_from_column",
            "`is_deleted_column` (its default)",
        ),
        (
            {"effective_to_column": "x", "is_deleted_column": "x"},
            "is_deleted_column",
            "`effective_to_column`",
        ),
    ],
)
def test_two_scd2_columns_of_one_name_are_refused_naming_the_one_written(
    load: dict[str, Any], field: str, partner: str
) -> None:
    """`is_current_column: _effective_to` passed `check`, then every load failed."""
    refused = _refusal(_table(load={**SCD2, **load}))
    assert refused.field == f"tables[0].load.{field}"
    assert f"load.{field}: '{load[field]}' is also {partner}: the four SCD2 columns" in str(refused)


def test_an_scd2_column_named_as_a_key_or_tracked_column_is_refused() -> None:
    refused = _refusal(_table(load={**SCD2, "primary_key": ["_is_current"]}))
    assert refused.field == "tables[0].load.primary_key"
    assert "'_is_current' is also `is_current_column` (its default)" in str(refused)
    tracked = {**SCD2, "tracking_columns": ["a", "vf"], "effective_from_column": "vf"}
    refused = _refusal(_table(load=tracked))
    assert refused.field == "tables[0].load.effective_from_column"
    assert "'vf' is also in `tracking_columns`" in str(refused)


def test_distinct_scd2_columns_are_accepted() -> None:
    load = {**SCD2, "is_current_column": "current", "effective_to_column": "valid_to"}
    config = config_from_dict({"sources": SOURCES, **_table(load=load)})
    assert config.tables[0].load.is_current_column == "current"


def test_an_empty_target_is_refused() -> None:
    """It was taken for no target (`<source>/<table>`) without a word."""
    refused = _refusal(_table(load={"target": ""}))
    assert refused.field == "tables[0].load.target"
    assert "is empty: leave `target` out" in str(refused)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"workers": True}, "workers"),
        ({"lock_ttl_minutes": False}, "lock_ttl_minutes"),
        ({"retry": {"max_attempts": True}}, "retry.max_attempts"),
        ({"validation": {"samples": True}}, "validation.samples"),
        (
            {"tables": [{"source": "shop", "table": "t", "extract": {"batch_rows": True}}]},
            "tables[0].extract.batch_rows",
        ),
        (
            {"tables": [{"source": "shop", "table": "t", "load": {"max_file_retries": True}}]},
            "tables[0].load.max_file_retries",
        ),
    ],
)
def test_a_boolean_for_a_number_is_refused(data: dict[str, Any], field: str) -> None:
    """`workers: true` ran one worker (pydantic reads true as 1), while `priority: true`
    was refused."""
    refused = _refusal({**_table(), **data})
    assert refused.field == field
    assert f"{field}: expected a number, got " in str(refused)
    assert "(a boolean); write the number" in str(refused)


def test_a_number_written_as_text_is_still_a_number() -> None:
    """`workers: ${WORKERS}` is text once interpolated."""
    assert config_from_dict({"sources": SOURCES, **_table(), "workers": "3"}).workers == 3


def test_a_schedule_with_an_empty_tables_list_is_refused() -> None:
    """`tables: []` ran every table, as leaving it out does; `--tables ""` is refused."""
    schedules = [{"name": "nightly", "cron": "0 1 * * *", "tables": []}]
    refused = _refusal({**_table(), "schedules": schedules})
    assert refused.field == "schedules[nightly].tables"
    assert str(refused) == (
        "onceflow.yml: schedules[nightly].tables: empty; list at least one table, or leave "
        "`tables` out for every table"
    )


@pytest.mark.parametrize(
    ("rule", "where"),
    [
        ({"type": "completeness", "column": ""}, "column"),
        ({"type": "range", "column": " ", "min": 0}, "column"),
        ({"type": "uniqueness", "columns": ["id", ""]}, "columns"),
        ({"type": "uniqueness", "column": ""}, "columns"),
        ({"type": "schema", "columns": {"": "int64"}}, "columns"),
        (
            {"type": "referential", "column": "a", "reference": {"table": "x", "column": ""}},
            "reference.column",
        ),
    ],
)
def test_a_rule_naming_an_empty_column_is_refused(rule: dict[str, Any], where: str) -> None:
    """It passed `check`, and the rule ended `error` when it ran."""
    refused = _refusal(_table(rules=[{"name": "r", **rule}]))
    assert f"table shop.t, rule 'r': {where}: " in str(refused)
    assert "names no column: give the column's name" in str(refused)


def test_the_reader_choices_are_the_documented_ones() -> None:
    """`pymysql` was offered by the message and read as `auto`: no reader of its own."""
    sources = {"crm": {"url": "mysql://etl@crm/crm", "reader": "pymysql"}}
    with pytest.raises(ConfigError) as refused:
        config_from_dict({"sources": sources, "tables": [{"source": "crm", "table": "t"}]})
    assert refused.value.field == "sources.crm.reader"
    assert "expected 'auto', 'adbc', 'connectorx' or 'sqlalchemy'" in str(refused.value)
