"""Two `onceflow validate` processes writing one table's quarantine at once: each plans
its write from the quarantine's last commit, and both are held at the commit until both
have planned, so the race the two commands meet by chance is met every time."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.cli import run_cli

#: Ten rows a day, the first three without an email: three failing rows per day.
DAYS = ("2025-01-01", "2025-01-02")


def _project(folder: Path, scope: str) -> Path:
    folder.mkdir()
    conn = sqlite3.connect(folder / "src.db")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT, updated_at TEXT)")
    conn.executemany(
        "INSERT INTO t VALUES (?, ?, ?)",
        [
            (day * 100 + i, None if i < 3 else "x@y", f"2025-01-0{day} 0{i}:00:00")
            for day in (1, 2)
            for i in range(10)
        ],
    )
    conn.commit()
    conn.close()
    config = {
        "pipeline": "race",
        "state": "sqlite:///state.db",
        "lake": "./lake",
        "warehouse": "./warehouse",
        "timezone": "UTC",
        "retry": {"max_attempts": 1, "backoff_seconds": 0},
        "validation": {"retry_delay": 0.01},
        "sources": {"s": {"url": f"sqlite:///{folder / 'src.db'}"}},
        "tables": [
            {
                "source": "s",
                "table": "t",
                "extract": {"mode": "incremental", "cursor": "updated_at"},
                "load": {"strategy": "append"},
                "scope": scope,
                "quarantine": True,
                "rules": [{"name": "email_present", "type": "completeness", "column": "email"}],
            }
        ],
    }
    (folder / "onceflow.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def _at_once(folder: Path, *args: str) -> list[subprocess.CompletedProcess[str]]:
    """Run `onceflow ARGS` twice at the same time, both paused right before their
    quarantine commit until both got there (or one finished without a commit to make)."""
    gates = [folder / f"gate{i}" for i in (1, 2)]
    done: list[Any] = [None, None]

    def one(i: int) -> None:
        pause = {"ONCEFLOW_PAUSE_AT": f"quarantine_before_commit:{gates[i]}"}
        done[i] = run_cli(*args, cwd=folder, env=pause, timeout=120)

    threads = [threading.Thread(target=one, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        reached = [Path(f"{g}.reached").exists() or done[i] for i, g in enumerate(gates)]
        if all(reached):
            break
        time.sleep(0.05)
    for gate in gates:
        gate.touch()
    for thread in threads:
        thread.join(timeout=150)
    assert all(Path(f"{g}.reached").exists() for g in gates), [d.stderr for d in done if d]
    return done


def _quarantined_ids(folder: Path) -> list[int]:
    from onceflow.warehouse import read_table

    rows = read_table(str(folder / "warehouse" / "s" / "t_quarantine"))
    return sorted(rows.column("id").to_pylist())


@pytest.mark.parametrize(
    ("scope", "validated"),
    [
        # scope table: both passes find the first day's write last and add the second
        # day's files' failing rows (the append path)
        ("table", ("validate",)),
        # scope run: both passes find no quarantine yet and create it with the day's rows
        ("run", ("validate", "--date", DAYS[1])),
    ],
    ids=["scope-table-append", "scope-run-first-write"],
)
def test_two_validations_at_once_quarantine_each_failing_row_once(
    tmp_path: Path, scope: str, validated: tuple[str, ...]
) -> None:
    folder = _project(tmp_path / "p", scope)
    if scope == "table":
        assert run_cli("run", "--date", DAYS[0], cwd=folder).returncode == 1  # rule fails
    else:
        assert run_cli("extract", "--date", DAYS[0], cwd=folder).returncode == 0
    assert run_cli("extract", "--date", DAYS[1], cwd=folder).returncode == 0
    assert run_cli("load", cwd=folder).returncode == 0
    first, second = _at_once(folder, *validated, "--json")
    for done in (first, second):
        assert done.returncode == 1, done.stdout + done.stderr  # the rule fails, no error
        assert json.loads(done.stdout)["tables"][0]["quarantine_error"] is None
    written = sorted(json.loads(d.stdout)["tables"][0]["quarantined"] for d in (first, second))
    expected = [100, 101, 102, 200, 201, 202] if scope == "table" else [200, 201, 202]
    assert written == [0, 3]  # one wrote the rows; the other found them written
    assert _quarantined_ids(folder) == expected
    # and a validation after them has nothing left to do
    again = run_cli(*validated, "--json", cwd=folder)
    assert json.loads(again.stdout)["tables"][0]["quarantined"] == 0
    assert _quarantined_ids(folder) == expected
