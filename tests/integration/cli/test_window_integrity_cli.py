"""Through the CLI, on the demo: a second --run-id for a date that ran is refused (exit 2,
naming the run that holds the window) and nothing is loaded twice; reset-state of another
date's run id is refused before its question."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.cli import run_cli

DAY = "2025-01-23"


def test_a_second_run_id_for_a_date_that_ran_is_refused_and_loads_nothing(demo: Path) -> None:
    first = run_cli("run", "--date", DAY, cwd=demo)
    assert first.returncode == 0, first.stderr
    again = run_cli("run", "--date", DAY, "--run-id", "adhoc1", cwd=demo)
    assert again.returncode == 2, again.stdout + again.stderr
    assert "the lake already holds the window" in again.stderr
    assert "leave out --run-id" in again.stderr
    assert not list(demo.rglob("adhoc1.parquet"))


def test_reset_state_of_another_dates_run_id_is_refused_before_the_question(demo: Path) -> None:
    assert run_cli("extract", "--date", DAY, "--run-id", "x1", cwd=demo).returncode == 0
    refused = run_cli("reset-state", "--run-id", "x1", "--date", "2025-01-22", cwd=demo)
    assert refused.returncode != 0
    assert "Forget this run's state?" not in refused.stdout + refused.stderr
    assert "x1 is the run of 2025-01-23" in refused.stderr
