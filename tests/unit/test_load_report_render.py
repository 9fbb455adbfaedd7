"""What `load` and `run` print of a load: the files' rows read, what the table gained
(inserted, updated, deleted, closed), and late rows skipped."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from onceflow.cli.render import print_load, summarise_run
from onceflow.load import LoadSummary, TableLoadResult
from onceflow.load.loader import FileOutcome


def _scd2_load() -> LoadSummary:
    result = TableLoadResult("shop.customers", "shop/customers", "/wh/shop/customers", "scd2")
    result.files = [
        FileOutcome("a.parquet", "/lake/a.parquet", "skipped"),
        FileOutcome(
            "b.parquet", "/lake/b.parquet", "loaded", rows=3, rows_skipped=2, inserted=1, closed=2
        ),
    ]
    return LoadSummary([result])


def _run(load: LoadSummary) -> SimpleNamespace:
    run = SimpleNamespace(
        run_id="p_20250102",
        status="completed",
        completed_tables=1,
        total_tables=1,
        restart_count=0,
    )
    return SimpleNamespace(
        run=run,
        results=[],
        load=load,
        validation=None,
        ok=True,
        counts=lambda: {"extracted": 1, "skipped": 0, "failed": 0},
    )


def test_run_shows_late_rows_skipped_and_what_the_load_changed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    summarise_run(_run(_scd2_load()), as_json=False)
    out = capsys.readouterr().out
    assert "load: 1 loaded, 1 skipped, 0 failed (3 rows read; 1 inserted, 2 closed)" in out
    assert "  load: shop.customers: 2 late row(s) skipped (late_rows: skip)" in out


def test_load_and_run_json_carry_late_rows_and_changes() -> None:
    data = _scd2_load().as_dict()
    assert data["rows"] == 3 and data["rows_skipped"] == 2
    assert data["changes"] == {"inserted": 1, "updated": 0, "deleted": 0, "closed": 2}
    [table] = data["tables"]
    assert table["changes"] == data["changes"] and table["rows_skipped"] == 2


def test_load_shows_rows_read_apart_from_rows_changed(capsys: pytest.CaptureFixture[str]) -> None:
    print_load(_scd2_load(), as_json=False)
    out = capsys.readouterr().out
    assert out.startswith(
        "shop.customers: 1 loaded, 1 skipped, 0 failed (3 rows read; 1 inserted, 2 closed)"
    )
    assert "  2 late row(s) skipped (late_rows: skip)" in out


def test_scd2_deletion_versions_show_as_deleted_in_load_run_and_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = TableLoadResult("shop.customers", "shop/customers", "/wh/shop/customers", "scd2")
    result.files = [
        FileOutcome("c.parquet", "/lake/c.parquet", "loaded", rows=1, closed=2, deleted=1)
    ]
    summary = LoadSummary([result])
    print_load(summary, as_json=False)
    assert "(1 rows read; 1 deleted, 2 closed)" in capsys.readouterr().out
    summarise_run(_run(summary), as_json=False)
    assert "load: 1 loaded, 0 skipped, 0 failed (1 rows read; 1 deleted, 2 closed)" in (
        capsys.readouterr().out
    )
    assert summary.as_dict()["changes"]["deleted"] == 1
