"""The seed extractor's entry points over what onceflow has: a tables file, Oracle
connection options, --databricks, and the Pipeline's seed method names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from onceflow import Pipeline
from onceflow.cli import options
from onceflow.cli.run import _connection_url
from onceflow.config import config_from_dict, oracle_url
from onceflow.errors import ConfigError
from onceflow.extract import databricks
from onceflow.extract.api import run_context
from onceflow.extract.tables_file import (
    ENTRY_KEYS,
    TABLE_FILE_SUFFIXES,
    read_tables_file,
    table_selection,
)
from onceflow.redact import redact
from onceflow.seeds.tables import TABLE_KEYS, seed_table


def _config(tmp_path: Path, **extra: Any) -> Any:
    return config_from_dict(
        {
            "state": f"sqlite:///{tmp_path / 'state.db'}",
            "sources": {"oracle_db": {"url": "sqlite:///unused.db"}},
            "tables": [
                {"source": "oracle_db", "table": "employees"},
                {
                    "source": "oracle_db",
                    "table": "orders",
                    "extract": {"mode": "incremental", "cursor": "updated_at"},
                },
            ],
            **extra,
        },
        base_dir=str(tmp_path),
    )


def _write(tmp_path: Path, name: str, data: Any) -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return str(path)


# -- --tables FILE ---------------------------------------------------------------------------


def test_a_tables_file_lists_keys_and_seed_table_configs_in_order_each_once(tmp_path):
    path = _write(
        tmp_path,
        "tables.json",
        [
            {"source_name": "oracle_db", "table_name": "orders", "is_full_extract": False},
            "oracle_db.employees",
            {"source_name": "oracle_db", "table_name": "orders"},
        ],
    )
    chosen = read_tables_file(path)
    assert chosen == ["oracle_db.orders", "oracle_db.employees"]
    chosen.check(_config(tmp_path))  # what the entries say is what the config says


def test_a_yaml_tables_file_reads_like_json(tmp_path):
    path = _write(tmp_path, "tables.yml", "- source_name: oracle_db\n  table_name: employees\n")
    assert read_tables_file(path) == ["oracle_db.employees"]


def test_tables_values_mix_files_and_comma_separated_keys(tmp_path):
    path = _write(tmp_path, "t.yaml", "[oracle_db.orders]")
    chosen = table_selection([f"{path},oracle_db.employees", "oracle_db.orders"])
    assert chosen == ["oracle_db.orders", "oracle_db.employees"]
    assert table_selection(None) is None and table_selection([" , "]) is None


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ({"tables": []}, "tables.json: expected a list of tables"),
        ([], "tables.json: lists no tables"),
        (["oracle_db.orders", 7], "tables.json: entry 2: expected a table key or an object"),
        ([{"source_name": "oracle_db"}], "tables.json: entry 1: table_name: expected the name"),
        (
            [{"source_name": "oracle_db", "table_name": "orders", "partition_column": "id"}],
            "tables.json: entry 1 (oracle_db.orders): partition_column: not a key onceflow "
            "reads here",
        ),
        (
            [{"source_name": "oracle_db", "table_name": "orders", "is_full_extract": "yes"}],
            "entry 1 (oracle_db.orders): is_full_extract: expected true or false",
        ),
        ("[oracle_db.orders", "tables.json: not valid JSON"),
    ],
)
def test_a_bad_tables_file_is_one_line_naming_the_file_and_entry(tmp_path, content, says):
    path = _write(tmp_path, "tables.json", content)
    with pytest.raises(ConfigError) as refused:
        read_tables_file(path)
    message = str(refused.value)
    assert says in message and "\n" not in message
    assert refused.value.exit_code == 2


def test_a_missing_tables_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"tables file .*nope\.yaml not found"):
        table_selection([str(tmp_path / "nope.yaml")])


def test_an_entry_that_disagrees_with_the_config_is_refused_naming_both(tmp_path):
    config = _config(tmp_path)
    wrong_mode = read_tables_file(
        _write(
            tmp_path,
            "t.json",
            [{"source_name": "oracle_db", "table_name": "orders", "is_full_extract": True}],
        )
    )
    with pytest.raises(ConfigError, match=r"entry 1 \(oracle_db.orders\): is_full_extract: true, "):
        wrong_mode.check(config)
    with pytest.raises(ConfigError, match=r"extract\.mode: incremental"):
        wrong_mode.check(config)
    unknown = read_tables_file(_write(tmp_path, "u.json", ["oracle_db.nope"]))
    with pytest.raises(ConfigError, match=r"u.json: entry 1 \(oracle_db.nope\): table "):
        unknown.check(config)


def test_a_seed_entry_with_extract_tables_parameters_that_agree_with_the_config_is_read(
    tmp_path,
):
    # extract_table's parameters, as the seed classes take them for the same config
    entries = [
        {"source_name": "oracle_db", "table_name": "orders", "incremental_column": "updated_at"},
        {"source_name": "oracle_db", "table_name": "employees", "is_full_extract": True},
        {"source_name": "oracle_db", "table_name": "orders", "run_id": "daily_extract_20250123"},
        {"source_name": "oracle_db", "table_name": "orders", "extraction_date": "2025-01-23"},
    ]
    chosen = read_tables_file(_write(tmp_path, "tables.json", entries))
    assert list(chosen) == ["oracle_db.orders", "oracle_db.employees"]
    config = _config(tmp_path)
    chosen.check(config)
    run = run_context(config, "2025-01-23", "daily_extract_20250123")
    chosen.check(config, run.run_date, run.run_id)


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        (
            {"incremental_column": "created_at"},
            "entry 1 (oracle_db.orders): incremental_column: 'created_at', but the config "
            "has 'updated_at' for oracle_db.orders",
        ),
        (
            {"custom_query": "SELECT 1"},
            "custom_query: 'SELECT 1', but the config has None",
        ),
        (
            {"extraction_date": "2025-01-22"},
            "extraction_date: 2025-01-22, but this is the run of 2025-01-23; give --date "
            "2025-01-22",
        ),
        ({"run_id": "other_1"}, "run_id: other_1, but this is run x_20250123; give --run-id"),
    ],
)
def test_a_seed_entry_that_disagrees_with_the_config_or_run_is_refused_naming_it(
    tmp_path, entry, says
):
    path = _write(
        tmp_path, "t.json", [{"source_name": "oracle_db", "table_name": "orders", **entry}]
    )
    config = _config(tmp_path)
    with pytest.raises(ConfigError) as refused:
        run = run_context(config, "2025-01-23", "x_20250123")
        read_tables_file(path).check(config, run.run_date, run.run_id)
    assert says in str(refused.value)


def test_a_seed_entrys_schema_name_is_part_of_its_key_as_in_the_seed_classes(tmp_path):
    path = _write(
        tmp_path, "t.json", [{"source_name": "oracle_db", "schema_name": "HR", "table_name": "T"}]
    )
    assert list(read_tables_file(path)) == ["oracle_db.HR.T"]
    assert seed_table({"source_name": "oracle_db", "schema_name": "HR", "table_name": "T"}).key == (
        "oracle_db.HR.T"
    )


def test_the_tables_file_reads_every_key_the_seed_classes_read():
    assert set(ENTRY_KEYS) == set(TABLE_KEYS)


def test_the_cli_reads_a_file_for_the_same_suffixes_as_the_extract_step():
    assert options._TABLE_FILE_SUFFIXES == TABLE_FILE_SUFFIXES


# -- --host/--port/--user/--password/--service -----------------------------------------------


def test_oracle_connection_options_make_an_oracledb_url_whose_password_is_a_secret():
    url = oracle_url("db.example", None, "hr", "p@ss:w/rd 42", "XEPDB1")
    assert url == ("oracle+oracledb://hr:p%40ss%3Aw%2Frd%2042@db.example:1521/?service_name=XEPDB1")
    assert "p@ss:w/rd 42" not in redact("driver said: p@ss:w/rd 42 refused")
    assert (
        oracle_url("::1", 1522, "hr", None, "XE")
        == "oracle+oracledb://hr@[::1]:1522/?service_name=XE"
    )


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"url": "sqlite:///x.db", "host": "db"}, "give either --url or --host"),
        ({"url": "sqlite:///x.db", "port": 1521}, "--port needs --host"),
        ({"user": "hr", "service": "XE"}, "--user, --service need --host"),
        ({"host": "db", "service": "XE"}, "--host needs --user"),
        ({"host": "db", "user": "hr"}, "--host needs --service"),
    ],
)
def test_connection_options_are_refused_when_they_do_not_fit_together(given, says):
    args = {k: given.get(k) for k in ("url", "host", "port", "user", "password", "service")}
    with pytest.raises(ConfigError, match=says):
        _connection_url(**args)


def test_host_without_service_says_exactly_what_to_add_in_the_callers_spelling():
    # the seed's CLI example leaves --service out; its own tool required it too, and no
    # seed text makes XE a default: say what to add rather than guess a service
    with pytest.raises(ConfigError) as refused:
        _connection_url(None, "localhost", None, "hr", "secret", None)
    assert str(refused.value) == (
        "--host needs --service NAME: who connects and to which Oracle service (e.g. "
        "--service XE, the service of the seed's examples; onceflow does not guess it)"
    )
    assert refused.value.exit_code == 2
    seed = {"host": "oracle_host", "user": "oracle_user=", "service": 'oracle_service="NAME"'}
    with pytest.raises(
        ConfigError,
        match=r"^oracle_host needs oracle_user= and oracle_service="
        r'"NAME": .* \(e\.g\. oracle_service="XE", ',
    ):
        oracle_url("localhost", "1521", None, None, None, options=seed)


def test_url_alone_is_used_as_given_and_a_password_alone_is_ignored():
    assert _connection_url("sqlite:///x.db", None, None, None, "from-env", None) == (
        "sqlite:///x.db"
    )


# -- --databricks ------------------------------------------------------------------------------


@pytest.fixture
def mounted(monkeypatch):
    """Databricks' mounts present, as on a cluster."""
    monkeypatch.setattr(databricks, "_mounted", lambda root: root in ("/dbfs", "/Volumes"))


