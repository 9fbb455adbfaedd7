"""kill -9 of a run during a replay, then the narrow rerun: the table equals a clean load.

The demo project, its customers table loaded with `merge`, runs of the 23rd to the 25th
loaded. A forced re-extraction of the 24th (its source rows changed) rewinds the table to
before the 24th, undoing the 24th and the 25th, then replays both. The process is killed
right after the rewind, or after the replay's first commit; then `onceflow run --date
2025-01-24` runs. The 25th is outside that run's date, but a rewind undid it: the rerun
must finish the replay, so the table equals a clean in-order load of the final lake.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
from datetime import date
from pathlib import Path

import pytest
import yaml

from tests.helpers.cli import run_cli
from tests.helpers.lake import content_checksum, file_commits

DAYS = ("2025-01-23", "2025-01-24", "2025-01-25")
CUSTOMERS = "warehouse/shop/customers"


def _demo(folder: Path) -> Path:
    from onceflow.demo import create_demo_database, init_project

    init_project(folder)
    (folder / "shop.db").unlink()
    create_demo_database(folder / "shop.db", end=date(2025, 1, 25))
    config = yaml.safe_load((folder / "onceflow.yml").read_text(encoding="utf-8"))
    for table in config["tables"]:
        if table["table"] == "customers":
            table["load"] = {"strategy": "merge", "primary_key": ["customer_id"]}
    (folder / "onceflow.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return folder


def _clean_checksum(folder: Path, tmp_path: Path) -> str:
    """The customers table of a clean, in-order load of `folder`'s final lake."""
    clean = tmp_path / "clean"
    shutil.copytree(folder, clean, ignore=shutil.ignore_patterns("warehouse", ".onceflow"))
    done = run_cli("load", cwd=clean)
    assert done.returncode == 0, done.stderr
    return content_checksum(str(clean / CUSTOMERS))


@pytest.mark.parametrize("point", ["after_rewind", "after_delta_commit"])
def test_narrow_run_after_a_kill_mid_replay_finishes_the_replay(tmp_path: Path, point: str) -> None:
    demo = _demo(tmp_path / "demo")
    for day in DAYS:
        assert run_cli("run", "--date", day, cwd=demo).returncode == 0
    with sqlite3.connect(demo / "shop.db") as conn:  # the 24th, extracted again, differs
        conn.execute("UPDATE customers SET name = name || ' jr' WHERE customer_id < 20")
    killed = run_cli(
        "run",
        "--date",
        DAYS[1],
        "--force-reprocess",
        "-t",
        "shop.customers",
        cwd=demo,
        crash_at=point,
    )
    assert killed.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), killed.stderr

    rerun = run_cli("run", "--date", DAYS[1], "--json", cwd=demo)

    assert rerun.returncode == 0, rerun.stderr
    customers = next(
        t for t in json.loads(rerun.stdout)["load"]["tables"] if t["key"] == "shop.customers"
    )
    actions = {f["file_id"].split("/")[3]: f["action"] for f in customers["files"]}
    assert actions["25"] == "loaded"  # the replay the kill left undone, finished
    commits = file_commits(str(demo / CUSTOMERS))
    assert [c.split("/")[3] for c in commits][-2:] == ["24", "25"]
    assert content_checksum(str(demo / CUSTOMERS)) == _clean_checksum(demo, tmp_path)
    status = json.loads(run_cli("status", "--json", cwd=demo).stdout)
    loads = {row["table"]: row for row in status["load"]}
    assert loads["shop.customers"]["files"]["completed"] == 3
    assert loads["shop.customers"]["files"]["pending"] == 0
