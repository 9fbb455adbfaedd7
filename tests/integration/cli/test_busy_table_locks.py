"""Table load locks held by another process for a while (a maintenance command, a loader):
`optimize` skips only that table, a run waits a bounded time for it, a wait is logged,
and `status` marks a dead holder's table lock stale."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from onceflow import pipeline
from onceflow.config import load_config
from onceflow.demo import init_project
from tests.helpers.cli import run_cli

DAY = "2025-01-10"

HOLD = """
import sys, time
from onceflow.state import Lease, open_store
with Lease(open_store(sys.argv[1]), sys.argv[2], ttl=120):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    init_project(tmp_path / "demo")
    return tmp_path / "demo"


def _state(demo: Path) -> str:
    return load_config(demo / "onceflow.yml").state_url


def _table_lock(demo: Path, table: str = "orders") -> str:
    return f"load:{(demo / 'warehouse' / 'shop' / table).resolve()}"


@contextmanager
def held(demo: Path, lock: str, seconds: float) -> Iterator[int]:
    """Another process holding `lock` for `seconds` (or until the block ends); its pid."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, _state(demo), lock, str(seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=demo,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.strip() == "held", proc.stderr.read() if proc.stderr else line
            yield proc.pid
        finally:
            proc.kill()
            proc.wait(timeout=30)


def test_optimize_skips_a_busy_table_naming_its_holder_and_compacts_the_others(
    demo: Path,
) -> None:
    """It stopped at the busy table: later ones untried, earlier ones unreported, no JSON."""
    assert run_cli("run", "--date", DAY, cwd=demo).returncode == 0
    with held(demo, _table_lock(demo), 120) as pid:
        out = run_cli("optimize", "--no-vacuum", "--json", cwd=demo)
        text = run_cli("optimize", "--no-vacuum", cwd=demo)
    assert out.returncode == 1, out.stderr
    rows = {r["table"]: r for r in json.loads(out.stdout)}
    assert set(rows) == {"shop.orders", "shop.customers"}
    busy = rows["shop.orders"]
    assert busy["busy"] is True and f"held by pid {pid} on " in busy["skipped"]
    assert "version" in rows["shop.customers"] and "skipped" not in rows["shop.customers"]
    assert "not optimized, their load lock is held: shop.orders" in out.stderr

    assert text.returncode == 1, text.stderr
    lines = text.stdout.splitlines()
    assert any(
        x.startswith(f"shop.orders: skipped (lock '{_table_lock(demo)}' is held by pid {pid}")
        for x in lines
    ), lines
    assert any(x.startswith("shop.customers: version ") for x in lines), lines


def test_optimize_of_a_table_not_created_yet_is_no_failure(demo: Path) -> None:
    out = run_cli("optimize", "--json", cwd=demo)
    assert out.returncode == 0, out.stderr
    assert all(r["skipped"] == "no table yet" and "busy" not in r for r in json.loads(out.stdout))


def test_run_waits_for_a_table_lock_held_for_a_moment_and_says_for_whom(demo: Path) -> None:
    """It failed at once (`waited 0s`) on the lock `fix-inconsistencies` held briefly."""
    with held(demo, _table_lock(demo), 6) as pid:
        out = run_cli("run", "--date", DAY, "--json", cwd=demo)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["load"]["counts"]["loaded"] == 2
    waits = [x for x in out.stderr.splitlines() if "waiting up to" in x]
    assert len(waits) == 1, out.stderr
    assert f"waiting up to 30 s for lock '{_table_lock(demo)}' held by pid {pid} on " in waits[0]


def test_run_fails_a_table_whose_lock_stays_held_past_the_bounded_wait(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "TABLE_LOCK_WAIT_SECONDS", 1.0)
    config = load_config(demo / "onceflow.yml")
    with held(demo, _table_lock(demo), 120) as pid:
        summary = pipeline.run(config, DAY)
    results = {r.key: r for r in summary.load.results} if summary.load else {}
    assert results["shop.customers"].ok
    error = results["shop.orders"].error or ""
    assert f"held by pid {pid} on " in error and "waited 1s" in error
    assert summary.run.status == "failed"


def test_run_lock_timeout_logs_once_whom_it_waits_for(demo: Path) -> None:
    with held(demo, "pipeline:demo", 120) as pid:
        out = run_cli("run", "--date", DAY, "--lock-timeout", "2", cwd=demo)
    assert out.returncode == 1
    waits = [x for x in out.stderr.splitlines() if "waiting up to" in x]
    assert len(waits) == 1, out.stderr
    assert f"waiting up to 2 s for lock 'pipeline:demo' held by pid {pid} on " in waits[0]


def test_status_marks_a_dead_holders_table_lock_stale_in_the_load_table(demo: Path) -> None:
    assert run_cli("run", "--date", DAY, cwd=demo).returncode == 0
    code = (
        "import os, sys; from onceflow.state import open_store; "
        "open_store(sys.argv[1]).locks.acquire(sys.argv[2]); os._exit(0)"
    )
    lock = _table_lock(demo)
    subprocess.run([sys.executable, "-c", code, _state(demo), lock], check=True, cwd=demo)

    report = json.loads(run_cli("status", "--json", cwd=demo).stdout)
    row = next(r for r in report["load"] if r["table"] == "shop.orders")
    assert row["lock"].startswith("pid ") and "is no longer running" in row["lock_stale"]
    other = next(r for r in report["load"] if r["table"] == "shop.customers")
    assert other["lock"] is None and other["lock_stale"] is None

    text = run_cli("status", cwd=demo).stdout
    [line] = [x for x in text.splitlines() if "shop.orders" in x and "held by pid" in x]
    assert "stale, held by pid " in line and "is no longer running" in line, line
