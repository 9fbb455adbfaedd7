"""A window re-extracted after its source rows changed (`run --force-reprocess`): the
table replaces the window's batch (append) or rewinds and replays it (merge, scd2), and
the quarantine follows, holding what a clean run on the changed source holds, also when
the quarantine pass is SIGKILLed before or after its commit."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.cli import run_cli

DAYS = ("2025-01-21", "2025-01-22", "2025-01-23")
TABLES = ("orders_a", "orders_m", "orders_s", "orders_t")
RULES = [
    {"name": "amount_ok", "type": "range", "column": "amount", "min": 0},
    {"name": "note_present", "type": "completeness", "column": "note"},
]
# the timing columns, wall clock of the load and of the quarantine write: a rerun's differ
TIMING = ("_load_timestamp", "_quarantined_at")


def _source(path: Path, *, changed: bool) -> None:
    """Four tables with the same rows, 300 per day; `changed`: some rows of the middle
    day fail the amount rule now, some failing ones pass (their cursor stays in the day)."""
    conn = sqlite3.connect(path)
    for name in TABLES:
        conn.execute(
            f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, amount REAL, note TEXT, "
            "updated_at TIMESTAMP NOT NULL)"
        )
        conn.executemany(
            f"INSERT INTO {name} VALUES (?, ?, ?, ?)",
            (
                (
                    day * 1000 + i,
                    -float(i) if i % 7 == 0 else float(i),
                    None if i % 11 == 0 else f"note {i}",
                    f"2025-01-{day} {i // 60 % 24:02d}:{i % 60:02d}:00",
                )
                for day in (21, 22, 23)
                for i in range(1, 301)
            ),
        )
    conn.commit()
    if changed:
        _change(conn)
    conn.close()


def _change(conn: sqlite3.Connection) -> None:
    for name in TABLES:
        conn.execute(f"UPDATE {name} SET amount = -1 WHERE id / 1000 = 22 AND id % 5 = 1")
        conn.execute(
            f"UPDATE {name} SET amount = 3 WHERE id / 1000 = 22 AND id % 7 = 0 AND id % 2 = 0"
        )
    conn.commit()


def _project(folder: Path, *, changed: bool) -> Path:
    folder.mkdir(parents=True)
    _source(folder / "src.db", changed=changed)
    incremental = {"mode": "incremental", "cursor": "updated_at"}
    keyed = {"primary_key": ["id"], "validity_column": "updated_at"}
    loads: dict[str, tuple[dict[str, Any], str]] = {
        "orders_a": ({"strategy": "append"}, "run"),
        "orders_m": ({"strategy": "merge", **keyed}, "run"),
        "orders_s": ({"strategy": "scd2", **keyed}, "run"),
        "orders_t": ({"strategy": "append"}, "table"),
    }
    config = {
        "pipeline": "quarantine",
        "state": "sqlite:///state.db",
        "lake": "./lake",
        "warehouse": "./warehouse",
        "timezone": "UTC",
        "retry": {"max_attempts": 1, "backoff_seconds": 0},
        "validation": {"retry_delay": 0.01},
        "sources": {"src": {"url": f"sqlite:///{folder / 'src.db'}"}},
        "tables": [
            {
                "source": "src",
                "table": name,
                "extract": incremental,
                "load": load,
                "scope": scope,
                "quarantine": True,
                "rules": RULES,
            }
            for name, (load, scope) in loads.items()
        ],
    }
    (folder / "onceflow.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def _run(folder: Path, *args: str, crash_at: str | None = None) -> int:
    done = run_cli("run", *args, cwd=folder, crash_at=crash_at)
    assert done.returncode in (1, -9), done.stdout + done.stderr  # the rules fail: exit 1
    return done.returncode


def _rows(folder: Path, table: str) -> list[tuple[Any, ...]]:
    """A Delta table's rows without the timing columns, as a sorted list."""
    from deltalake import DeltaTable

    data = DeltaTable(str(folder / "warehouse" / "src" / table)).to_pyarrow_table()
    data = data.drop_columns([c for c in TIMING if c in data.column_names])
    rows = []
    for row in data.to_pylist():
        if "_failed_rules" in row:
            row["_failed_rules"] = sorted(row["_failed_rules"])
        rows.append(tuple(sorted((k, repr(v)) for k, v in row.items())))
    return sorted(rows)


@pytest.mark.slow
@pytest.mark.parametrize(
    "crash_at",
    [None, "quarantine_before_commit:src.orders_a", "quarantine_after_commit:src.orders_m"],
)
def test_a_reprocessed_window_quarantines_as_a_clean_run_of_the_changed_source(
    tmp_path: Path, crash_at: str | None
) -> None:
    clean = _project(tmp_path / "clean", changed=True)
    for day in DAYS:
        _run(clean, "--date", day)

    folder = _project(tmp_path / "redone", changed=False)
    for day in DAYS:
        _run(folder, "--date", day)
    before = {t: _rows(folder, f"{t}_quarantine") for t in TABLES}
    conn = sqlite3.connect(folder / "src.db")
    _change(conn)
    conn.close()
    if crash_at is not None:
        assert _run(folder, "--date", DAYS[1], "--force-reprocess", crash_at=crash_at) == -9
        _run(folder, "--date", DAYS[1])  # the rerun finishes the validation
    else:
        _run(folder, "--date", DAYS[1], "--force-reprocess")

    for name in TABLES:
        assert _rows(folder, name) == _rows(clean, name), name
        quarantined = _rows(folder, f"{name}_quarantine")
        assert quarantined != before[name], name  # the change is in the quarantine
        assert quarantined == _rows(clean, f"{name}_quarantine"), name
    # and a rerun, or a validation of each date, leaves it so
    _run(folder, "--date", DAYS[1])
    for day in DAYS:
        assert run_cli("validate", "--date", day, cwd=folder).returncode == 1
    for name in TABLES:
        assert _rows(folder, f"{name}_quarantine") == _rows(clean, f"{name}_quarantine"), name
