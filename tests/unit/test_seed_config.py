"""The seeds' spellings of config keys (seeds 002 and 003) read as onceflow's own."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from onceflow.config import Config, config_from_dict
from onceflow.errors import ConfigError

SOURCES = {"shop": {"url": "sqlite:///shop.db"}}


def _table(**keys: Any) -> dict[str, Any]:
    return {"source": "shop", **keys}


def _config(tables: list[dict[str, Any]] | None = None, **top: Any) -> dict[str, Any]:
    tables = tables if tables is not None else [_table(table="customers")]
    return {"sources": SOURCES, "tables": tables, **top}


def _dump(data: dict[str, Any]) -> dict[str, Any]:
    return config_from_dict(data, base_dir="/cfg").model_dump()


def _refused(data: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data, base_dir="/cfg", origin="onceflow.yml")
    return caught.value


SCD2 = {"strategy": "scd2", "primary_key": ["customer_id"]}

# (seed spelling, onceflow spelling), each a whole config
SYNONYMS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "table_name": (
        _config([_table(table_name="customers")]),
        _config([_table(table="customers")]),
    ),
    "loading_strategy": (
        _config([_table(table="t", loading_strategy="overwrite")]),
        _config([_table(table="t", load={"strategy": "overwrite"})]),
    ),
    "primary_keys": (
        _config([_table(table="t", loading_strategy="merge", primary_keys=["id", "day"])]),
        _config([_table(table="t", load={"strategy": "merge", "primary_key": ["id", "day"]})]),
    ),
    "tracking_columns": (
        _config([_table(table="t", load=SCD2, tracking_columns=["name", "email"])]),
        _config([_table(table="t", load={**SCD2, "tracking_columns": ["name", "email"]})]),
    ),
    "scd2 column names": (
        _config(
            [
                _table(
                    table="t",
                    load=SCD2,
                    scd2_effective_date_column="effective_date",
                    scd2_end_date_column="end_date",
                    scd2_current_flag_column="is_current",
                )
            ]
        ),
        _config(
            [
                _table(
                    table="t",
                    load={
                        **SCD2,
                        "effective_from_column": "effective_date",
                        "effective_to_column": "end_date",
                        "is_current_column": "is_current",
                    },
                )
            ]
        ),
    ),
    "retry_attempts": (
        _config(retry_attempts=5),
        _config([_table(table="customers", load={"max_file_retries": 5})]),
    ),
    "timeout_minutes": (_config(timeout_minutes=60), _config(lock_ttl_minutes=60)),
    "checkpoint_path": (
        _config(checkpoint_path="/dbfs/checkpoints/data_loader"),
        _config(state="sqlite:////dbfs/checkpoints/data_loader/state.db"),
    ),
    "version": (_config(version="1.0"), _config()),
    "engine": (
        _config(engine={"type": "duckdb", "options": {"max_retries": 5, "retry_delay": 2.0}}),
        _config(validation={"engine": "duckdb", "max_retries": 5, "retry_delay": 2.0}),
    ),
    "pipeline.name": (_config(pipeline={"name": "nightly"}), _config(pipeline="nightly")),
    "pipeline.state_file": (
        _config(pipeline={"state_file": "pipeline_state.json"}),
        _config(state="sqlite:///pipeline_state.db"),
    ),
    "rule_type": (
        _config(
            [_table(table="t", rules=[{"name": "id", "rule_type": "completeness", "column": "id"}])]
        ),
        _config(
            [_table(table="t", rules=[{"name": "id", "type": "completeness", "column": "id"}])]
        ),
    ),
}


@pytest.mark.parametrize("name", SYNONYMS)
def test_each_seed_spelling_gives_the_same_config_as_onceflows(name: str) -> None:
    seed, own = SYNONYMS[name]
    assert _dump(seed) == _dump(own)


def test_the_seeds_own_examples_read_as_one_onceflow_config() -> None:
    seed = {
        "version": "1.0",
        "pipeline": {"state_file": "pipeline_state.json"},
        "engine": {"type": "duckdb", "options": {"max_retries": 3, "retry_delay": 1.0}},
        "retry_attempts": 3,
        "timeout_minutes": 60,
        "sources": SOURCES,
        "tables": [
            _table(
                table_name="customers",
                loading_strategy="scd2",
                primary_keys=["customer_id"],
                tracking_columns=["name", "email"],
                scd2_effective_date_column="effective_date",
                scd2_end_date_column="end_date",
                scd2_current_flag_column="is_current",
                rules=[{"name": "id_check", "rule_type": "completeness", "column": "customer_id"}],
            ),
            _table(table_name="transactions", loading_strategy="append"),
        ],
    }
    own = {
        "state": "sqlite:///pipeline_state.db",
        "validation": {"engine": "duckdb", "max_retries": 3, "retry_delay": 1.0},
        "lock_ttl_minutes": 60,
        "sources": SOURCES,
        "tables": [
            _table(
                table="customers",
                load={
                    "strategy": "scd2",
                    "primary_key": ["customer_id"],
                    "tracking_columns": ["name", "email"],
                    "effective_from_column": "effective_date",
                    "effective_to_column": "end_date",
                    "is_current_column": "is_current",
                    "max_file_retries": 3,
                },
                rules=[{"name": "id_check", "type": "completeness", "column": "customer_id"}],
            ),
            _table(table="transactions", load={"strategy": "append", "max_file_retries": 3}),
        ],
    }
    assert _dump(seed) == _dump(own)


def test_the_callers_mapping_is_left_as_written() -> None:
    seed, _ = SYNONYMS["scd2 column names"]
    before = copy.deepcopy(seed)
    config_from_dict(seed)
    assert seed == before


@pytest.mark.parametrize(
    "data",
    [
        _config([_table(table_name="t", table="t")]),
        _config(
            [
                _table(
                    table="t",
                    loading_strategy="merge",
                    primary_keys=["id"],
                    load={"strategy": "merge", "primary_key": ["id"]},
                )
            ]
        ),
        _config(timeout_minutes=60, lock_ttl_minutes=60.0),
        _config(engine={"type": "duckdb"}, validation={"engine": "duckdb"}),
        _config(pipeline={"state_file": "s.json"}, state="sqlite:///./s.db"),
        _config(checkpoint_path="/cp", state="sqlite:////cp/state.db"),
        _config(
            [
                _table(
                    table="t",
                    rules=[
                        {
                            "name": "a",
                            "type": "completeness",
                            "rule_type": "completeness",
                            "column": "x",
                        }
                    ],
                )
            ]
        ),
    ],
    ids=["table", "load", "lock_ttl", "engine", "state_file", "checkpoint", "rule_type"],
)
def test_both_spellings_with_equal_values_are_accepted(data: dict[str, Any]) -> None:
    assert isinstance(config_from_dict(data), Config)


@pytest.mark.parametrize(
    ("data", "seed", "own"),
    [
        (_config([_table(table_name="a", table="b")]), "tables[0].table_name", "tables[0].table"),
        (
            _config([_table(table="t", loading_strategy="append", load={"strategy": "overwrite"})]),
            "tables[0].loading_strategy",
            "tables[0].load.strategy",
        ),
        (
            _config([_table(table="t", load={**SCD2}, primary_keys=["other"])]),
            "tables[0].primary_keys",
            "tables[0].load.primary_key",
        ),
        (_config(timeout_minutes=60, lock_ttl_minutes=2), "timeout_minutes", "lock_ttl_minutes"),
        (
            _config(engine={"options": {"max_retries": 5}}, validation={"max_retries": 3}),
            "engine.options.max_retries",
            "validation.max_retries",
        ),
        (
            _config(pipeline={"state_file": "a.json"}, state="sqlite:///b.db"),
            "pipeline.state_file",
            "state",
        ),
        (
            _config(checkpoint_path="/cp", pipeline={"state_file": "s.json"}),
            "checkpoint_path",
            "pipeline.state_file",
        ),
    ],
)
def test_both_spellings_with_different_values_are_refused_naming_both(
    data: dict[str, Any], seed: str, own: str
) -> None:
    error = _refused(data)
    assert error.field == seed
    assert str(error).startswith(f"onceflow.yml: {seed}: the same setting as `{own}`")
    assert "keep one of them" in str(error)


def test_a_rule_with_two_different_types_is_refused_naming_both() -> None:
    rule = {"name": "a", "type": "regex", "rule_type": "completeness", "column": "x"}
    error = _refused(_config([_table(table="t", rules=[rule])]))
    assert "rule 'a': give `type:` or `rule_type:`, not both" in str(error)


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [
        (
            _config([_table(table="t", loading_strategy="scd3")]),
            "tables[0].loading_strategy",
            "invalid value 'scd3'",
        ),
        (
            _config([_table(table="t", loading_strategy="scd2")]),
            "tables[0].loading_strategy",
            "add `primary_keys: ",
        ),
        (
            _config([_table(table="t", loading_strategy="merge", primary_keys="id")]),
            "tables[0].primary_keys",
            "expected a list, e.g. [a, b], got 'id': write [id]",
        ),
        (
            _config([_table(table="t", load=SCD2, scd2_end_date_column=7)]),
            "tables[0].scd2_end_date_column",
            "expected text, got 7",
        ),
        (_config([_table(table_name=["t"])]), "tables[0].table_name", "expected text"),
        (_config(timeout_minutes=0), "timeout_minutes", "greater than 0"),
        (_config(retry_attempts=-1), "retry_attempts", "0 or more, got -1"),
        (_config(engine={"type": "spark"}), "engine.type", "invalid value 'spark'"),
        (
            _config(engine={"options": {"retry_delay": -1}}),
            "engine.options.retry_delay",
            "greater than or equal to 0",
        ),
        (
            _config(engine={"options": {"max_retries": 1, "sleep": 2}}),
            "engine.options.sleep",
            "unknown field",
        ),
        (_config(engine={"typ": "duckdb"}), "engine.typ", "takes type and options"),
        (_config(engine="duckdb"), "engine", "expected `engine: {type: duckdb"),
        (_config(pipeline={"name": "my pipeline"}), "pipeline.name", "use letters"),
        (
            _config(pipeline={"state_file": "s.json", "stat": 1}),
            "pipeline.stat",
            "takes name and state_file",
        ),
        (
            _config(pipeline={"state_file": 3}),
            "pipeline.state_file",
            "expected a file or folder path",
        ),
        (
            _config(
                [_table(table="t", rules=[{"name": "a", "rule_type": "complete", "column": "x"}])]
            ),
            "tables[0].rules[0].rule_type",
            "unknown rule type 'complete'",
        ),
    ],
)
def test_a_bad_value_under_a_seed_spelling_is_named_as_written(
    data: dict[str, Any], field: str, problem: str
) -> None:
    error = _refused(data)
    assert error.field == field
    assert str(error).startswith(f"onceflow.yml: {field}: ")
    assert problem in str(error)
    assert "\n" not in str(error)


@pytest.mark.parametrize("version", ["1.0", 1.0, 1, "1"])
def test_version_one_is_accepted(version: object) -> None:
    assert _dump(_config(version=version)) == _dump(_config())


@pytest.mark.parametrize("version", ["2.0", 2, "1.1", True, None])
def test_another_version_is_refused_naming_the_field(version: object) -> None:
    error = _refused(_config(version=version))
    assert error.field == "version"
    assert 'write `version: "1.0"` or leave it out' in str(error)


@pytest.mark.parametrize(
    ("state_file", "url"),
    [
        ("pipeline_state.json", "sqlite:////cfg/pipeline_state.db"),
        ("/var/onceflow/state.JSON", "sqlite:////var/onceflow/state.db"),
        ("state/run.sqlite", "sqlite:////cfg/state/run.sqlite"),
        ("dbfs:/state/p.json", "sqlite:////dbfs/state/p.db"),
    ],
)
def test_a_json_state_file_becomes_a_sqlite_store_beside_it(state_file: str, url: str) -> None:
    config = config_from_dict(_config(pipeline={"state_file": state_file}), base_dir="/cfg")
    assert config.state_url == url
    assert config.pipeline == "daily_extract"


def test_checkpoint_path_holds_the_state_store() -> None:
    config = config_from_dict(_config(checkpoint_path="checkpoints/"), base_dir="/cfg")
    assert config.state_url == "sqlite:////cfg/checkpoints/state.db"


@pytest.mark.parametrize(
    "data",
    [
        _config(checkpoint_path="s3://bucket/checkpoints"),
        _config(pipeline={"state_file": "abfss://c@a.dfs.core.windows.net/state.json"}),
    ],
    ids=["checkpoint_path", "state_file"],
)
def test_object_storage_for_state_is_refused_with_what_to_use_instead(
    data: dict[str, Any],
) -> None:
    error = _refused(data)
    assert error.field in ("checkpoint_path", "pipeline.state_file")
    assert "write `state: postgresql://user@host/db` instead" in str(error)


def test_retry_attempts_is_every_tables_default_and_a_tables_own_setting_wins() -> None:
    tables = [_table(table="a"), _table(table="b", load={"max_file_retries": 9})]
    config = config_from_dict(_config(tables, retry_attempts=1))
    assert [t.load.max_file_retries for t in config.tables] == [1, 9]


def test_the_seed_validators_config_is_rules_by_table_and_a_state_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onceflow.validate import Validator
    from onceflow.validate.rules_file import is_rules_only, validation_config

    seed = {
        "version": "1.0",
        "pipeline": {"state_file": "pipeline_state.json"},
        "engine": {"type": "duckdb", "options": {"max_retries": 3, "retry_delay": 1.0}},
        "tables": [
            {
                "name": "customers",
                "rules": [{"name": "id_check", "rule_type": "completeness", "column": "id"}],
            }
        ],
    }
    config, rules = validation_config(seed, base_dir="/srv/v")
    assert config.tables == [] and config.state_url == "sqlite:////srv/v/pipeline_state.db"
    assert (config.validation.max_retries, config.validation.retry_delay) == (3, 1.0)
    assert list(rules) == ["customers"]
    monkeypatch.chdir(tmp_path)  # DataValidator(config_dict): paths from the working folder
    validator = Validator(seed)
    assert validator.store is not None and (tmp_path / "pipeline_state.db").is_file()
    assert [r.name for r in validator.rules["customers"]] == ["id_check"]
    # an onceflow table (a source to extract) is not the seed's format
    assert not is_rules_only({"sources": {}, "tables": [{"name": "x", "rules": []}]})
    assert not is_rules_only({"tables": [{"name": "x", "source": "s", "table": "t"}]})
    with pytest.raises(ConfigError, match=r"tables\[0\]\.loads: unknown field; a table named"):
        validation_config({"tables": [{"name": "x", "rules": [], "loads": 1}]}, base_dir="/")


@pytest.mark.parametrize(
    "errors", [["TimeoutError"], ["ConnectionError"]], ids=["equal", "different"]
)
def test_both_spellings_of_retry_on_are_one_setting_given_twice(errors: list[str]) -> None:
    retry = {"retry_on_errors": ["TimeoutError"], "retry_on": errors}
    schedule = {"name": "nightly", "cron": "0 2 * * *", "retry": retry}
    with pytest.raises(ConfigError) as refused:
        config_from_dict({"schedules": [schedule]}, origin="onceflow.yml")
    assert str(refused.value) == (
        "onceflow.yml: schedules[nightly].retry: retry_on_errors and retry_on are both "
        "given: they are two spellings of the same setting (retry_on_errors is the "
        "seed's); keep one of them"
    )
    assert refused.value.field == "schedules[nightly].retry" and refused.value.exit_code == 2
