"""What a validation is asked to check, and data it can read only once: a table with no
post-load rules is refused rather than passed on no rules (rules-only config and
Validator alike), an unknown table is named by the option it came from, and a stream
(batch reader, scanner, lazy frame) is read once so that every rule sees its rows
(DuckDB in process, SQLite state in a temporary folder: no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from onceflow.errors import ConfigError
from onceflow.validate import Validator, validate

RULES_ONLY = """\
version: "1.0"
pipeline:
  state_file: "state.json"
tables:
  - name: t
    rules:
      - {name: rows, type: row_count, min: 1}
  - name: pre
    rules:
      - {name: p, type: row_count, min: 5, stage: pre_load}
  - name: bare
    rules:
      - {name: r, type: referential, column: k, reference: {table: ref, column: k}}
  - name: ref
    rules: []
"""


@pytest.fixture
def rules_only(tmp_path: Path) -> Path:
    (tmp_path / "config.yaml").write_text(RULES_ONLY)
    pq.write_table(pa.table({"k": [1, 2]}), tmp_path / "d.parquet")
    return tmp_path


def _sources(folder: Path, *names: str) -> Path:
    path = folder / "sources.yaml"
    path.write_text("".join(f"{name}: d.parquet\n" for name in names))
    return path


def test_a_rules_only_table_with_only_pre_load_rules_asked_by_tables_is_refused(
    rules_only: Path,
) -> None:
    with pytest.raises(ConfigError) as refused:
        validate(rules_only / "config.yaml", sources=_sources(rules_only, "pre"), tables=["pre"])
    assert str(refused.value) == (
        "--tables: pre has no post-load rules, so there is nothing to validate (its rules "
        "are all `stage: pre_load`, run on each extracted file as it is loaded)"
    )
    assert refused.value.exit_code == 2
    # nothing was recorded as a validation: `status` does not say it passed
    rows = Validator(rules_only / "config.yaml").validation_status()
    assert {r["table"]: r["status"] for r in rows}["pre"] == "never validated"


def test_a_rules_only_table_without_post_load_rules_staged_alone_is_refused(
    rules_only: Path,
) -> None:
    with pytest.raises(ConfigError, match=r"^--sources: pre has no post-load rules"):
        validate(rules_only / "config.yaml", sources=_sources(rules_only, "pre"))


def test_a_staged_table_without_rules_that_another_references_is_read_not_refused(
    rules_only: Path,
) -> None:
    report = validate(rules_only / "config.yaml", sources=_sources(rules_only, "bare", "ref"))
    assert [t.table for t in report.tables] == ["bare"]
    assert report.ok and report.exit_code == 0


def test_an_unknown_tables_name_of_a_rules_only_config_names_tables(rules_only: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        validate(rules_only / "config.yaml", sources=_sources(rules_only, "t"), tables=["nope"])
    assert str(refused.value) == (
        "--tables: table 'nope' is not in the config; tables: t, pre, bare, ref"
    )
    with pytest.raises(ConfigError, match=r"^--sources: table 'nope' is not in the config"):
        validate(rules_only / "config.yaml", sources=_sources(rules_only, "nope"))


def test_validate_table_with_no_rules_of_the_stage_is_refused_not_passed() -> None:
    validator = Validator(
        rules_by_table={"pre": [{"name": "p", "type": "row_count", "min": 5, "stage": "pre_load"}]}
    )
    data = pa.table({"x": [1]})
    with pytest.raises(ConfigError, match=r"^table pre has no post-load rules, so there is"):
        validator.validate_table(data, "pre")
    # its own stage still runs
    assert validator.validate_table(data, "pre", stage="pre_load").tables[0].status == "failed"


RULES = [
    {"name": "c", "type": "completeness", "column": "x"},
    {"name": "u", "type": "uniqueness", "columns": ["x"]},
    {"name": "r", "type": "range", "column": "x", "max": 2},
]
ROWS = pa.table({"x": [1, None, 3, 3]})


def _reader() -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(ROWS.schema, ROWS.to_batches())


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(_reader, id="record-batch-reader"),
        pytest.param(lambda: ds.Scanner.from_batches(_reader()), id="scanner-of-batches"),
    ],
)
def test_a_stream_is_read_once_so_every_rule_judges_its_rows_with_samples(
    stream: Any, tmp_path: Path
) -> None:
    for state in (None, f"sqlite:///{tmp_path / 'state.db'}"):
        report = Validator(rules_by_table={"t": RULES}, state=state).validate_table(stream(), "t")
        results = report.tables[0].results
        got = {r.rule: (r.outcome, r.failing_rows, bool(r.samples)) for r in results}
        assert got == {"c": ("fail", 1, True), "u": ("fail", 2, True), "r": ("fail", 2, True)}
        assert report.exit_code == 1  # failed data, not a broken check (2)


def test_a_stream_read_into_a_table_is_cached_as_that_table(tmp_path: Path) -> None:
    state = f"sqlite:///{tmp_path / 'state.db'}"
    Validator(rules_by_table={"t": RULES}, state=state).validate_table(_reader(), "t")
    again = Validator(rules_by_table={"t": RULES}, state=state).validate_table(ROWS, "t")
    assert all(r.cached for r in again.tables[0].results)


def test_a_polars_lazy_frame_is_collected_and_judged() -> None:
    pl = pytest.importorskip("polars")
    lazy = pl.from_arrow(ROWS).lazy()
    report = Validator(rules_by_table={"t": RULES}).validate_table(lazy, "t")
    assert [r.failing_rows for r in report.tables[0].results] == [1, 2, 2]
