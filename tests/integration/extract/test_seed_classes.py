"""The seeds' extractor examples (seeds 000 and 001), as written, on onceflow's classes:
a real SQLite source in tmp_path; the Oracle and Databricks parameters at the config level
(no Oracle server or Databricks mount here)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import date
from pathlib import Path

import pytest
import yaml

from onceflow import (
    DatabricksDataExtractor,
    DataExtractor,
    StatefulDatabricksDataExtractor,
    StatefulDataExtractor,
)
from onceflow.errors import ConfigError
from onceflow.extract import databricks
from onceflow.lake import sidecar_path

DAY = "2025-01-23"


def _source(folder: Path, *tables: str) -> Path:
    db = folder / "hr.db"
    with sqlite3.connect(db) as conn:
        for name in tables:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {name} (id INTEGER, name TEXT)")
            conn.execute(f"INSERT INTO {name} VALUES (1, 'a'), (2, 'b')")
    return db


def _actions(extractor: DataExtractor) -> dict[str, str]:
    assert extractor.last_summary is not None
    return {r.table_key: r.action for r in extractor.last_summary.results}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Seed 000's setting: a project folder whose onceflow.yml holds the source, with
    `oracle_prod.sales.customers` (a query named like the seed's schema-qualified table)."""
    db = _source(tmp_path, "customers", "products")
    config = {
        "pipeline": "daily_extract",
        "lake": "./lake",
        "retry": {"max_attempts": 1},
        "sources": {"oracle_prod": {"url": f"sqlite:///{db}"}},
        "tables": [
            {
                "source": "oracle_prod",
                "name": "sales.customers",
                "query": "SELECT * FROM customers",
            },
            {"source": "oracle_prod", "table": "products"},
            {"source": "oracle_prod", "table": "orders"},  # not in the source yet: fails
        ],
    }
    (tmp_path / "onceflow.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


TABLE_CONFIGS = [
    {"source_name": "oracle_prod", "schema_name": "sales", "table_name": "customers"},
    {"source_name": "oracle_prod", "table_name": "products", "is_full_extract": True},
    {"source_name": "oracle_prod", "table_name": "orders", "is_full_extract": True},
]


# -- seed 000 -------------------------------------------------------------------------------


def test_seed_000_basic_restart_force_and_failure_recovery(project: Path) -> None:
    table_configs = TABLE_CONFIGS
    # 1. Basic pipeline with state management
    extractor = StatefulDataExtractor(state_dir="state", run_id="daily_extract_20250123")
    results = extractor.extract_tables(table_configs)
    assert results == {
        "oracle_prod.sales.customers": True,
        "oracle_prod.products": True,
        "oracle_prod.orders": False,
    }
    progress = extractor.get_pipeline_status()
    assert f"Completion: {progress['completion_rate']:.1f}%" == "Completion: 66.7%"
    assert progress["run_id"] == "daily_extract_20250123" and progress["run_date"] == DAY
    assert (project / "state" / "state.db").is_file()  # state_dir holds onceflow's store
    assert (project / "lake" / "oracle_prod" / "products" / "202501" / "23").is_dir()

    # 2. Restart: a new extractor with the same run id resumes the run
    extractor = StatefulDataExtractor(state_dir="state", run_id="daily_extract_20250123")
    results = extractor.extract_tables(table_configs)  # skips completed tables
    assert _actions(extractor) == {
        "oracle_prod.sales.customers": "skipped",
        "oracle_prod.products": "skipped",
        "oracle_prod.orders": "failed",
    }
    assert extractor.get_pipeline_progress()["restart_count"] == 1

    # 3. Force reprocessing
    success = extractor.force_reprocess_table("oracle_prod.sales.customers")
    assert success is True
    if success:
        results = extractor.extract_tables(table_configs)  # will re-extract forced table
    assert _actions(extractor)["oracle_prod.sales.customers"] == "extracted"
    assert _actions(extractor)["oracle_prod.products"] == "skipped"

    # 4. Failure recovery
    reset_count = extractor.reset_failed_extractions()
    assert f"Reset {reset_count} failed extractions" == "Reset 1 failed extractions"
    _source(project, "orders")
    results = extractor.extract_tables(table_configs)
    assert results == dict.fromkeys(results, True)
    assert _actions(extractor)["oracle_prod.orders"] == "extracted"
    assert extractor.get_extraction_summary()["completion_rate"] == 100.0
    assert extractor.validate_extraction_window_consistency()["consistent"] is True
    assert extractor.create_extraction_report()["total_tables"] == 3
    assert extractor.is_extraction_needed("oracle_prod.products") is False


def test_the_seed_extractors_reset_and_force_wait_for_no_run_going_on(project: Path) -> None:
    """They took no lock: a run going on (another process) wrote over the reset, or read
    its tables before the flag was set. They hold reset-state's locks now."""
    from onceflow.errors import LockError
    from onceflow.pipeline import pipeline_lock

    extractor = StatefulDataExtractor(run_id="daily_extract_20250123")
    extractor.extract_tables([{"source_name": "oracle_prod", "table_name": "products"}])
    with pipeline_lock(extractor.pipeline.config):  # a run of the pipeline holds it
        with pytest.raises(LockError, match="is held by"):
            extractor.force_reprocess_table("oracle_prod.products")
        with pytest.raises(LockError, match="is held by"):
            extractor.reset_failed_extractions()
    assert extractor.is_extraction_needed("oracle_prod.products") is False  # not flagged
    assert extractor.force_reprocess_table("oracle_prod.products") is True  # lock free
    assert extractor.reset_failed_extractions() == 0


def test_seed_000_without_a_connection_or_onceflow_yml_says_what_to_give(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^StatefulDataExtractor: no connection and no "):
        StatefulDataExtractor(state_dir="state", run_id="daily_extract_20250123")


def test_a_table_config_that_contradicts_onceflow_yml_is_refused(project: Path) -> None:
    extractor = StatefulDataExtractor(run_id="daily_extract_20250123")
    with pytest.raises(ConfigError, match=r"is_full_extract: false, but the config extracts"):
        extractor.extract_tables(
            [{"source_name": "oracle_prod", "table_name": "products", "is_full_extract": False}]
        )
    with pytest.raises(ConfigError, match=r"incremental_column: 'updated_at', but the config"):
        extractor.extract_tables(
            [
                {
                    "source_name": "oracle_prod",
                    "table_name": "products",
                    "incremental_column": "updated_at",
                }
            ]
        )
    with pytest.raises(ConfigError, match=r"flashback_enabled: onceflow reads the source as it is"):
        extractor.extract_table("oracle_prod", "products", flashback_enabled=True)
    with pytest.raises(ConfigError, match=r"partition_column: not a key onceflow reads"):
        extractor.extract_tables(
            [{"source_name": "oracle_prod", "table_name": "products", "partition_column": "id"}]
        )
    assert not (project / "lake").exists()


def test_stateful_parameters_onceflow_cannot_honour_are_refused(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"^enable_checkpoints: onceflow commits every state"):
        StatefulDataExtractor(run_id="daily_extract_20250123", enable_checkpoints=False)
    with pytest.raises(ConfigError, match=r"max_retry_attempts: expected 1 to 20"):
        StatefulDataExtractor(max_retry_attempts=0)
    extractor = StatefulDataExtractor(run_id="daily_extract_20250123", max_retry_attempts=5)
    assert extractor.config.retry.max_attempts == 5  # attempts within one extraction


# -- seed 001 -------------------------------------------------------------------------------


def test_seed_001_basic_recovery_on_a_real_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = _source(tmp_path, "employees")
    monkeypatch.chdir(tmp_path)
    extractor = DataExtractor(url=f"sqlite:///{db}")  # instead of the oracle_* parameters

    # First run - extracts data
    result1 = extractor.extract_table(
        source_name="oracle_db", table_name="employees", is_full_extract=True
    )
    # Second run - skips extraction (idempotent)
    first = extractor.last_summary
    result2 = extractor.extract_table(
        source_name="oracle_db", table_name="employees", is_full_extract=True
    )
    second = extractor.last_summary
    # Force reprocessing
    result3 = extractor.extract_table(
        source_name="oracle_db",
        table_name="employees",
        is_full_extract=True,
        force_reprocess=True,  # Will extract again
    )
    assert (result1, result2, result3) == (True, True, True)
    assert first and second and extractor.last_summary
    actions = [s.results[0].action for s in (first, second, extractor.last_summary)]
    assert actions == ["extracted", "skipped", "extracted"]

    # data/source_name/table_name/yyyymm/dd/run_id.parquet and its metadata, as the seed's
    path = Path(extractor.last_summary.results[0].file_path)
    day = date.fromisoformat(extractor.last_summary.run.run_date)
    assert path == (
        tmp_path / "data/oracle_db/employees" / f"{day:%Y%m}/{day:%d}/extract_{day:%Y%m%d}.parquet"
    )
    sidecar = json.loads(sidecar_path(path).read_text())
    assert sidecar["extraction_complete"] is True and sidecar["record_count"] == 2
    assert sidecar["table_config"]["is_full_extract"] is True
    # the seed's `checksum`, as SHA-256 (named by checksum_algorithm), not MD5
    assert sidecar["checksum_algorithm"] == "sha256"
    assert sidecar["checksum"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_seed_001_parallel_recovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = _source(tmp_path, "employees", "departments")
    monkeypatch.chdir(tmp_path)
    extractor = DataExtractor(url=f"sqlite:///{db}", output_base_path="out", max_workers=2)
    table_configs = [
        {"source_name": "oracle_db", "table_name": "employees", "is_full_extract": True},
        {"source_name": "oracle_db", "table_name": "departments", "is_full_extract": True},
        {"source_name": "oracle_db", "table_name": "orders", "is_full_extract": True},
    ]

    # Initial run - some tables may fail
    results1 = extractor.extract_tables_parallel(table_configs)
    assert results1 == {
        "oracle_db.employees": True,
        "oracle_db.departments": True,
        "oracle_db.orders": False,
    }
    _source(tmp_path, "orders")
    # Recovery run - only failed tables will be reprocessed
    results2 = extractor.extract_tables_parallel(table_configs)
    assert results2 == dict.fromkeys(results1, True)
    assert set(_actions(extractor).values()) == {"skipped", "extracted"}
    assert _actions(extractor)["oracle_db.orders"] == "extracted"
    # Force reprocess all tables
    results3 = extractor.extract_tables_parallel(table_configs, force_reprocess=True)
    assert results3 == results2
    assert set(_actions(extractor).values()) == {"extracted"}
    assert (tmp_path / "out" / "oracle_db" / "orders").is_dir()


def test_seed_001_oracle_parameters_make_the_oracle_url_and_fail_without_a_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    extractor = DataExtractor(
        oracle_host="127.0.0.1",
        oracle_port="1",  # the seed's 1521; nothing listens on 1, refused at once
        oracle_service="XE",
        oracle_user="hr",
        # a secret is masked wherever it appears in this process: a common word would
        # mask that word in every later test's messages
        oracle_password="Seed-pw-4f2q",
    )
    assert extractor.extract_table("oracle_db", "employees", is_full_extract=True) is False
    assert extractor.config.sources["oracle_db"].url == (
        "oracle+oracledb://hr:Seed-pw-4f2q@127.0.0.1:1/?service_name=XE"
    )
    assert extractor.config.lake == "data" and extractor.config.pipeline == "extract"
    failure = extractor.last_summary.results[0].error if extractor.last_summary else None
    assert failure and "Seed-pw-4f2q" not in failure


def test_seed_001_oracle_parameters_missing_the_service_say_what_to_add() -> None:
    with pytest.raises(ConfigError) as refused:
        DataExtractor(oracle_host="localhost", oracle_user="hr", oracle_password="Seed-pw-9k1x")
    assert str(refused.value).startswith(
        'oracle_host needs oracle_service="NAME": who connects and to which Oracle service '
        '(e.g. oracle_service="XE"'
    )
    with pytest.raises(ConfigError, match=r"oracle_service, oracle_user need oracle_host"):
        DataExtractor(oracle_service="XE", oracle_user="hr")


def test_seed_001_databricks_example_maps_the_volume_and_refuses_local_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    table_configs = [
        {"source_name": "oracle_db", "table_name": "employees", "is_full_extract": True}
    ]
    extractor = DatabricksDataExtractor(
        oracle_host="localhost",
        oracle_port="1521",
        oracle_service="XE",
        oracle_user="hr",
        oracle_password="Seed-pw-7h3m",
        output_base_path="/dbfs/data",
        unity_catalog_volume="catalog/schema/volume",  # Optional
    )
    assert extractor.config.lake == "/Volumes/catalog/schema/volume"  # as the seed: the volume
    # off a cluster the volume is not mounted: refused before anything is written
    with pytest.raises(
        ConfigError,
        match=r"lake /Volumes/catalog/schema/volume is on a Unity Catalog volume, but its mount "
        r"/Volumes is not on this machine",
    ):
        extractor.extract_tables_parallel(table_configs)
    assert list(tmp_path.iterdir()) == [tmp_path / ".onceflow"]  # the state store only

    monkeypatch.setattr(databricks, "_mounted", lambda root: root in ("/dbfs", "/Volumes"))
    plain = DatabricksDataExtractor(url="sqlite:///x.db", output_base_path="data")
    assert plain.config.lake == "/dbfs/data"  # relative: under /dbfs/, as the seed on a cluster
    assert DatabricksDataExtractor(url="sqlite:///x.db").config.lake == "/dbfs/data"
    with pytest.raises(ConfigError, match=r"^use_existing_spark: onceflow reads sources with"):
        DatabricksDataExtractor(url="sqlite:///x.db", use_existing_spark=True)
    with pytest.raises(ConfigError, match=r"unity_catalog_volume: expected catalog/schema/vol"):
        DatabricksDataExtractor(url="sqlite:///x.db", unity_catalog_volume="catalog/schema")


def test_seed_000_databricks_extractor_combines_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    extractor = StatefulDatabricksDataExtractor(
        url="sqlite:///x.db",
        unity_catalog_volume="main.shop.raw",
        state_dir="state",
        run_id="daily_extract_20250123",
    )
    config = extractor.config
    assert config.lake == "/Volumes/main/shop/raw"
    assert config.state == f"sqlite:///{tmp_path / 'state' / 'state.db'}"
    assert config.pipeline == "daily_extract"  # so the run id is onceflow's own for the date
    with pytest.raises(ConfigError, match=r"its mount /Volumes is not on this machine"):
        extractor.extract_tables([{"source_name": "s", "table_name": "t"}])


def test_a_run_id_reused_for_another_date_is_refused_in_the_seed_classes_own_terms(
    project: Path,
) -> None:
    extractor = StatefulDataExtractor(state_dir="state", run_id="daily_extract")
    first = [{**TABLE_CONFIGS[1], "extraction_date": "2025-01-23"}]
    assert extractor.extract_tables(first) == {"oracle_prod.products": True}
    second = [{**TABLE_CONFIGS[1], "extraction_date": "2025-01-24"}]
    with pytest.raises(ConfigError) as refused:
        extractor.extract_tables(second)
    message = str(refused.value)
    assert message.startswith("run_id: run daily_extract is the run of 2025-01-23")
    assert "--run-id" not in message and "give another run_id= for 2025-01-24" in message.lower()


def test_an_extraction_date_the_run_id_does_not_name_is_refused_naming_extraction_date(
    project: Path,
) -> None:
    extractor = StatefulDataExtractor(state_dir="state", run_id="daily_extract_20250123")
    with pytest.raises(ConfigError) as refused:
        extractor.extract_table("oracle_prod", "products", extraction_date="2025-01-24")
    message = str(refused.value)
    assert message.startswith(
        "extraction_date='2025-01-24' and run_id='daily_extract_20250123' disagree"
    )
    assert "--date" not in message and "--run-id" not in message
    assert refused.value.field == "extraction_date"
