"""The command line on the cases found by trying onceflow as a new user (issue 8):
unfinished windows, bad options, secrets in odd URLs, output for pipes, a paused run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from deltalake import DeltaTable

from onceflow.lake import read_sidecar, sidecar_path, write_sidecar
from tests.helpers.cli import run_cli, spawn


def _sqlite_project(tmp_path: Path, **extra: object) -> Path:
    """A SQLite source with an `events` table (rows today and earlier) and its config."""
    db = tmp_path / "src.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE events (id INTEGER, updated_at TEXT)")
        now = datetime.now(UTC).replace(microsecond=0)
        rows = [(i, (now - timedelta(hours=i)).strftime("%Y-%m-%d %H:%M:%S")) for i in range(5)]
        conn.executemany("INSERT INTO events VALUES (?, ?)", rows)
    data = {
        "pipeline": "p",
        "state": "sqlite:///state.db",
        "lake": "./lake",
        "warehouse": "./warehouse",
        "sources": {"src": {"url": f"sqlite:///{db}"}},
        "tables": [
            {
                "source": "src",
                "table": "events",
                "extract": {"mode": "incremental", "cursor": "updated_at"},
            }
        ],
        **extra,
    }
    config = tmp_path / "onceflow.yml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    return config


# -- 4. an unfinished window ----------------------------------------------------------------


def test_a_window_that_has_not_ended_is_refused_unless_allowed_partial(tmp_path: Path) -> None:
    config = _sqlite_project(tmp_path)
    refused = run_cli("extract", "-c", str(config), "--date", "today", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert "has not ended" in refused.stderr or "ends at" in refused.stderr
    assert "--allow-partial" in refused.stderr
    assert not (tmp_path / "lake").exists()
    partial = run_cli(
        "extract", "-c", str(config), "--date", "today", "--allow-partial", "--json", cwd=tmp_path
    )
    assert partial.returncode == 0, partial.stderr
    [table] = json.loads(partial.stdout)["tables"]
    assert table["action"] == "extracted" and table["partial"] is True
    sidecar = read_sidecar(Path(table["file_path"]))
    assert sidecar is not None and sidecar["partial"] is True
    again = run_cli(
        "extract", "-c", str(config), "--date", "today", "--allow-partial", "--json", cwd=tmp_path
    )
    assert json.loads(again.stdout)["tables"][0]["action"] == "extracted"  # never skipped
    # status says the completed extraction holds a window that has not ended
    shown = run_cli("status", "-c", str(config), "--date", "today", "--json", cwd=tmp_path)
    assert json.loads(shown.stdout)["tables"][0]["partial"] is True
    text = run_cli("status", "-c", str(config), "--date", "today", cwd=tmp_path).stdout
    assert "completed (partial)" in text
    # and so does the extraction's own summary, where `completed` alone overstated it
    said = run_cli("extract", "-c", str(config), "--date", "today", "--allow-partial", cwd=tmp_path)
    assert said.returncode == 0, said.stderr
    assert said.stdout.splitlines()[-1].startswith("  partial: src.events: the window ")
    assert said.stdout.rstrip().endswith(
        "has not ended (or not settled, `settle`); every run extracts it again until it has"
    )


def test_run_allow_partial_names_the_partial_table_in_json_and_text(tmp_path: Path) -> None:
    # --json had no field for it: only the text output, reading the sidecars, named them
    config = _sqlite_project(tmp_path)
    done = run_cli(
        "run", "-c", str(config), "--date", "today", "--allow-partial", "--json", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    [table] = json.loads(done.stdout)["tables"]
    assert table["table_key"] == "src.events" and table["partial"] is True
    text = run_cli("run", "-c", str(config), "--date", "today", "--allow-partial", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    said = [line for line in text.stdout.splitlines() if line.startswith("  partial: ")]
    assert said and said[0].startswith("  partial: src.events: the window "), text.stdout
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    ended = run_cli("run", "-c", str(config), "--date", yesterday, "--json", cwd=tmp_path)
    assert ended.returncode == 0, ended.stderr
    assert json.loads(ended.stdout)["tables"][0]["partial"] is False


def test_a_partial_window_is_extracted_again_once_it_has_ended(tmp_path: Path) -> None:
    config = _sqlite_project(tmp_path)
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    with sqlite3.connect(tmp_path / "src.db") as conn:
        conn.executemany(
            "INSERT INTO events VALUES (?, ?)",
            [(10 + i, f"{yesterday} 1{i}:00:00") for i in range(3)],
        )
    first = run_cli("extract", "-c", str(config), "--date", yesterday, "--json", cwd=tmp_path)
    path = Path(json.loads(first.stdout)["tables"][0]["file_path"])
    assert json.loads(first.stdout)["tables"][0]["record_count"] >= 3
    loaded = run_cli("load", "-c", str(config), "--date", yesterday, "--json", cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    # as if it had been extracted with --allow-partial before the day ended
    before = {**(read_sidecar(path) or {}), "partial": True}
    write_sidecar(path, before)
    again = run_cli("extract", "-c", str(config), "--date", yesterday, "--json", cwd=tmp_path)
    assert json.loads(again.stdout)["tables"][0]["action"] == "extracted"
    after = read_sidecar(path) or {}
    assert after["partial"] is False
    assert sidecar_path(path).exists()
    # the same bytes: the same rows read then, so the commit's identity stands and a
    # rebuild gives the table it has (SCD2's _effective_from comes from snapshot_at)
    assert after["checksum"] == before["checksum"]
    assert after["snapshot_at"] == before["snapshot_at"]
    # and the table, which holds that file, loads nothing twice
    twice = run_cli("load", "-c", str(config), "--date", yesterday, "--json", cwd=tmp_path)
    assert twice.returncode == 0, twice.stderr
    table = tmp_path / "warehouse" / "src" / "events"
    rows = DeltaTable(str(table)).to_pyarrow_table().num_rows
    assert rows == json.loads(first.stdout)["tables"][0]["record_count"]


# -- bad options: exit 2, one clean line ---------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--log-level", "LOUD", "check"], "--log-level: expected one of"),
        (["extract", "--date", "9999-12-31"], "--date: 9999-12-31 is out of range"),
        (["load", "--path", "drop", "--target", "t", "--strategy", "bogus"], "--strategy: unknown"),
        (["load", "--path", "drop", "--target", "t", "--strategy", "merge"], "needs --primary-key"),
        (["load", "--path", "drop", "--target", "t", "--primary-key", "id"], "append would ignore"),
        (["optimize", "--retention-hours", "-5"], "--retention-hours: must be 0 or more"),
        (["extract", "--lock-timeout", "-1"], "--lock-timeout"),
        (["validate-consistency", "--safe-age", "-1"], "--safe-age"),
    ],
)
def test_a_bad_option_is_one_clean_line_and_exit_2(
    tmp_path: Path, args: list[str], says: str
) -> None:
    config = _sqlite_project(tmp_path)
    (tmp_path / "drop").mkdir()
    done = run_cli(*args, cwd=tmp_path, env={"ONCEFLOW_CONFIG": str(config)})
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "pydantic" not in done.stderr.lower()


def test_check_on_a_config_without_tables_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "onceflow.yml").write_text("pipeline: p\n", encoding="utf-8")
    done = run_cli("check", cwd=tmp_path)
    assert done.returncode == 2 and "lists no tables" in done.stderr


def test_a_yaml_error_says_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "onceflow.yml").write_text("tables:\n  - source: [oops\n", encoding="utf-8")
    done = run_cli("check", cwd=tmp_path)
    assert done.returncode == 2
    assert "not valid YAML at line" in done.stderr and "expected" in done.stderr


def test_a_state_file_that_is_not_a_database_says_how_to_recover(tmp_path: Path) -> None:
    config = _sqlite_project(tmp_path)
    (tmp_path / "state.db").write_bytes(b"this is not sqlite" * 100)
    done = run_cli("status", "-c", str(config), cwd=tmp_path)
    assert done.returncode == 1
    assert "not a readable onceflow state database" in done.stderr
    assert "`onceflow reset-state --yes` moves it aside" in done.stderr
    assert "Traceback" not in done.stderr


# -- secrets --------------------------------------------------------------------------------


def test_a_raw_at_sign_in_a_password_never_leaks_its_tail(tmp_path: Path) -> None:
    url = "postgresql://app:Secr3t@Zq9tailpart@127.0.0.1:1/nodb"
    config = tmp_path / "onceflow.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "state": "sqlite:///state.db",
                "sources": {"pg": {"url": url}},
                "tables": [{"source": "pg", "table": "t"}],
                "retry": {"max_attempts": 1},
            }
        ),
        encoding="utf-8",
    )
    done = run_cli("extract", "-c", str(config), "--date", "2025-01-02", cwd=tmp_path)
    assert done.returncode == 1
    state = (tmp_path / "state.db").read_bytes()
    for secret in ("Zq9tailpart", "Secr3t"):
        assert secret not in done.stderr + done.stdout, done.stderr
        assert secret.encode() not in state


# -- output ---------------------------------------------------------------------------------


def test_piped_status_keeps_long_names_and_errors_whole(tmp_path: Path) -> None:
    long_name = "events_with_a_rather_long_name_that_would_not_fit_in_eighty_columns"
    config = _sqlite_project(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["tables"].append({"source": "src", "table": long_name})  # no such table: it fails
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    run_cli("extract", "-c", str(config), "--date", "2025-01-02", cwd=tmp_path)
    status = run_cli("status", "-c", str(config), cwd=tmp_path)
    assert f"src.{long_name}" in status.stdout
    error_line = next(line for line in status.stdout.splitlines() if long_name in line)
    assert "table not found" in error_line and "…" not in error_line
    assert " B " in status.stdout or "KiB" in status.stdout  # sizes for people


def test_help_shows_flags_as_flags(tmp_path: Path) -> None:
    done = run_cli("extract", "--help", cwd=tmp_path)
    assert "--force-reprocess" in done.stdout and "<bool>" not in done.stdout


def test_validate_windows_prints_a_table(tmp_path: Path) -> None:
    config = _sqlite_project(tmp_path)
    run_cli("extract", "-c", str(config), "--date", "2025-01-02", cwd=tmp_path)
    done = run_cli("validate-windows", "-c", str(config), "--date", "2025-01-02", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.startswith("run p_20250102: every table's window is ")
    assert "[" not in done.stdout  # not a Python list


# -- a paused run that lost its lock --------------------------------------------------------


def test_a_run_paused_past_its_lease_stops_instead_of_overwriting_its_successor(
    tmp_path: Path, pg_url: str
) -> None:
    config = tmp_path / "onceflow.yml"
    slow = "select g as id, pg_sleep(0.5) is null as slept from generate_series(1, 6) g"
    config.write_text(
        yaml.safe_dump(
            {
                "pipeline": "p",
                "state": "sqlite:///state.db",
                "lock_ttl_minutes": 0.02,  # 1.2 s
                "sources": {"pg": {"url": pg_url}},
                "tables": [{"source": "pg", "name": "slow", "query": slow}],
            }
        ),
        encoding="utf-8",
    )
    first = spawn("extract", "-c", str(config), "--date", "2025-01-02", cwd=tmp_path)
    try:
        time.sleep(1.0)  # in its query
        os.kill(first.pid, signal.SIGSTOP)
        time.sleep(2.0)  # its lease runs out while it is stopped
        second = run_cli(
            "extract",
            "-c",
            str(config),
            "--date",
            "2025-01-02",
            "--force-reprocess",
            "--lock-timeout",
            "10",
            "--json",
            cwd=tmp_path,
        )
        assert second.returncode == 0, second.stderr
        path = Path(json.loads(second.stdout)["tables"][0]["file_path"])
        sidecar = read_sidecar(path)
        assert sidecar is not None
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 1, (out, err)
    assert "lost lock" in err and "Traceback" not in err
    from onceflow.lake import file_checksum

    assert file_checksum(path) == sidecar["checksum"]  # the successor's file stands
    assert (read_sidecar(path) or {})["checksum"] == sidecar["checksum"]
    assert not list(path.parent.glob("*.onceflow-tmp-*"))


def test_status_and_validate_consistency_work_after_single_table_and_standalone_use(
    tmp_path: Path,
) -> None:
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
        conn.executemany("INSERT INTO customers VALUES (?, ?)", [(1, "a"), (2, "b")])
    extracted = run_cli(
        "extract",
        "--url",
        f"sqlite:///{db}",
        "--source-name",
        "shop",
        "--table-name",
        "customers",
        "--full",
        "--date",
        "2025-01-02",
        cwd=tmp_path,
    )
    assert extracted.returncode == 0, extracted.stderr
    loaded = run_cli("load", "--path", "lake/shop", "--target", "raw/customers", cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    status = run_cli("status", "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["run_id"] == "extract_20250102"
    assert [t["table_key"] for t in report["tables"]] == ["shop.customers"]
    assert [t["table"] for t in report["load"]] == ["raw/customers"]
    assert report["load"][0]["files"]["completed"] == 1
    check = run_cli("validate-consistency", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "✓ raw/customers" in check.stdout or "OK raw/customers" in check.stdout


def test_state_commands_after_a_standalone_load_alone(tmp_path: Path) -> None:
    """`load --path` with no config leaves tracked files and a table but no run: status
    shows them (no run section), validate-windows has nothing to check, reset-state works."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "drop").mkdir()
    pq.write_table(pa.table({"id": [1, 2, 3]}), tmp_path / "drop" / "a.parquet")
    loaded = run_cli("load", "--path", "drop/", "--target", "raw/events", cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr

    status = run_cli("status", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "no extraction runs" in status.stdout and "raw/events" in status.stdout
    report = json.loads(run_cli("status", "--json", cwd=tmp_path).stdout)
    assert report["run_id"] is None and report["tables"] == []
    assert [(t["table"], t["files"]["completed"]) for t in report["load"]] == [("raw/events", 1)]

    windows = run_cli("validate-windows", cwd=tmp_path)
    assert windows.returncode == 0, windows.stderr
    assert "no extraction runs" in windows.stdout
    failed = run_cli("reset-state", "--failed", "--json", cwd=tmp_path)
    assert failed.returncode == 0, failed.stderr
    assert json.loads(failed.stdout)["count"] == 0
    dated = run_cli("status", "--date", "2025-01-02", cwd=tmp_path)  # a run named: it must exist
    assert dated.returncode == 1 and "not in the state store" in dated.stderr


def test_state_commands_in_an_empty_folder_create_nothing(tmp_path: Path) -> None:
    for command in ("status", "validate-windows", "validate-consistency", "force-unlock"):
        result = run_cli(command, cwd=tmp_path)
        assert result.returncode == 2, (command, result.stderr)
        assert "no onceflow.yml here and no state store" in result.stderr, command
    other = run_cli("status", "--state", "sqlite:///elsewhere/state.db", cwd=tmp_path)
    assert other.returncode == 2 and "sqlite:///elsewhere/state.db" in other.stderr
    assert list(tmp_path.iterdir()) == []
