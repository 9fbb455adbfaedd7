"""`scope: run` on a table that no longer holds the run's rows: a merge table whose later
windows replaced every row of an earlier one. In-process on a SQLite source and state."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import yaml

from onceflow.config import Config, load_config
from onceflow.pipeline import run
from onceflow.validate import validate
from tests.helpers.schedule import make_project

DAY1, DAY2 = "2025-01-01", "2025-01-02"


def _merge_project(tmp_path: Path, rules: list[dict[str, Any]]) -> Config:
    folder = tmp_path / "project"
    path = make_project(folder, f"sqlite:///{tmp_path / 'state.db'}", days=2)
    project = yaml.safe_load(path.read_text(encoding="utf-8"))
    table = project["tables"][0]
    table.update(scope="run", rules=rules, load={"strategy": "merge", "primary_key": ["id"]})
    path.write_text(yaml.safe_dump(project, sort_keys=False), encoding="utf-8")
    return load_config(path)


def _replace_day_one(tmp_path: Path) -> None:
    """Every row of the first day changes in the second day's window."""
    with closing(sqlite3.connect(tmp_path / "project" / "source.db")) as con:
        con.execute(
            "UPDATE events SET amount = amount + 100, updated_at = '2025-01-02 23:00:00' "
            "WHERE updated_at < '2025-01-02'"
        )
        con.commit()


def test_a_run_whose_rows_later_loads_replaced_is_said_to_have_none_left_to_check(
    tmp_path: Path,
) -> None:
    """`validate --date D` passed on 0 rows with nothing saying so: the report's table now
    says nothing of the run was left to check (a note, not an error: nothing is wrong,
    and every rerun of the date would fail)."""
    present = {"name": "amount_present", "type": "completeness", "column": "amount"}
    config = _merge_project(tmp_path, [present])
    first = run(config, DAY1)
    assert first.ok and first.validation is not None
    assert first.validation.tables[0].message is None  # its rows are there
    _replace_day_one(tmp_path)
    assert run(config, DAY2).ok
    again = validate(config, DAY1)
    table = again.tables[0]
    assert again.exit_code == 0 and table.results[0].total_rows == 0
    assert table.message == (
        "the table holds none of run sched_20250101's rows now: later loads replaced them "
        "all, or its load changed no row (a merge writes only the rows that changed); "
        "nothing of the run was left to check, so the rules judged no rows"
    )
    assert again.as_dict()["tables"][0]["message"] == table.message
    cached = validate(config, DAY1)  # answered from the cache: the same note
    assert cached.data_queries == 0 and cached.tables[0].message == table.message
    assert validate(config, DAY2).tables[0].message is None
    empty = run(config, "2025-01-03")  # a window with no rows: said as such
    assert empty.ok and empty.validation is not None
    assert empty.validation.tables[0].message == (
        "run sched_20250103 loaded no rows into this table (its window had none): no rows to judge"
    )


def test_a_run_whose_rows_only_filtered_rules_counted_gets_no_note(tmp_path: Path) -> None:
    """A filter's rows are not the run's: no rows after it says nothing of the run."""
    rule = {"name": "big", "type": "row_count", "max": 0, "filter": "amount > 1000"}
    config = _merge_project(tmp_path, [rule])
    assert run(config, DAY1).ok
    report = validate(config, DAY1)
    assert report.tables[0].results[0].total_rows == 0 and report.tables[0].message is None
