"""A pipeline of 300 tables: validating and reporting it reads the state store a number
of times that grows with the tables, not with their square. The reads are counted, not
timed: before, each `scope: run` table read all of the run's extraction rows again (at
1,000 tables 1M record conversions, 32 s of a 37 s validation) and `status` opened each
Delta table twice. In-process on a SQLite source and state store."""

from __future__ import annotations

import logging
import sqlite3
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

import onceflow.load.api as load_api
from onceflow.config import Config, load_config
from onceflow.load import load_status
from onceflow.pipeline import run
from onceflow.pipeline.status import status_report
from onceflow.state import open_store
from onceflow.state.db import record_from_row
from onceflow.state.extractions import ExtractionRecord, Extractions
from onceflow.validate import validate

pytestmark = pytest.mark.slow  # one run of 300 tables first

TABLES = 300
DAY = "2025-01-05"


def _project(folder: Path) -> Config:
    """300 tables of 3 rows: the even ones appended (`scope: run`, the run's batches),
    the odd ones overwritten (`scope: table`), one rule each."""
    folder.mkdir()
    with closing(sqlite3.connect(folder / "source.db")) as con:
        for i in range(TABLES):
            con.execute(f"CREATE TABLE t{i:03d} (id INTEGER PRIMARY KEY, updated_at TEXT)")
            con.executemany(
                f"INSERT INTO t{i:03d} VALUES (?, ?)",
                [(j, f"2025-01-05 0{j}:00:00") for j in range(3)],
            )
        con.commit()
    rule = {"name": "id_present", "type": "completeness", "column": "id"}
    tables: list[dict[str, Any]] = []
    for i in range(TABLES):
        table: dict[str, Any] = {"source": "src", "table": f"t{i:03d}", "rules": [rule]}
        if i % 2 == 0:
            table["extract"] = {"mode": "incremental", "cursor": "updated_at"}
            table["load"] = {"strategy": "append"}
        else:
            table["extract"] = {"mode": "full"}
            table["load"] = {"strategy": "overwrite"}
        tables.append(table)
    data = {
        "pipeline": "many",
        "state": f"sqlite:///{folder / 'state.db'}",
        "lake": "./lake",
        "warehouse": "./warehouse",
        "timezone": "UTC",
        "sources": {"src": {"url": "sqlite:///source.db"}},
        "tables": tables,
    }
    path = folder / "onceflow.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_config(path)


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """The project, run once for DAY (every table extracted, loaded and validated)."""
    config = _project(tmp_path_factory.mktemp("many") / "project")
    summary = run(config, DAY)
    assert summary.ok, summary
    return config


@contextmanager
def _counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts, while inside: the records the state store converts from its rows, by
    record type, and the reads of a run's extractions (`of_run`)."""
    counts: Counter[str] = Counter()
    convert, of_run = record_from_row, Extractions.of_run

    def counting_convert(cls: type[Any], row: Any) -> Any:
        counts[cls.__name__] += 1
        return convert(cls, row)

    def counting_of_run(self: Extractions, run_id: str) -> dict[str, ExtractionRecord]:
        counts["of_run"] += 1
        return of_run(self, run_id)

    with monkeypatch.context() as patch:
        # every repository module that converts rows (some import the function by name)
        for module in list(sys.modules.values()):
            name = getattr(module, "__name__", "")
            if name.startswith("onceflow.state") and hasattr(module, "record_from_row"):
                patch.setattr(module, "record_from_row", counting_convert)
        patch.setattr(Extractions, "of_run", counting_of_run)
        yield counts


def test_validating_300_tables_reads_the_runs_extractions_once(
    many: Config, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The run's extraction rows are read once for the whole validation, not once (or
    twice) per `scope: run` table: 300 conversions, where there were 90,300; and every
    record the store converts stays a few per table."""
    caplog.set_level(logging.INFO, logger="onceflow.validate")
    with _counted(monkeypatch) as counts:
        report = validate(many, DAY)
    assert report.exit_code == 0 and len(report.tables) == TABLES
    assert report.data_queries == 0  # every result from the cache: only the state is read
    assert counts["of_run"] == 1
    assert counts["ExtractionRecord"] == TABLES
    assert sum(n for name, n in counts.items() if name != "of_run") <= 10 * TABLES
    # the phase says what it does before it starts: on many tables it runs a while
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("validating")]
    assert said == [
        f"validating {TABLES} table(s) of run many_20250105: {TABLES} post-load rule(s)"
    ]


def test_a_rerun_of_300_tables_converts_a_few_records_per_table(
    many: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole no-op rerun (extract, load, validate): the extraction rows of the run are
    read a fixed number of times, whatever the number of tables."""
    with _counted(monkeypatch) as counts:
        summary = run(many, DAY)
    assert summary.ok and summary.counts()["skipped"] == TABLES
    assert counts["of_run"] <= 5
    assert counts["ExtractionRecord"] <= 5 * TABLES
    assert sum(n for name, n in counts.items() if name != "of_run") <= 20 * TABLES


def test_status_of_300_tables_opens_each_delta_table_once(
    many: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: Counter[str] = Counter()
    open_table = load_api.open_table

    def counting_open(uri: str, *args: Any) -> Any:
        opened[uri] += 1
        return open_table(uri, *args)

    monkeypatch.setattr(load_api, "open_table", counting_open)
    rows = load_status(many, store=open_store(many.state_url))
    assert len(rows) == len(opened) == TABLES
    assert set(opened.values()) == {1}
    assert all(row["strategy"] in ("append", "overwrite") for row in rows)  # read from it


def test_status_of_300_tables_sums_each_section_and_lists_only_problems_when_asked(
    many: Config,
) -> None:
    store = open_store(many.state_url)
    whole = status_report(many, DAY, store=store)
    assert whole["load_summary"] == {
        "tables": TABLES,
        "with_problems": 0,
        "files": {"pending": 0, "processing": 0, "completed": TABLES, "failed": 0},
    }
    assert whole["validation_summary"] == {
        "passed": TABLES,
        "warn": 0,
        "failed": 0,
        "error": 0,
        "skipped": 0,
    }
    assert len(whole["tables"]) == len(whole["load"]) == len(whole["validation"]) == TABLES
    only = status_report(many, DAY, problems=True, store=store)
    assert only["problems_only"] is True
    assert only["tables"] == only["load"] == only["validation"] == []
    # the counts still count every table
    assert only["load_summary"] == whole["load_summary"]
    assert only["validation_summary"] == whole["validation_summary"]
    assert only["status_counts"] == whole["status_counts"]