def test_databricks_refuses_a_local_lake_and_warehouse_naming_them(tmp_path, mounted):
    config = _config(tmp_path, lake="./lake", warehouse="./warehouse")
    with pytest.raises(ConfigError) as refused:
        Pipeline(config).require_databricks()
    message = str(refused.value)
    assert f"lake {tmp_path / 'lake'}" in message and f"warehouse {tmp_path}" in message
    assert "are not Databricks storage" in message and refused.value.exit_code == 2
    with pytest.raises(ConfigError, match=r"--databricks: lake \S+ is not Databricks storage"):
        databricks.require_databricks(config, warehouse=False)


@pytest.mark.parametrize(
    ("lake", "warehouse"),
    [
        ("dbfs:/mnt/lake", "dbfs:/mnt/warehouse"),
        ("/dbfs/mnt/lake", "/Volumes/main/shop/tables"),
        ("/Volumes/main/shop/lake/raw", "abfss://c@acct.dfs.core.windows.net/wh"),
    ],
)
def test_databricks_accepts_dbfs_and_unity_catalog_volumes(
    tmp_path, monkeypatch, mounted, lake, warehouse
):
    pipeline = Pipeline(_config(tmp_path, lake=lake, warehouse=warehouse))
    pipeline.require_databricks()  # on a cluster: accepted
    assert databricks.databricks_storage(lake)
    # the same paths off a cluster refused: the mount decided, not the spelling alone
    monkeypatch.setattr(databricks, "_mounted", lambda root: False)
    with pytest.raises(ConfigError) as refused:
        pipeline.require_databricks()
    assert f"lake {lake}" in str(refused.value) and "not on this machine" in str(refused.value)


