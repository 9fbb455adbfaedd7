"""A forked DuckDB engine sees the same relations and counts its statements with its
parent's, so separate queries can run on it in another thread."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from onceflow.validate.engines import make_engine


def test_a_fork_has_the_parents_relations_and_shares_its_statement_count(tmp_path: Path) -> None:
    pq.write_table(pa.table({"x": [1, 2, 3]}), tmp_path / "a.parquet")
    parent = make_engine("duckdb")
    try:
        parent.register_parquet("files", [str(tmp_path / "a.parquet")])
        parent.register_parquet("nothing", [])
        parent.register_arrow("memory", pa.table({"y": [10, 20]}))
        parent.create_view("big", "SELECT x FROM files WHERE x > 1")
        fork = parent.fork()
        assert fork is not None
        try:
            got: dict[str, object] = {}

            def run() -> None:
                got["rows"] = fork.query(
                    "SELECT (SELECT count(*) FROM big) AS big, (SELECT sum(y) FROM memory)"
                    " AS y, (SELECT count(*) FROM nothing) AS nothing",
                    kind="unique",
                )

            thread = threading.Thread(target=run)
            thread.start()
            thread.join(30)
            assert got["rows"] == [{"big": 2, "y": 30, "nothing": 0}]
            parent.query("SELECT 1 AS one", kind="aggregate")
            assert [s.kind for s in parent.statements] == ["unique", "aggregate"]
            assert fork.statements is parent.statements
        finally:
            fork.close()
        # the parent is untouched by its fork closing
        assert parent.query("SELECT count(*) AS n FROM files") == [{"n": 3}]
    finally:
        parent.close()


def test_a_view_made_after_the_fork_is_not_in_it(tmp_path: Path) -> None:
    parent = make_engine("duckdb")
    try:
        parent.create_view("early", "SELECT 1 AS a")
        fork = parent.fork()
        assert fork is not None
        try:
            parent.create_view("late", "SELECT 2 AS b")
            assert fork.columns("early") == {"a": "INTEGER"}
            assert "late" not in {
                r["view_name"]
                for r in fork.query("SELECT view_name FROM duckdb_views() WHERE temporary")
            }
        finally:
            fork.close()
    finally:
        parent.close()
