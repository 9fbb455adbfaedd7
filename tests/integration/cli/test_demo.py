"""The `onceflow` command on the demo project: real processes, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from tests.helpers.cli import run_cli

DAY = "2025-01-23"


def test_run_then_rerun_skips_everything(demo: Path) -> None:
    first = run_cli("run", "--date", DAY, "--json", cwd=demo)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["counts"] == {"extracted": 2, "skipped": 0, "failed": 0}
    orders = next(t for t in report["tables"] if t["table_key"] == "shop.orders")
    assert orders["record_count"] == 600  # one day of the demo's orders
    assert pq.read_table(orders["file_path"]).num_rows == 600

    second = run_cli("run", "--date", DAY, "--json", cwd=demo)
    assert second.returncode == 0
    again = json.loads(second.stdout)
    assert again["counts"] == {"extracted": 0, "skipped": 2, "failed": 0}
    assert again["restart_count"] == 0  # rerunning a completed run is no restart


def test_status_json_and_table(demo: Path) -> None:
    assert run_cli("run", "--date", DAY, cwd=demo).returncode == 0
    status = run_cli("status", "--json", cwd=demo)
    report = json.loads(status.stdout)
    assert report["status"] == "completed"
    assert report["status_counts"]["completed"] == 2
    assert report["completion_rate"] == 100.0
    assert report["window_consistency"]["consistent"] is True
    loads = {row["table"]: row for row in report["load"]}
    assert set(loads) == {"shop.orders", "shop.customers"}
    assert loads["shop.customers"]["strategy"] == "scd2"
    assert loads["shop.customers"]["primary_key"] == ["customer_id"]
    assert all(row["settings_recorded"] for row in loads.values())
    # version 0 holds the window, 1 records the table's settings (onceflow.load.settings)
    assert all(row["delta_version"] == 1 for row in loads.values())
    assert all(row["files"]["completed"] == 1 for row in loads.values())
    table = run_cli("status", "--date", DAY, cwd=demo)
    assert "shop.orders" in table.stdout and "completed" in table.stdout
    assert "scd2" in table.stdout  # the load table
    assert run_cli("validate-windows", "--date", DAY, cwd=demo).returncode == 0


def test_reset_state_table_forces_one_reextraction(demo: Path) -> None:
    assert run_cli("run", "--date", DAY, cwd=demo).returncode == 0
    reset = run_cli("reset-state", "--date", DAY, "--table", "shop.orders", "--json", cwd=demo)
    assert json.loads(reset.stdout) == {
        "action": "force_reprocess",
        "table": "shop.orders",
        "count": 1,
        "run_id": "demo_20250123",
        "ran": True,
    }
    rerun = json.loads(run_cli("run", "--date", DAY, "--json", cwd=demo).stdout)
    actions = {t["table_key"]: t["action"] for t in rerun["tables"]}
    assert actions == {"shop.orders": "extracted", "shop.customers": "skipped"}


def test_force_reprocess_with_tables_only_touches_those(demo: Path) -> None:
    assert run_cli("run", "--date", DAY, cwd=demo).returncode == 0
    out = run_cli(
        "extract", "--date", DAY, "--force-reprocess", "--tables", "customers", "--json", cwd=demo
    )
    actions = {t["table_key"]: t["action"] for t in json.loads(out.stdout)["tables"]}
    assert actions == {"shop.customers": "extracted"}


def test_json_logs_are_one_object_per_line(demo: Path) -> None:
    out = run_cli("--log-format", "json", "run", "--date", DAY, cwd=demo)
    lines = [json.loads(line) for line in out.stderr.splitlines() if line.strip()]
    assert {line["table"] for line in lines if "table" in line} == {"shop.orders", "shop.customers"}
    # the lines of no one table: the load and validation phases starting
    phases = [line for line in lines if "table" not in line]
    assert [(line["action"], line["message"].split()[0]) for line in phases] == [
        ("load", "loading"),
        ("validate", "validating"),
    ]
    assert all(line["level"] == "info" for line in lines)


def test_usage_errors_under_json_logs_are_one_json_record(tmp_path: Path) -> None:
    cases = [
        ((), ("--log-format", "json", "run", "--workers", "0"), "'--workers'"),
        ((), ("--log-format=json", "status", "--tenant"), "'--tenant' requires an argument"),
        ((), ("--log-format", "json", "--bogus"), "No such option: --bogus"),
        (("ONCEFLOW_LOG_FORMAT", "json"), ("bogus",), "No such command 'bogus'"),
    ]
    for env, args, says in cases:
        out = run_cli(*args, cwd=tmp_path, env=dict([env]) if env else None)
        assert out.returncode == 2, args
        lines = out.stderr.splitlines()
        assert len(lines) == 1, (args, out.stderr)
        record = json.loads(lines[0])
        assert record["level"] == "error" and record["message"].startswith("error: ")
        assert says in record["message"], (args, record)
    # plain text: click's usage text, with its error line
    plain = run_cli("run", "--workers", "0", cwd=tmp_path)
    assert plain.returncode == 2
    assert plain.stderr.startswith("Usage: onceflow run [OPTIONS]")
    assert "Error: Invalid value for '--workers'" in plain.stderr


def test_errors_are_one_line_without_traceback(demo: Path) -> None:
    bad_date = run_cli("run", "--date", "2025-13-45", cwd=demo)
    assert bad_date.returncode == 2
    assert bad_date.stderr.strip().splitlines() == [
        "error: --date: invalid date '2025-13-45'; expected YYYY-MM-DD (e.g. 2025-01-23), "
        "'today' or 'yesterday'"
    ]
    unknown = run_cli("run", "--tables", "nope", cwd=demo)
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    assert "table 'nope' is not in the config" in unknown.stderr
    (demo / "bad.yml").write_text("tables: [{source: nowhere, table: t}]\n")
    bad = run_cli("check", "--config", "bad.yml", cwd=demo)
    assert bad.returncode == 2
    assert "tables[0].source: unknown source 'nowhere'" in bad.stderr


def test_single_table_mode_without_config(demo: Path, tmp_path: Path) -> None:
    out = run_cli(
        "extract",
        "--url",
        "sqlite:///shop.db",
        "--source-name",
        "shop",
        "--table-name",
        "orders",
        "--cursor",
        "updated_at",
        "--date",
        DAY,
        "--lake",
        str(tmp_path / "lake1"),
        "--state",
        f"sqlite:///{tmp_path}/s1.db",
        "--json",
        cwd=demo,
    )
    assert out.returncode == 0, out.stderr
    [table] = json.loads(out.stdout)["tables"]
    assert table["record_count"] == 600
    assert table["file_path"].startswith(str(tmp_path / "lake1" / "shop" / "orders" / "202501"))
    both = run_cli(
        "extract",
        "--url",
        "sqlite:///shop.db",
        "--source-name",
        "shop",
        "--table-name",
        "orders",
        "--full",
        "--cursor",
        "x",
        cwd=demo,
    )
    assert both.returncode == 2 and "not both" in both.stderr


def test_check_and_init(tmp_path: Path) -> None:
    created = run_cli("init", "proj", cwd=tmp_path)
    assert created.returncode == 0
    assert run_cli("check", cwd=tmp_path / "proj").stdout.startswith("config ok: pipeline demo")
    again = run_cli("init", "proj", cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr


def test_init_force_on_a_later_day_does_not_load_orders_twice(tmp_path: Path) -> None:
    from datetime import date

    from deltalake import DeltaTable

    from onceflow.demo import create_demo_database

    demo = tmp_path / "demo"

    def shop_ending(day: date) -> None:  # the shop `init` would make on the day after `day`
        (demo / "shop.db").unlink()
        create_demo_database(demo / "shop.db", end=day)

    assert run_cli("init", "demo", cwd=tmp_path).returncode == 0
    shop_ending(date(2025, 1, 23))
    assert run_cli("run", "--date", "2025-01-23", cwd=demo).returncode == 0
    # a day later: the same order ids fall one day later in the new shop
    forced = run_cli("init", "demo", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert not (demo / "lake").exists() and not (demo / ".onceflow" / "state.db").exists()
    shop_ending(date(2025, 1, 24))
    assert run_cli("run", "--date", "2025-01-24", cwd=demo).returncode == 0
    ids = DeltaTable(str(demo / "warehouse" / "shop" / "orders")).to_pyarrow_table()["order_id"]
    assert len(ids) == 600 and len(set(ids.to_pylist())) == 600


def test_init_force_refuses_a_linked_warehouse_in_one_line(tmp_path: Path) -> None:
    assert run_cli("init", "demo", cwd=tmp_path).returncode == 0
    (tmp_path / "outside" / "kept").mkdir(parents=True)
    (tmp_path / "demo" / "warehouse").symlink_to(Path("..") / "outside")
    forced = run_cli("init", "demo", "--force", cwd=tmp_path)
    assert forced.returncode == 2
    lines = forced.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in forced.stderr, forced.stderr
    assert "warehouse is a symlink (to ../outside)" in lines[0]
    assert "Remove or move it yourself" in lines[0]
    assert "created" not in forced.stdout
    assert (tmp_path / "outside" / "kept").is_dir()


def test_a_question_answered_no_is_not_a_failure_and_one_unanswered_aborts(demo: Path) -> None:
    """reset-state answered N exited 1 (`aborted`) where force-unlock answered no exits 0:
    a declined question changes nothing and is no failure; no answer at all is `aborted`."""
    assert run_cli("run", "--date", DAY, cwd=demo).returncode == 0
    declined = run_cli("reset-state", "--date", DAY, cwd=demo, stdin="n\n")
    assert declined.returncode == 0, declined.stderr
    assert declined.stdout.endswith("nothing forgotten (answered no)\n")
    as_json = run_cli("reset-state", "--date", DAY, "--json", cwd=demo, stdin="n\n")
    assert json.loads(as_json.stdout) == {"action": "declined", "count": 0}  # JSON alone
    assert "Forget this run's state?" in as_json.stderr
    unanswered = run_cli("reset-state", "--date", DAY, cwd=demo, stdin="")
    assert (unanswered.returncode, unanswered.stderr) == (1, "aborted\n")
    kept = json.loads(run_cli("status", "--date", DAY, "--json", cwd=demo).stdout)
    assert kept["status"] == "completed"  # nothing was forgotten


def test_reset_state_failed_and_forget_cover_loads_too(demo: Path) -> None:
    assert run_cli("run", "--date", DAY, cwd=demo).returncode == 0
    args = ("reset-state", "--date", DAY)
    failed = json.loads(run_cli(*args, "--failed", "--json", cwd=demo).stdout)
    assert failed == {"action": "reset_failed", "count": 0, "load_files": 0}
    said = run_cli(*args, "--failed", cwd=demo).stdout  # without --json: a sentence
    assert said == (
        "0 failed extraction(s) and 0 failed load file(s) back to pending: the next run "
        "retries them\n"
    )
    forget = json.loads(run_cli(*args, "--yes", "--json", cwd=demo).stdout)
    assert forget["action"] == "forget_run" and forget["load_files"] == 2
    # Nothing is lost: the rerun re-derives everything from sidecars and Delta logs.
    rerun = json.loads(run_cli("run", "--date", DAY, "--json", cwd=demo).stdout)
    assert rerun["counts"] == {"extracted": 0, "skipped": 2, "failed": 0}
    assert rerun["load"]["counts"]["loaded"] == 0
