"""The status tables show user and error text as written: rich reads `[...]` as markup."""

from __future__ import annotations

from typing import Any

import pytest

from onceflow.cli.render import print_status, print_validation_status, print_windows

LIBPQ = "IO: [libpq] Failed to connect to [db-1]:5432"


def _report() -> dict[str, Any]:
    return {
        "pipeline": "p[x]",
        "run_id": "p_[1]",
        "status": "failed",
        "completion_rate": 50.0,
        "restart_count": 0,
        "window_start": "2025-01-01T00:00:00+00:00",
        "window_end": "2025-01-02T00:00:00+00:00",
        "run_date": "2025-01-01",
        "tables": [
            {
                "table_key": "pg.[orders]",
                "status": "failed",
                "attempts": 1,
                "record_count": None,
                "file_size": None,
                "duration_seconds": None,
                "error": LIBPQ,
            }
        ],
        "status_counts": {"failed": 1},
        "load": [
            {
                "table": "pg.[orders]",
                "strategy": "append",
                "files": {"failed": 1},
                "delta_version": None,
                "failed_files": [{"file": "a.parquet", "error": "[bold]not bold[/bold]"}],
                "damaged_files": [],
                "uncommitted_files": [],
                "waiting": None,
                "rows_skipped": 0,
                "lock": None,
                "error": LIBPQ,
            }
        ],
        "validation": [
            {
                "table": "pg.[orders]",
                "status": "error",
                "counts": {"error": 1},
                "data_queries": 0,
                "ended_at": None,
                "started_at": "2025-01-02T00:00:00+00:00",
                "fingerprint": "delta:[x]@1",
            }
        ],
        "locks": [{"name": "load:[t]", "stale": "pid [9] gone", "holder": "pid 9 on [h]"}],
        "window_consistency": {"consistent": False, "inconsistent": [{"table_key": "pg.[w]"}]},
    }


def test_error_text_in_the_status_tables_keeps_its_brackets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`[libpq]` was taken for a style tag and dropped: `IO:  Failed to connect`."""
    print_status(_report())
    out = capsys.readouterr().out
    assert out.count(LIBPQ) == 2  # the run's table and the load's
    for text in (
        "pg.[orders]",
        "[bold]not bold[/bold]",
        "p_[1]",
        "delta:[x]@1",
        "load:[t]",
        "pid [9] gone",
        "pid 9 on [h]",
        "pg.[w]",
    ):
        assert text in out, text


def test_a_rules_only_status_and_the_window_report_keep_brackets_too(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = _report()
    print_validation_status({"pipeline": "p[x]", "validation": report["validation"]})
    print_windows(
        {
            "run_id": "p_[1]",
            "expected_window": ["s", "e"],
            "inconsistent": [{"table_key": "pg.[o]", "window_start": "a", "window_end": "b"}],
        }
    )
    out = capsys.readouterr().out
    for text in ("p[x]", "pg.[orders]", "run p_[1]: window s → e", "pg.[o]"):
        assert text in out, text


def test_status_names_every_kind_of_row_in_no_window(capsys: pytest.CaptureFixture[str]) -> None:
    """The label said "NULL cursor" for zero-date and infinite rows too."""
    report = _report()
    report["tables"][0].update(status="completed", error=None, null_cursor_rows=2)
    print_status(report)
    out = " ".join(capsys.readouterr().out.split())
    assert "NULL cursor left out" not in out
    for word in ("2 row(s) in no window", "NULL", "zero date", "infinite"):
        assert word in out.replace("│ ", "").replace(" │", ""), word
