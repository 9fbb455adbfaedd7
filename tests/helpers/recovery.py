"""Helpers for the kill -9 recovery tests: sources, configs, the real CLI, lake inspection."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml

from onceflow.lake import TEMP_MARKER
from tests.helpers.cli import run_cli

ROOT = Path(__file__).resolve().parents[2]
RUN_DATE = "2025-01-23"


def make_sqlite_source(path: Path, tables: dict[str, int], *, seed: int = 7) -> None:
    """A SQLite database with `rows` rows of mixed types in each named table."""
    conn = sqlite3.connect(path)
    try:
        for offset, (name, rows) in enumerate(tables.items()):
            conn.execute(
                f'CREATE TABLE "{name}" (id INTEGER PRIMARY KEY, customer INTEGER NOT NULL, '
                "amount REAL, label TEXT, note TEXT, updated_at TEXT NOT NULL)"
            )
            conn.executemany(
                f'INSERT INTO "{name}" VALUES (?, ?, ?, ?, ?, ?)',
                (
                    (
                        i,
                        (i * 7919 + seed + offset) % 10_007,
                        round(((i * 31) % 100_000) / 7, 4),
                        f"label-{i % 97}-ü",
                        None if i % 13 == 0 else f"note {i} {name} ∑",
                        f"2025-01-23 {(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}",
                    )
                    for i in range(1, rows + 1)
                ),
            )
        conn.commit()
    finally:
        conn.close()


@dataclass
class Project:
    """A test project: an onceflow.yml with a SQLite state store and a lake folder."""

    folder: Path
    tables: list[str]
    source: str = "src"

    @property
    def config(self) -> Path:
        return self.folder / "onceflow.yml"

    @property
    def lake(self) -> Path:
        return self.folder / "lake"

    @property
    def keys(self) -> list[str]:
        return [f"{self.source}.{t}" for t in self.tables]

    def extract(
        self, *extra: str, crash_at: str | None = None, date: str = RUN_DATE
    ) -> subprocess.CompletedProcess[str]:
        return run_cli(
            "extract",
            "--config",
            str(self.config),
            "--date",
            date,
            "--json",
            *extra,
            crash_at=crash_at,
        )

    def status(self, date: str = RUN_DATE) -> dict[str, Any]:
        done = run_cli("status", "--config", str(self.config), "--date", date, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    def data_path(self, table: str, run_id: str = "recovery_20250123") -> Path:
        return self.lake / self.source / table / "202501" / "23" / f"{run_id}.parquet"

    def sidecar_path(self, table: str, run_id: str = "recovery_20250123") -> Path:
        data = self.data_path(table, run_id)
        return data.with_name(data.stem + "_metadata.json")

    def sidecar(self, table: str) -> dict[str, Any]:
        return json.loads(self.sidecar_path(table).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def write_project(
    folder: Path,
    source_url: str,
    tables: Sequence[str],
    *,
    source: str = "src",
    workers: int = 1,
    batch_rows: int = 10_000,
) -> Project:
    """An onceflow.yml extracting `tables` in full from `source_url` into ./lake."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "pipeline": "recovery",
        "state": "sqlite:///state.db",
        "lake": "./lake",
        "timezone": "UTC",
        "workers": workers,
        "retry": {"max_attempts": 1, "backoff_seconds": 0},
        "sources": {source: {"url": source_url}},
        "tables": [
            {
                "source": source,
                "table": t,
                "name": t.split(".")[-1],
                "extract": {"mode": "full", "batch_rows": batch_rows},
            }
            for t in tables
        ],
    }
    (folder / "onceflow.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return Project(folder, [t.split(".")[-1] for t in tables], source)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def parquet_checksums(lake: Path) -> dict[str, str]:
    """sha256 of every committed Parquet file, by path relative to the lake."""
    return {str(p.relative_to(lake)): sha256(p) for p in sorted(lake.rglob("*.parquet"))}


def temp_files(lake: Path) -> set[str]:
    """Leftover temp files (a crash's garbage), by path relative to the lake."""
    if not lake.exists():
        return set()
    return {str(p.relative_to(lake)) for p in lake.rglob("*") if TEMP_MARKER in p.name}


def results_by_table(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    """The per-table results of an `extract --json` command."""
    summary = json.loads(done.stdout)
    return {t["table_key"]: t for t in summary["tables"]}


def actions(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return {k: v["action"] for k, v in results_by_table(done).items()}


def assert_state_complete(project: Project, keys: Iterable[str] | None = None) -> dict[str, Any]:
    """`onceflow status --json` shows the run completed and every table completed."""
    report = project.status()
    wanted = set(keys or project.keys)
    assert report["status"] == "completed", report
    statuses = {t["table_key"]: t["status"] for t in report["tables"]}
    assert set(statuses) == wanted
    assert all(s == "completed" for s in statuses.values()), statuses
    assert report["completion_rate"] == 100.0
    for row in report["tables"]:
        assert row["checksum"] == sha256(Path(row["file_path"])), row["table_key"]
    return report


def assert_sidecars_match(project: Project) -> None:
    """Each sidecar is complete and its checksum and size are those of its file."""
    for table in project.tables:
        data = project.data_path(table)
        meta = project.sidecar(table)
        assert meta["extraction_complete"] is True
        assert meta["checksum_algorithm"] == "sha256"
        assert meta["checksum"] == sha256(data), table
        assert meta["file_size_bytes"] == data.stat().st_size, table


# --------------------------------------------------------------- Delta load kill tests


def delta_commit_count(uri: str | Path) -> int:
    """How many commits the Delta log at `uri` has (0 while there is no table).

    Counts the `<20 digits>.json` entries of `_delta_log`, not a writer's temp files; cheap
    enough to poll while a loader runs.
    """
    try:
        names = os.listdir(Path(uri) / "_delta_log")
    except FileNotFoundError:
        return 0
    return sum(1 for n in names if len(n) == 25 and n.endswith(".json") and n[:20].isdigit())


def lock_holder_pid(state_db: Path, lock: str) -> int | None:
    """The pid holding `lock` in a SQLite state store, read without writing to it.

    None while there is no store in WAL mode yet, no such table, or no holder. A
    read-only connection per call: it never takes a write lock, so the loader never waits.
    """
    if not Path(f"{state_db}-wal").exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{state_db}?mode=ro", uri=True, timeout=0.05)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute("SELECT pid FROM locks WHERE name = ?", (lock,)).fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return int(row[0]) if row else None


def assert_scd2_invariants(
    rows: Sequence[dict[str, Any]],
    key: str = "id",
    *,
    start: str = "_effective_from",
    end: str = "_effective_to",
    current: str = "_is_current",
) -> None:
    """Per key: at most one current version, whose effective_to is open (NULL); every
    closed version has effective_to >= effective_from; no two versions overlap."""
    by_key: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        by_key.setdefault(row[key], []).append(row)
    for value, versions in by_key.items():
        currents = [v for v in versions if v[current]]
        assert len(currents) <= 1, f"{key}={value}: {len(currents)} current versions"
        for v in versions:
            if v[current]:
                assert v[end] is None, f"{key}={value}: the current version is closed: {v}"
            else:
                assert v[end] is not None, f"{key}={value}: a closed version is open: {v}"
                assert v[end] >= v[start], f"{key}={value}: effective_to < effective_from: {v}"
        ordered = sorted(versions, key=lambda v: v[start])
        for before, after in pairwise(ordered):
            assert before[end] is not None and before[end] <= after[start], (
                f"{key}={value}: overlapping versions {before} and {after}"
            )