def test_databricks_refuses_what_only_looks_like_databricks_storage(tmp_path, monkeypatch):
    short = _config(tmp_path, lake="/Volumes/main", warehouse="dbfs:/wh")
    monkeypatch.setattr(databricks, "_mounted", lambda root: True)
    with pytest.raises(ConfigError, match="lake /Volumes/main is not"):
        Pipeline(short).require_databricks()


def test_databricks_off_a_cluster_names_the_missing_mount_not_the_path(tmp_path, monkeypatch):
    # off a cluster /dbfs is not there: dbfs:/x would be a local folder /dbfs/x. The path
    # is right; what is wrong is where the job runs, and the message must say so
    monkeypatch.setattr(databricks, "_mounted", lambda root: False)
    with pytest.raises(ConfigError) as refused:
        Pipeline(_config(tmp_path, lake="dbfs:/lake", warehouse="dbfs:/wh")).require_databricks()
    message = str(refused.value)
    assert message.startswith(
        "--databricks: lake dbfs:/lake; warehouse dbfs:/wh are on DBFS, but its mount /dbfs "
        "is not on this machine"
    )
    assert "run it on a Databricks cluster" in message
    assert "not Databricks storage" not in message and "write dbfs:/" not in message
    volume = _config(tmp_path, lake="/Volumes/main/shop/lake", warehouse="dbfs:/wh")
    with pytest.raises(
        ConfigError,
        match="lake /Volumes/main/shop/lake is on a Unity Catalog "
        "volume, but its mount /Volumes is not on this machine",
    ):
        databricks.require_databricks(volume, warehouse=False)
    # a local path beside a missing mount: both causes, each with its own fix
    local = _config(tmp_path, lake="dbfs:/lake", warehouse="./warehouse")
    with pytest.raises(ConfigError) as both:
        Pipeline(local).require_databricks()
    assert "lake dbfs:/lake is on DBFS, but its mount /dbfs is not" in str(both.value)
    assert f"warehouse {tmp_path / 'warehouse'} is not Databricks storage" in str(both.value)


def test_databricks_checks_a_table_target_outside_the_warehouse(tmp_path, mounted):
    config = _config(tmp_path, lake="dbfs:/lake", warehouse="dbfs:/wh")
    Pipeline(config).require_databricks()
    local = str(tmp_path / "local_table")
    moved = config.model_copy(
        update={
            "tables": [
                config.tables[0].model_copy(
                    update={"load": config.tables[0].load.model_copy(update={"target": local})}
                ),
                config.tables[1],
            ]
        }
    )
    with pytest.raises(ConfigError, match=r"oracle_db.employees's target \S+local_table is not"):
        Pipeline(moved).require_databricks()


# -- the seed's method names ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "own"),
    [
        ("get_extraction_summary", "extraction_summary"),
        ("create_extraction_report", "extraction_report"),
        ("validate_extraction_window_consistency", "validate_windows"),
        ("get_pipeline_status", "status"),
        ("get_pipeline_progress", "status"),
    ],
)
def test_the_seeds_method_names_are_the_same_methods(seed, own):
    assert vars(Pipeline)[seed] is vars(Pipeline)[own]
