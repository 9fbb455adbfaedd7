"""The text of `status` and `validate` for a pipeline of 1,000 tables: a few failures
must not round away or drown among the lines of the tables that are fine."""

from __future__ import annotations

from typing import Any

import pytest

from onceflow.cli.render import print_status, print_validation
from onceflow.extract.reports import _rate
from onceflow.validate.results import RuleResult, TableReport, ValidationReport

TABLES = 1000


def _status(completed: int, **extra: Any) -> dict[str, Any]:
    """A status report of TABLES tables, `completed` of them extracted."""
    failed = TABLES - completed
    return {
        "pipeline": "p",
        "run_id": "p_20250106",
        "status": "failed" if failed else "completed",
        "completion_rate": round(100 * completed / TABLES, 2),
        "restart_count": 0,
        "window_start": "2025-01-06T00:00:00+00:00",
        "window_end": "2025-01-07T00:00:00+00:00",
        "run_date": "2025-01-06",
        "total_tables": TABLES,
        "status_counts": {"pending": 0, "running": 0, "completed": completed, "failed": failed},
        "tables": [],
        "load": [],
        "validation": [],
        "locks": [],
        "window_consistency": {"consistent": True, "inconsistent": []},
        **extra,
    }


@pytest.mark.parametrize(
    ("completed", "said"),
    [
        (997, "99.7% complete (997/1,000 tables)"),
        (999, "99.9% complete (999/1,000 tables)"),
        (1, "0.1% complete (1/1,000 tables)"),
        (TABLES, "100% complete (1,000/1,000 tables)"),
        (0, "0% complete (0/1,000 tables)"),
    ],
)
def test_the_run_title_never_rounds_failures_away(
    completed: int, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`failed, 100% complete` with 3 of 1,000 tables failed: `:.0f` rounded 99.7 up."""
    print_status(_status(completed))
    title = capsys.readouterr().out.splitlines()[0]
    assert f", {said}, restarts 0" in title


@pytest.mark.parametrize(
    ("done", "total", "rate"),
    [(997, 1000, 99.7), (1000, 1000, 100.0), (0, 1000, 0.0), (0, 0, 0.0), (2, 3, 66.67)],
)
def test_completion_rate_rounds_to_2_decimals(done: int, total: int, rate: float) -> None:
    assert _rate(done, total) == rate


def test_completion_rate_is_not_rounded_to_100_or_0_unless_exact() -> None:
    """`completion_rate` in `--json` is rounded to 2 decimals: 99,999 of 100,000 tables
    said 100.0, and 1 of them 0.0."""
    assert 99.99 < _rate(99_999, 100_000) < 100
    assert 0 < _rate(1, 100_000) < 0.01


def _rule(table: str, rule: str, outcome: str, **extra: Any) -> RuleResult:
    return RuleResult(rule, table, "completeness", "error", "post_load", outcome, **extra)


def test_validate_repeats_the_failing_and_erroring_rules_after_its_totals(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The totals line named no rule: the 7 errors of a 1,000-table validation were at
    lines 36-88 of 3,501. After it, each failing or erroring rule once more, a line for
    each table whose rules were skipped, and each quarantine pass that could not run."""
    report = ValidationReport("p")
    for i in range(TABLES):
        report.tables.append(
            TableReport(f"src.t{i:04d}", "x", results=[_rule(f"src.t{i:04d}", "id", "pass")])
        )
    report.tables[24].results = [
        _rule("src.t0024", "id", "error", message="unknown column 'id'"),
        _rule("src.t0024", "amount_pos", "fail", failing_rows=3),
    ]
    skipped = "not validated: its extraction failed (no such table)"
    report.tables[3].results = [
        _rule("src.t0003", r, "skipped", message=skipped) for r in ("id", "amount_pos")
    ]
    report.tables[7].quarantine_error = "quarantine pass failed: disk full"
    print_validation(report)
    lines = capsys.readouterr().out.splitlines()
    [totals] = [n for n, line in enumerate(lines) if " -- exit " in line]
    assert (
        lines[totals]
        == "998 pass, 0 warn, 1 fail, 1 error, 2 skipped -- exit 2: a rule could not run"
    )
    assert lines[totals + 1 :] == [
        f"  skipped: src.t0003: 2 rule(s): {skipped}",
        "  quarantine error: src.t0007: quarantine pass failed: disk full",
        "  rule error: src.t0024/id: unknown column 'id'",
        "  rule fail: src.t0024/amount_pos: 3 failing rows",
    ]


def test_a_validation_without_problems_ends_with_its_totals(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = ValidationReport(
        "p", tables=[TableReport("t", "x", results=[_rule("t", "id", "pass")])]
    )
    print_validation(report)
    assert (
        capsys.readouterr().out.splitlines()[-1]
        == "1 pass, 0 warn, 0 fail, 0 error, 0 skipped -- exit 0: ok"
    )


def _load_row(table: str, **problem: Any) -> dict[str, Any]:
    return {
        "table": table,
        "strategy": "append",
        "primary_key": None,
        "files": {"completed": 5},
        "delta_version": 4,
        "failed_files": [],
        "damaged_files": [],
        "uncommitted_files": [],
        "waiting": None,
        "rows_skipped": 0,
        "lock": None,
        "error": None,
        **problem,
    }


def _validation_row(table: str, status: str) -> dict[str, Any]:
    return {
        "table": table,
        "status": status,
        "counts": {status: 1},
        "data_queries": 0,
        "ended_at": None,
        "started_at": "2025-01-07T00:00:00+00:00",
        "fingerprint": "delta:x@1",
    }


def test_each_status_section_ends_with_a_line_of_counts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Only the extraction section had one (`pending: 0  running: 0 ...`): the load and
    validation sections of 1,000 tables ended with their 1,000th row."""
    report = _status(
        997,
        load=[_load_row("src.t0000"), _load_row("src.t0001", waiting="waits for 2025-01-05")],
        load_summary={
            "tables": TABLES,
            "with_problems": 2,
            "files": {"pending": 0, "processing": 0, "completed": 5552, "failed": 2},
        },
        validation=[_validation_row("src.t0000", "passed"), _validation_row("src.t0024", "error")],
        validation_summary={"passed": 993, "warn": 0, "failed": 2, "error": 3, "skipped": 2},
    )
    print_status(report)
    lines = capsys.readouterr().out.splitlines()
    assert "pending: 0  running: 0  completed: 997  failed: 3" in lines
    assert (
        "load: 1,000 table(s), 2 with a problem; files: 0 pending, 0 processing, 5,552 "
        "completed, 2 failed"
    ) in lines
    assert "validation: 1,000 table(s); 993 passed, 0 warn, 2 failed, 3 error, 2 skipped" in lines
    assert lines[-1] == "locks: none held"
