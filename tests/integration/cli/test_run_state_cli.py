"""The state of runs through the CLI, on the demo: a run id names one window, a changed
timezone is refused until the whole run is re-extracted, reset-state --table of a date
that has not run records nothing, and seed 002's recovery from a corrupted SQLite store
(reset-state, then validate-consistency --fix) goes through."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.helpers.cli import run_cli, spawn

DAY = "2025-01-23"


def _status(demo: Path, *args: str) -> dict[str, object]:
    shown = run_cli("status", "--json", *args, cwd=demo)
    assert shown.returncode == 0, shown.stderr
    report: dict[str, object] = json.loads(shown.stdout)
    return report


def test_a_run_id_reused_for_another_date_exits_2_naming_the_runs_date(demo: Path) -> None:
    first = run_cli("extract", "--run-id", "daily_extract", "--date", "2025-01-22", cwd=demo)
    assert first.returncode == 0, first.stderr
    again = run_cli("extract", "--run-id", "daily_extract", "--date", "2025-01-21", cwd=demo)
    assert again.returncode == 2
    [line] = again.stderr.strip().splitlines()
    assert line.startswith("error: --run-id: run daily_extract is the run of 2025-01-22")
    assert "leave out --run-id (its run is then demo_20250121)" in line
    assert run_cli("validate-windows", "--run-id", "daily_extract", cwd=demo).returncode == 0
    report = _status(demo, "--run-id", "daily_extract")
    assert report["run_date"] == "2025-01-22" and report["status"] == "completed"


def test_a_changed_timezone_is_refused_until_run_force_reprocess_moves_the_run(
    demo: Path,
) -> None:
    assert run_cli("run", "--date", DAY, cwd=demo).returncode == 0
    config = demo / "onceflow.yml"
    config.write_text(
        config.read_text().replace("timezone: UTC", "timezone: America/New_York"),
        encoding="utf-8",
    )
    added = run_cli("extract", "-t", "shop.orders", "--date", DAY, cwd=demo)
    assert added.returncode == 2
    assert "timezone: run demo_20250123 was extracted in the window 2025-01-23T00:00:00+00:00" in (
        added.stderr
    )
    assert run_cli("validate-windows", "--date", DAY, cwd=demo).returncode == 0

    moved = run_cli("run", "--date", DAY, "--force-reprocess", cwd=demo)
    assert moved.returncode == 0, moved.stderr
    assert run_cli("validate-windows", "--date", DAY, cwd=demo).returncode == 0
    report = _status(demo, "--date", DAY)
    assert report["window_start"] == "2025-01-23T00:00:00-05:00"
    assert report["status"] == "completed"


def test_reset_state_table_of_a_date_that_has_not_run_says_so_and_invents_no_run(
    demo: Path,
) -> None:
    reset = run_cli("reset-state", "--table", "shop.orders", "--date", DAY, cwd=demo)
    assert reset.returncode == 0, reset.stderr
    assert "run demo_20250123 has not run yet: nothing to reprocess" in reset.stdout
    assert _status(demo)["run_id"] is None
    first = run_cli("run", "--date", DAY, "--json", cwd=demo)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["restart_count"] == 0
    # and its reruns are no restarts either
    assert run_cli("run", "--date", DAY, cwd=demo).returncode == 0
    assert _status(demo)["restart_count"] == 0


def test_status_problems_lists_only_the_tables_with_one_and_counts_them_all(
    demo: Path,
) -> None:
    """With 1,000 tables `status` is 3,000 lines; `--problems` keeps the tables with a
    problem (here the one whose rule cannot run) and the count line of each section."""
    config = demo / "onceflow.yml"
    config.write_text(
        config.read_text().replace(
            "      - {name: email_present,",
            "      - {name: nope_present, type: completeness, column: nope}\n"
            "      - {name: email_present,",
        ),
        encoding="utf-8",
    )
    assert run_cli("run", "--date", DAY, cwd=demo).returncode == 1
    shown = run_cli("status", "--problems", cwd=demo)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "shop.orders" not in shown.stdout  # no problem anywhere
    assert sum("shop.customers" in line for line in lines) == 1  # its validation row
    assert "validation (last per table, tables with a problem)" in lines
    assert "pending: 0  running: 0  completed: 2  failed: 0" in lines
    assert (
        "load: 2 table(s), 0 with a problem; files: 0 pending, 0 processing, 2 completed, 0 failed"
        in lines
    )
    assert "validation: 2 table(s); 1 passed, 0 warn, 0 failed, 1 error, 0 skipped" in lines
    report = _status(demo, "--problems")
    assert [v["table"] for v in report["validation"]] == ["shop.customers"]  # type: ignore[index, union-attr]
    assert report["tables"] == report["load"] == []
    assert report["problems_only"] is True
    tenant = run_cli("status", "--problems", "--tenant", "acme", cwd=demo)
    assert tenant.returncode == 2 and "--problems" in tenant.stderr


def _damage(path: Path) -> None:
    """Overwrite pages in the middle of a SQLite file, as a bad disk or a copy cut short
    would: SQLite then answers 'database disk image is malformed'."""
    with path.open("r+b") as handle:
        handle.seek(4096 * 2)
        handle.write(b"\xff" * 4096 * 3)


def test_reset_state_moves_a_damaged_sqlite_store_aside_and_fix_rebuilds_the_index(
    demo: Path,
) -> None:
    assert run_cli("run", "--date", DAY, cwd=demo).returncode == 0
    state = demo / ".onceflow" / "state.db"
    _damage(state)
    broken = run_cli("validate-consistency", "--fix", cwd=demo)
    assert broken.returncode == 1 and "reset-state --yes` moves it aside" in broken.stderr
    damaged = state.read_bytes()

    reset = run_cli("reset-state", "--yes", cwd=demo)
    assert reset.returncode == 0, reset.stderr
    assert "database disk image is malformed" in reset.stdout
    # its journal files (-wal, -shm) move with it, under the same name
    [aside] = [
        p for p in state.parent.glob("state.db.corrupt-*") if not p.name.endswith(("-wal", "-shm"))
    ]
    assert f"moved aside to {aside}" in reset.stdout
    assert aside.read_bytes() == damaged  # nothing deleted

    fixed = run_cli("validate-consistency", "--fix", cwd=demo)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "the table holds it; tracker marked completed" in fixed.stdout
    rerun = run_cli("run", "--date", DAY, "--json", cwd=demo)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["counts"] == {"extracted": 0, "skipped": 2, "failed": 0}
    # the tables already hold every file: nothing is loaded twice
    assert report["load"]["counts"]["skipped"] == 2
    assert report["load"]["counts"]["loaded"] == report["load"]["counts"]["replaced"] == 0
    assert run_cli("validate-consistency", cwd=demo).returncode == 0


def test_reset_state_leaves_a_sound_store_in_place(demo: Path) -> None:
    assert run_cli("run", "--date", DAY, cwd=demo).returncode == 0
    reset = run_cli("reset-state", "--yes", "--json", cwd=demo)
    assert reset.returncode == 0, reset.stderr
    assert "moved_aside" not in json.loads(reset.stdout)
    assert list((demo / ".onceflow").glob("*.corrupt-*")) == []


def test_reset_state_of_a_date_on_a_damaged_store_moves_it_aside_and_says_so(
    demo: Path,
) -> None:
    assert run_cli("run", "--date", DAY, cwd=demo).returncode == 0
    _damage(demo / ".onceflow" / "state.db")
    reset = run_cli("reset-state", "--yes", "--date", DAY, cwd=demo)
    assert reset.returncode == 0, reset.stderr
    assert "moved aside to" in reset.stdout
    assert list((demo / ".onceflow").glob("state.db.corrupt-*"))


def test_the_repair_of_a_damaged_file_names_its_run_id_when_it_is_not_the_dates_own(
    demo: Path,
) -> None:
    assert run_cli("extract", "--date", DAY, "--run-id", "adhoc", cwd=demo).returncode == 0
    [data] = (demo / "lake" / "shop" / "orders").rglob("adhoc.parquet")
    raw = bytearray(data.read_bytes())
    raw[200] ^= 0xFF  # same size: only the checksum sees it
    data.write_bytes(bytes(raw))
    load = run_cli("load", "--tables", "shop.orders", cwd=demo)
    assert load.returncode == 1
    repair = f"onceflow extract --date {DAY} --tables shop.orders --run-id adhoc --force-reprocess"
    assert repair in load.stdout + load.stderr


def test_a_window_whose_extraction_was_killed_is_said_interrupted_not_running(
    demo: Path, tmp_path: Path
) -> None:
    assert run_cli("run", "--date", "2025-01-21", cwd=demo).returncode == 0
    later = run_cli("extract", "--date", DAY, "-t", "shop.customers", cwd=demo)
    assert later.returncode == 0, later.stderr
    gate = tmp_path / "gate"
    extracting = spawn(
        "extract",
        "--date",
        "2025-01-22",
        "-t",
        "shop.customers",
        cwd=demo,
        env={"ONCEFLOW_PAUSE_AT": f"during_write:{gate}"},
    )
    try:
        deadline = time.monotonic() + 60
        while not Path(f"{gate}.reached").exists():  # mid-write, holding the pipeline lock
            assert extracting.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        live = run_cli("load", "-t", "shop.customers", cwd=demo)
        assert "its extraction is running in run demo_20250122" in live.stderr, live.stderr
    finally:
        extracting.kill()
        extracting.wait(timeout=60)
    dead = run_cli("load", "-t", "shop.customers", cwd=demo)
    assert (
        "its extraction in run demo_20250122 was interrupted (the pipeline lock is stale: "
        f"pid {extracting.pid} is no longer running). Rerun that date (`onceflow run --date "
        "2025-01-22`)"
    ) in dead.stderr, dead.stderr
    # a run killed mid-extraction leaves its run's lock behind: the next date's run says so
    killed = run_cli(
        "run", "--date", "2025-01-22", cwd=demo, crash_at="during_write:shop.customers"
    )
    assert killed.returncode == -9
    after = run_cli("run", "--date", DAY, cwd=demo)
    assert after.returncode == 1
    assert "its extraction in run demo_20250122 was interrupted (its run's lock is stale: pid" in (
        after.stderr
    ), after.stderr
    assert "is running" not in after.stderr
    loads = json.loads(run_cli("status", "--date", DAY, "--json", cwd=demo).stdout)["load"]
    [customers] = [t for t in loads if t["table"] == "shop.customers"]
    assert "was interrupted" in customers["waiting"]  # status says the same


def test_reset_state_failed_without_a_date_resets_every_runs_failed_extractions(
    demo: Path,
) -> None:
    from onceflow.config import load_config
    from onceflow.state import open_store

    for day in ("2025-01-22", DAY):
        assert run_cli("extract", "--date", day, cwd=demo).returncode == 0
    store = open_store(load_config(demo / "onceflow.yml").state_url)
    try:  # an older run's table failed; the latest run is whole
        store.extractions.fail("demo_20250122", "shop.orders", "boom")
    finally:
        store.close()
    reset = run_cli("reset-state", "--failed", "--json", cwd=demo)
    assert reset.returncode == 0, reset.stderr
    assert json.loads(reset.stdout)["runs"] == [
        {"run_id": "demo_20250122", "run_date": "2025-01-22", "count": 1}
    ]
    tables = _status(demo, "--date", "2025-01-22")["tables"]
    assert {t["table_key"]: t["status"] for t in tables}["shop.orders"] == "pending"  # type: ignore[index, union-attr]
    again = run_cli("reset-state", "--failed", cwd=demo)
    assert again.stdout.startswith("0 failed extraction(s) (in no run)")
