"""What `onceflow check` does is `onceflow.check_config` in Python, and `Pipeline(config)`
takes what the docs say it takes: a Config, the path of onceflow.yml, or its mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import onceflow
from onceflow import ConfigError, Pipeline, check_config
from onceflow.cli import main

WEEKLY = {
    "pipeline": "shop",
    "sources": {"shop": {"url": "sqlite:///shop.db"}},
    "tables": [
        {"source": "shop", "table": "orders", "extract": {"mode": "incremental", "cursor": "ts"}}
    ],
    "schedules": [{"name": "weekly", "cron": "0 2 * * 0"}],
}


def _file(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "onceflow.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_check_config_returns_the_warnings_check_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _file(tmp_path, WEEKLY)
    (warning,) = check_config(path)
    assert warning.startswith("schedule weekly: each tick processes one day")
    assert check_config(onceflow.load_config(path)) == [warning] == check_config(WEEKLY)
    assert main(["check", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("config ok: pipeline shop, 1 sources, 1 tables")
    assert err == f"warning: {warning}\n"
    daily = {**WEEKLY, "schedules": [{"name": "daily", "cron": "0 2 * * *"}]}
    assert check_config(daily) == []


@pytest.mark.parametrize(
    "rules",
    [
        [],
        [{"name": "n", "type": "completeness", "column": "email", "severity": "warn"}],
        [{"name": "u", "type": "uniqueness", "columns": ["id"]}],
        [{"name": "q", "type": "sql_query", "query": "SELECT * FROM {table} WHERE id < 0"}],
        [{"name": "p", "type": "completeness", "column": "email", "stage": "pre_load"}],
    ],
    ids=["no-rules", "warn-only", "uniqueness", "sql-query", "pre-load"],
)
def test_check_warns_of_a_quarantine_no_rule_could_put_a_row_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rules: list[dict[str, Any]]
) -> None:
    """Only row-level error-severity post-load rules quarantine rows: `quarantine: true`
    without one is a no-op, warned of (not refused: the config is valid)."""
    table = {**WEEKLY["tables"][0], "quarantine": True, "rules": rules}
    data = {**WEEKLY, "tables": [table], "schedules": []}
    (warning,) = check_config(data)
    assert warning.startswith("table shop.orders: quarantine: true, but none of its rules")
    assert main(["check", "--config", str(_file(tmp_path, data))]) == 0
    assert capsys.readouterr().err == f"warning: {warning}\n"
    row_level = {"name": "r", "type": "range", "column": "amount", "min": 0}
    assert check_config({**data, "tables": [{**table, "rules": [*rules, row_level]}]}) == []


def test_check_warns_of_uniqueness_on_an_scd2_tables_key_without_a_filter() -> None:
    """docs/configuration.md's own example put `id_unique` on an scd2 table's primary key:
    the closed version of a changed key repeats it, so the rule failed from the first
    change on. `check` warns (the rule may mean the history); a filter, a key with the
    effective-from column, or `scope: run` (one version per key) says nothing."""
    key = {"strategy": "scd2", "primary_key": ["id", "region"], "is_current_column": "cur"}

    def config(rule: dict[str, Any], **table: Any) -> dict[str, Any]:
        scd2 = {"source": "shop", "table": "customers", "load": key, **table}
        return {**WEEKLY, "schedules": [], "tables": [{**scd2, "rules": [rule]}]}

    unique = {"name": "id_unique", "type": "uniqueness", "columns": ["id"]}
    (warning,) = check_config(config(unique))
    assert warning.startswith(
        "table shop.customers: rule id_unique (uniqueness on id) judges every version the "
        "scd2 table holds, closed ones included: it fails as soon as a key changes"
    )
    assert "add `filter: cur` to judge the current versions" in warning
    assert check_config(config({**unique, "columns": ["region", "id"]})) == [
        warning.replace("on id)", "on region, id)")
    ]
    assert check_config(config({**unique, "filter": "cur"})) == []
    assert check_config(config({**unique, "columns": ["id", "_effective_from"]})) == []
    assert check_config(config({**unique, "severity": "warn"})) == [warning]
    assert check_config(config(unique, scope="run")) == []
    assert check_config(config({**unique, "stage": "pre_load"})) == []
    merge = {**key, "strategy": "merge"}
    merge.pop("is_current_column")
    assert check_config(config(unique, load=merge)) == []


def test_check_config_refuses_what_check_refuses_though_load_config_reads_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A source whose driver is not installed, or whose `${VAR}` is not set, is read by
    `load_config` (a host that only loads needs neither), refused by `check` and by
    `check_config` alike."""
    no_driver = {"url": "mysql://etl@127.0.0.1:1/crm", "reader": "sqlalchemy"}
    path = _file(tmp_path, {**WEEKLY, "sources": {"shop": no_driver}})
    onceflow.load_config(path)
    with pytest.raises(ConfigError, match=r"onceflow\.yml: sources\.shop\.url: .*MySQLdb") as e:
        check_config(path)
    assert e.value.field == "sources.shop.url"
    assert main(["check", "--config", str(path)]) == 2
    assert "sources.shop.url" in capsys.readouterr().err
    unset = {"url": "postgresql://etl:${ONCEFLOW_TEST_UNSET_PW}@db/shop"}
    with pytest.raises(ConfigError, match="ONCEFLOW_TEST_UNSET_PW"):
        check_config({**WEEKLY, "sources": {"shop": unset}})
    with pytest.raises(ConfigError, match="the config lists no tables"):
        check_config({"sources": WEEKLY["sources"]})


def test_a_pipeline_takes_its_config_file_path_or_mapping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`Pipeline("onceflow.yml")` failed with AttributeError ('str' object has no
    attribute 'pipeline'); a mapping was kept as it was and failed later."""
    path = _file(tmp_path, WEEKLY)
    for given in (str(path), path):
        pipeline = Pipeline(given)
        assert pipeline.config.pipeline == "shop"
        assert pipeline.config.state_url == f"sqlite:///{tmp_path}/.onceflow/state.db"
    monkeypatch.chdir(tmp_path)
    assert Pipeline().config.pipeline == "shop"  # ./onceflow.yml, as Pipeline.from_file()
    mapped = Pipeline({**WEEKLY, "pipeline": "mapped"})  # paths from the current folder
    assert mapped.config.pipeline == "mapped" and mapped.config.tables[0].key == "shop.orders"
    assert Pipeline(mapped.config).config is mapped.config
    with pytest.raises(ConfigError, match=r"expected a Config, the path of onceflow\.yml or its"):
        Pipeline(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not found"):
        Pipeline(tmp_path / "missing.yml")
