"""`Pipeline.is_extraction_needed`: the extractor's own skip decision, asked without
extracting; and the seed's method names on a real run."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from onceflow import Pipeline
from onceflow.errors import ConfigError
from onceflow.extract import read_tables_file
from tests.helpers.extract import make_config

DAY = "2025-01-23"


def _pipeline(tmp_path: Path) -> Pipeline:
    db = tmp_path / "hr.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE employees (id INTEGER, name TEXT)")
        conn.execute("INSERT INTO employees VALUES (1, 'a')")
    tables = [{"source": "hr", "table": "employees"}]
    return Pipeline(make_config(tmp_path, {"hr": f"sqlite:///{db}"}, tables))


def test_is_extraction_needed_follows_what_the_next_extraction_does(tmp_path):
    pipeline = _pipeline(tmp_path)
    assert pipeline.is_extraction_needed("hr.employees", DAY)
    assert pipeline.store.runs.find() == []  # asking writes nothing

    first = pipeline.extract(DAY)
    assert first.results[0].action == "extracted"
    assert not pipeline.is_extraction_needed("hr.employees", DAY)
    assert not pipeline.is_extraction_needed("hr.employees", DAY, verify="deep")
    assert pipeline.is_extraction_needed("hr.employees", "2025-01-24")  # another window

    assert pipeline.force_reprocess_table("hr.employees", DAY)
    assert pipeline.is_extraction_needed("hr.employees", DAY)
    assert pipeline.extract(DAY).results[0].action == "extracted"
    assert not pipeline.is_extraction_needed("hr.employees", DAY)

    Path(first.results[0].file_path).write_bytes(b"truncated")
    assert pipeline.is_extraction_needed("hr.employees", DAY)
    assert pipeline.extract(DAY).results[0].action == "extracted"


def test_is_extraction_needed_refuses_what_the_extraction_would_refuse(tmp_path):
    pipeline = _pipeline(tmp_path)
    assert pipeline.extract(DAY, run_id="nightly").ok
    # a run id of another date: "yes, extract it" would be refused by the extractor
    with pytest.raises(ConfigError, match=r"run nightly is the run of 2025-01-23") as other:
        pipeline.is_extraction_needed("hr.employees", "2025-01-24", run_id="nightly")
    with pytest.raises(ConfigError) as extracting:
        pipeline.extract("2025-01-24", run_id="nightly")
    assert str(other.value) == str(extracting.value)
    # the window is held by another run id: the default run id may not extract it again
    with pytest.raises(ConfigError, match=r"under run nightly"):
        pipeline.is_extraction_needed("hr.employees", DAY)
    # the run that holds it answers as before
    assert not pipeline.is_extraction_needed("hr.employees", DAY, run_id="nightly")
    assert pipeline.store.runs.find()[0].run_id == "nightly"  # asking wrote nothing


def test_is_extraction_needed_names_an_unknown_table(tmp_path):
    with pytest.raises(ConfigError, match=r"'hr\.nope' is not in the config"):
        _pipeline(tmp_path).is_extraction_needed("hr.nope", DAY)


def test_the_seeds_method_names_answer_as_the_methods_they_alias(tmp_path):
    pipeline = _pipeline(tmp_path)
    pipeline.extract(DAY)
    assert pipeline.get_extraction_summary(DAY) == pipeline.extraction_summary(DAY)
    assert pipeline.get_extraction_summary(DAY)["completion_rate"] == 100.0
    report = pipeline.create_extraction_report(DAY)
    assert [t["table_key"] for t in report["tables"]] == ["hr.employees"]
    windows = pipeline.validate_extraction_window_consistency(DAY)
    assert windows == pipeline.validate_windows(DAY) and windows["consistent"]
    status = pipeline.get_pipeline_status(DAY)
    assert status["run_id"] == pipeline.get_pipeline_progress(DAY)["run_id"]
    assert status["tables"][0]["status"] == "completed"


def test_a_tables_file_that_disagrees_with_the_config_extracts_nothing(tmp_path):
    pipeline = _pipeline(tmp_path)
    path = tmp_path / "tables.json"
    path.write_text('[{"source_name": "hr", "table_name": "employees", "is_full_extract": false}]')
    with pytest.raises(ConfigError, match=r"entry 1 \(hr.employees\): is_full_extract: false"):
        pipeline.extract(DAY, tables=read_tables_file(path))
    assert not (tmp_path / "lake").exists()
    path.write_text('[{"source_name": "hr", "table_name": "employees", "is_full_extract": true}]')
    assert pipeline.extract(DAY, tables=read_tables_file(path)).ok
