"""kill -9 of `onceflow run --force-reprocess`, then a plain rerun: it finishes the forced
run, so the lake and the tables equal those of an uninterrupted forced run.

The demo project (orders appended, customers merged), the 23rd to the 25th run; then the
source of the 24th changes (orders of that day, customers' names) and the 24th is
re-extracted with `--force-reprocess`, one worker (orders first, then customers). The
process SIGKILLs itself at a named crash point; then `onceflow run --date 2025-01-24`
runs, without the flag. Every table the forced run had not committed keeps its
`force_reprocess` flag in the state store, so the rerun extracts it again rather than
skip its old file (which stands until it is replaced): no mix of new and old tables.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli
from tests.helpers.lake import content_checksum
from tests.helpers.recovery import parquet_checksums
from tests.recovery.test_replay_kill import _demo

DAYS = ("2025-01-23", "2025-01-24", "2025-01-25")
TABLES = ("orders", "customers")


def _changed_demo(folder: Path) -> Path:
    """The demo run for every day, then its source changed under the 24th's window."""
    demo = _demo(folder)
    for day in DAYS:
        done = run_cli("run", "--date", day, cwd=demo)
        assert done.returncode == 0, done.stderr
    with sqlite3.connect(demo / "shop.db") as conn:
        conn.execute(
            "UPDATE orders SET amount = amount + 1 WHERE updated_at >= ? AND updated_at < ?",
            (DAYS[1], DAYS[2]),
        )
        conn.execute("UPDATE customers SET name = name || ' jr' WHERE customer_id < 20")
    conn.close()
    return demo


def _tables(folder: Path) -> dict[str, str]:
    return {t: content_checksum(str(folder / "warehouse" / "shop" / t)) for t in TABLES}


def _forced(folder: Path, crash_at: str | None = None) -> None:
    done = run_cli(
        "run",
        "--date",
        DAYS[1],
        "--force-reprocess",
        "--workers",
        "1",
        cwd=folder,
        crash_at=crash_at,
    )
    if crash_at is None:
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), done.stderr


@pytest.mark.parametrize(
    ("crash_at", "committed"),
    [
        # orders killed while writing: its old file stands, customers never started
        ("during_write:shop.orders", set()),
        # orders committed; customers killed while writing or with its old commit withdrawn
        ("during_write:shop.customers", {"shop.orders"}),
        ("before_data_rename:shop.customers", {"shop.orders"}),
        # customers' new file committed, but the kill came before the state heard of it
        ("after_sidecar:shop.customers", {"shop.orders"}),
    ],
)
def test_a_plain_rerun_finishes_a_killed_force_reprocess(
    tmp_path: Path, crash_at: str, committed: set[str]
) -> None:
    demo = _changed_demo(tmp_path / "demo")
    clean = tmp_path / "clean"
    shutil.copytree(demo, clean)
    _forced(clean)  # the uninterrupted forced run, to compare with

    _forced(demo, crash_at=crash_at)
    flagged = json.loads(run_cli("status", "--date", DAYS[1], "--json", cwd=demo).stdout)
    # saved before the first table started, each cleared as its new file was committed
    assert {t["table_key"]: t["force_reprocess"] for t in flagged["tables"]} == {
        f"shop.{t}": f"shop.{t}" not in committed for t in TABLES
    }

    rerun = run_cli("run", "--date", DAYS[1], "--json", cwd=demo)

    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    done = {t["table_key"]: t for t in report["tables"]}
    assert {k: t["action"] for k, t in done.items()} == {
        f"shop.{t}": "skipped" if f"shop.{t}" in committed else "extracted" for t in TABLES
    }
    if crash_at.startswith("after_sidecar"):
        # the state never saw that commit: extracted once more, the same bytes keep it
        assert done["shop.customers"]["reason"].endswith("whose commit stands")
    assert parquet_checksums(demo / "lake") == parquet_checksums(clean / "lake")
    assert _tables(demo) == _tables(clean)
    status = json.loads(run_cli("status", "--date", DAYS[1], "--json", cwd=demo).stdout)
    assert status["status"] == "completed"
    assert not any(t["force_reprocess"] for t in status["tables"])
