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


def test_a_dated_run_id_without_date_extracts_the_window_of_its_date(demo: Path) -> None:
    # a seed's run id: the 23rd's run, not yesterday's window under the 23rd's name
    done = run_cli("extract", "--run-id", "daily_extract_20250123", cwd=demo)
    assert done.returncode == 0, done.stderr
    files = sorted(p.relative_to(demo / "lake") for p in demo.rglob("*.parquet"))
    assert files and all(str(f).endswith("202501/23/daily_extract_20250123.parquet") for f in files)
    again = run_cli("extract", "--run-id", "daily_extract_20250123", "--date", DAY, cwd=demo)
    assert again.returncode == 0, again.stderr


def test_a_date_the_dated_run_id_does_not_name_is_refused_naming_both(demo: Path) -> None:
    for command in ("extract", "run"):
        refused = run_cli(
            command, "--run-id", "daily_extract_20250123", "--date", "2025-01-22", cwd=demo
        )
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "--date 2025-01-22 and --run-id daily_extract_20250123 disagree" in refused.stderr
    assert not list(demo.rglob("*.parquet"))


def test_a_date_whose_window_another_run_id_holds_is_refused_naming_the_date(demo: Path) -> None:
    assert run_cli("extract", "--date", DAY, "--run-id", "x1", cwd=demo).returncode == 0
    refused = run_cli("run", "--date", DAY, cwd=demo)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stderr.startswith("error: --date: the lake already holds the window")
    assert "(--run-id x1;" in refused.stderr
