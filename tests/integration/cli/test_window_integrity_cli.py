"""Through the CLI, on the demo: a second --run-id for a date that ran is refused (exit 2,
naming the run that holds the window) and nothing is loaded twice; reset-state of another
date's run id is refused before its question; a run id's date is its stored run's, else
else the date its lake files' sidecars record (a run the store forgot), else the date it
ends in; a window committed before `settle` was raised is named as such."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from onceflow.config import load_config
from onceflow.state import open_store
from onceflow.windows import window_for
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


def _stored_run(demo: Path, run_id: str, day: date) -> None:
    """A run of `day` under `run_id`, as `--date day --run-id run_id` stored it before a
    run id ending in a date meant that date (stores hold such runs)."""
    config = load_config(demo / "onceflow.yml")
    store = open_store(config.state_url)
    store.runs.begin(run_id, config.pipeline, day.isoformat(), window_for(day, config.zone).iso())


def test_a_stored_run_whose_id_ends_in_another_date_is_the_run_of_its_stored_date(
    demo: Path,
) -> None:
    _stored_run(demo, "adhoc_20250122", date(2025, 1, 23))
    alone = run_cli("extract", "--run-id", "adhoc_20250122", cwd=demo)
    assert alone.returncode == 0, alone.stderr
    files = sorted(str(p.relative_to(demo / "lake")) for p in demo.rglob("*.parquet"))
    assert files and all(f.endswith("202501/23/adhoc_20250122.parquet") for f in files)
    for args in (
        ("extract", "--date", DAY, "--run-id", "adhoc_20250122", "--force-reprocess"),
        ("run", "--run-id", "adhoc_20250122"),
        ("reset-state", "--table", "shop.orders", "--run-id", "adhoc_20250122"),
        ("reset-state", "--table", "shop.orders", "--date", DAY, "--run-id", "adhoc_20250122"),
        ("reset-state", "--failed", "--run-id", "adhoc_20250122"),
        ("status", "--run-id", "adhoc_20250122"),
        ("status", "--date", DAY, "--run-id", "adhoc_20250122"),
    ):
        done = run_cli(*args, cwd=demo)
        assert done.returncode == 0, (args, done.stdout + done.stderr)
        assert "disagree" not in done.stderr
    # the way out that the refusal of the date's own run id names is taken
    refused = run_cli("extract", "--date", DAY, "--force-reprocess", cwd=demo)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "(--run-id adhoc_20250122;" in refused.stderr


def test_a_date_other_than_a_stored_runs_is_refused_naming_the_stored_date(demo: Path) -> None:
    _stored_run(demo, "adhoc_20250122", date(2025, 1, 23))
    for command in ("extract", "run", "reset-state --table shop.orders", "status"):
        args = (*command.split(), "--date", "2025-01-22", "--run-id", "adhoc_20250122")
        refused = run_cli(*args, cwd=demo)
        assert refused.returncode != 0, args
        assert "adhoc_20250122 is the run of 2025-01-23" in refused.stderr, refused.stderr
    assert not list(demo.rglob("*.parquet"))


def test_a_run_id_ending_in_eight_digits_that_are_no_date_is_refused_as_a_typo(
    demo: Path,
) -> None:
    for run_id in ("x_20251399", "20251399"):
        for command in ("extract", "run", "reset-state --table shop.orders"):
            refused = run_cli(*command.split(), "--run-id", run_id, cwd=demo)
            assert refused.returncode == 2, refused.stdout + refused.stderr
            assert f"--run-id: {run_id} ends in 20251399, which is not a date" in refused.stderr
    assert not list(demo.rglob("*.parquet"))


def test_a_run_id_ending_in_no_real_date_with_a_date_is_a_label(demo: Path) -> None:
    done = run_cli("extract", "--run-id", "x_20251399", "--date", DAY, cwd=demo)
    assert done.returncode == 0, done.stderr
    assert list(demo.rglob("202501/23/x_20251399.parquet"))


def test_a_forgotten_run_whose_id_ends_in_no_date_is_the_run_its_lake_files_record(
    demo: Path,
) -> None:
    # a legal run before dated ids; the store then forgets it: its sidecars remember
    _stored_run(demo, "old_20251399", date(2025, 1, 23))
    assert run_cli("run", "--run-id", "old_20251399", cwd=demo).returncode == 0
    forgot = run_cli("reset-state", "--run-id", "old_20251399", "--yes", cwd=demo)
    assert forgot.returncode == 0, forgot.stdout + forgot.stderr
    refused = run_cli("run", "--date", DAY, cwd=demo)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "(--run-id old_20251399;" in refused.stderr
    other = run_cli("run", "--run-id", "old_20251399", "--date", "2025-01-22", cwd=demo)
    assert other.returncode == 2, other.stdout + other.stderr
    assert "run old_20251399 is the run of 2025-01-23 (its file" in other.stderr
    for args in (
        ("run", "--run-id", "old_20251399"),
        ("run", "--run-id", "old_20251399", "--date", DAY, "--force-reprocess"),
    ):
        done = run_cli(*args, cwd=demo)
        assert done.returncode == 0, (args, done.stdout + done.stderr)
    files = sorted(str(p.relative_to(demo / "lake")) for p in (demo / "lake").rglob("*.parquet"))
    assert files and all(f.endswith("202501/23/old_20251399.parquet") for f in files)


def test_a_run_whose_id_ends_in_another_date_stays_its_own_after_a_new_store(
    demo: Path,
) -> None:
    _stored_run(demo, "adhoc_20250122", date(2025, 1, 23))
    assert run_cli("extract", "--run-id", "adhoc_20250122", cwd=demo).returncode == 0
    forgot = run_cli("reset-state", "--yes", cwd=demo)
    assert forgot.returncode == 0, forgot.stdout + forgot.stderr
    done = run_cli("run", "--run-id", "adhoc_20250122", cwd=demo)
    assert done.returncode == 0, done.stdout + done.stderr
    files = sorted(str(p.relative_to(demo / "lake")) for p in (demo / "lake").rglob("*.parquet"))
    assert files and all(f.endswith("202501/23/adhoc_20250122.parquet") for f in files)


def test_a_run_id_ending_in_an_iso_date_is_the_run_of_that_date(demo: Path) -> None:
    done = run_cli("extract", "--run-id", DAY, cwd=demo)
    assert done.returncode == 0, done.stderr
    files = sorted(str(p.relative_to(demo / "lake")) for p in demo.rglob("*.parquet"))
    assert files and all(f.endswith(f"202501/23/{DAY}.parquet") for f in files)


def test_a_stored_run_whose_id_ends_in_no_real_date_is_still_its_runs(demo: Path) -> None:
    _stored_run(demo, "x_20251399", date(2025, 1, 23))
    done = run_cli("extract", "--run-id", "x_20251399", cwd=demo)
    assert done.returncode == 0, done.stderr
    assert list(demo.rglob("202501/23/x_20251399.parquet"))


def test_a_run_id_of_eight_digits_alone_is_the_run_of_that_date(demo: Path) -> None:
    done = run_cli("extract", "--run-id", "20250123", cwd=demo)
    assert done.returncode == 0, done.stderr
    files = sorted(str(p.relative_to(demo / "lake")) for p in demo.rglob("*.parquet"))
    assert files and all(f.endswith("202501/23/20250123.parquet") for f in files)


def test_a_window_committed_before_settle_was_raised_names_that_cause(demo: Path) -> None:
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()  # demo: UTC
    first = run_cli("extract", "--date", yesterday, cwd=demo)
    assert first.returncode == 0, first.stderr
    config = demo / "onceflow.yml"
    config.write_text(config.read_text().replace("workers: 2\n", "workers: 2\nsettle: 3d\n"))
    refused = run_cli("extract", "--date", yesterday, cwd=demo)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "already committed as complete" in refused.stderr
    assert "or `settle` was raised since" in refused.stderr
    again = run_cli("extract", "--date", yesterday, "--allow-partial", cwd=demo)
    assert again.returncode == 0, again.stderr
    assert "or `settle` was raised since the commit" in again.stderr
