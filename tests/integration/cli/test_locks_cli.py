"""Lock options through the real CLI: --force-unlock on run and load, the locks in
`status`, the configured lease length, and a run whose load fails."""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime
from pathlib import Path

import pytest

from onceflow.config import load_config
from onceflow.demo import init_project
from onceflow.extract import extract
from onceflow.pipeline import pipeline_lock
from onceflow.state import open_store
from tests.helpers.cli import run_cli

DAY = "2025-01-10"


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    init_project(tmp_path / "demo")
    return tmp_path / "demo"


def _store(demo: Path) -> object:
    return open_store(f"sqlite:///{demo / '.onceflow' / 'state.db'}")


def test_run_with_force_unlock_takes_the_lock_from_its_holder_and_names_it(demo: Path) -> None:
    store = _store(demo)
    token = store.locks.acquire("pipeline:demo")
    # another pipeline sharing the state store: its locks are not ours to release
    others = {name: store.locks.acquire(name) for name in ("pipeline:other", "load:other/table")}
    blocked = run_cli("run", "--date", DAY, cwd=demo)
    assert blocked.returncode == 1 and f"held by pid {os.getpid()}" in blocked.stderr

    forced = run_cli("run", "--date", DAY, "--force-unlock", "--json", cwd=demo)
    assert forced.returncode == 0, forced.stderr
    assert f"force-released pipeline:demo held by pid {os.getpid()}" in forced.stderr
    assert json.loads(forced.stdout)["load"]["counts"]["loaded"] == 2
    assert not store.locks.holds("pipeline:demo", token)
    assert store.locks.holder("pipeline:demo") is None
    for name, other in others.items():
        assert store.locks.holds(name, other), name


def test_load_with_force_unlock_releases_only_the_tables_it_loads(demo: Path) -> None:
    assert run_cli("extract", "--date", DAY, cwd=demo).returncode == 0
    store = _store(demo)
    orders_lock = f"load:{(demo / 'warehouse' / 'shop' / 'orders').resolve()}"
    table = store.locks.acquire(orders_lock)
    pipeline = store.locks.acquire("pipeline:demo")
    blocked = run_cli("load", "--json", cwd=demo)
    assert blocked.returncode == 1
    failed = {t["key"]: t for t in json.loads(blocked.stdout)["tables"]}
    assert f"pid {os.getpid()}" in failed["shop.orders"]["error"]

    forced = run_cli("load", "--tables", "orders", "--force-unlock", "--json", cwd=demo)
    assert forced.returncode == 0, forced.stderr
    assert f"force-released {orders_lock}" in forced.stderr
    assert not store.locks.holds(orders_lock, table)
    # load takes no pipeline lock, so it releases none
    assert store.locks.holds("pipeline:demo", pipeline)


def test_status_shows_who_holds_the_pipeline_lock(demo: Path) -> None:
    assert run_cli("run", "--date", DAY, cwd=demo).returncode == 0
    assert json.loads(run_cli("status", "--json", cwd=demo).stdout)["locks"] == []
    assert "locks: none held" in run_cli("status", cwd=demo).stdout

    _store(demo).locks.acquire("pipeline:demo")
    report = json.loads(run_cli("status", "--json", cwd=demo).stdout)
    [lock] = report["locks"]
    assert lock["name"] == "pipeline:demo" and lock["stale"] is None
    assert lock["holder"].startswith(f"pid {os.getpid()} on ")
    text = run_cli("status", cwd=demo).stdout
    assert "lock pipeline:demo: held by pid" in text


def test_status_says_a_stale_lock_once_and_who_held_it(demo: Path) -> None:
    """It read `stale: pid N is no longer running by pid N on host`."""
    import subprocess
    import sys

    state = load_config(demo / "onceflow.yml").state_url
    code = (
        "import os; from onceflow.state import open_store; "
        f"open_store({state!r}).locks.acquire('pipeline:demo'); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=demo)
    text = run_cli("status", cwd=demo).stdout
    line = next(x for x in text.splitlines() if x.startswith("lock pipeline:demo:"))
    assert line.startswith("lock pipeline:demo: stale, held by pid "), line
    assert line.endswith("is no longer running)") and line.count("pid ") == 2, line


def test_status_json_gives_each_lock_the_fields_of_seed_002s_lock_file(demo: Path) -> None:
    held = _store(demo).locks.acquire("pipeline:demo")
    [lock] = json.loads(run_cli("status", "--json", cwd=demo).stdout)["locks"]
    record = _store(demo).locks.holder("pipeline:demo")
    assert record is not None and record.token == held
    assert {k: lock[k] for k in ("lock_name", "pid", "hostname", "acquired_at", "timeout_at")} == {
        "lock_name": "pipeline:demo",
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "acquired_at": record.acquired_at,
        "timeout_at": record.expires_at,
    }
    assert lock["heartbeat_at"] == record.heartbeat_at
    assert datetime.fromisoformat(lock["timeout_at"]) > datetime.fromisoformat(lock["acquired_at"])
    # the fields it had are kept
    assert (lock["name"], lock["stale"]) == ("pipeline:demo", None)
    assert lock["holder"].startswith(f"pid {os.getpid()} on ")


def test_lock_ttl_minutes_sets_the_lease_length(demo: Path) -> None:
    config_path = demo / "onceflow.yml"
    config_path.write_text(
        config_path.read_text(encoding="utf-8") + "lock_ttl_minutes: 10\n", encoding="utf-8"
    )
    config = load_config(config_path)
    store = open_store(config.state_url)
    leases: list[float] = []

    def seen(_result: object) -> None:
        holder = store.locks.holder(config.pipeline_lock_name)
        assert holder is not None
        span = datetime.fromisoformat(holder.expires_at) - datetime.fromisoformat(
            holder.heartbeat_at
        )
        leases.append(span.total_seconds())

    extract(config, DAY, store=store, lock_timeout=0, progress=seen)
    assert leases and all(abs(s - 600) < 5 for s in leases), leases
    assert store.locks.holder(config.pipeline_lock_name) is None  # released after


def test_lock_ttl_minutes_must_be_positive(demo: Path) -> None:
    config_path = demo / "onceflow.yml"
    config_path.write_text(
        config_path.read_text(encoding="utf-8") + "lock_ttl_minutes: 0\n", encoding="utf-8"
    )
    checked = run_cli("check", cwd=demo)
    assert checked.returncode == 2
    assert "lock_ttl_minutes" in checked.stderr


def test_a_run_whose_load_fails_is_marked_failed_until_a_run_loads_it(demo: Path) -> None:
    # a file where the orders table's folder should be: the load of that table fails
    blocker = demo / "warehouse" / "shop" / "orders"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a table", encoding="utf-8")
    failed = run_cli("run", "--date", DAY, "--json", cwd=demo)
    assert failed.returncode == 1
    summary = json.loads(failed.stdout)
    assert summary["counts"]["failed"] == 0  # every extraction committed...
    [orders] = [t for t in summary["load"]["tables"] if t["key"] == "shop.orders"]
    assert "cannot open the Delta table" in orders["error"]  # ...the load did not
    assert "\n" not in orders["error"] and "\x1b" not in orders["error"]  # one clean line
    status = json.loads(run_cli("status", "--json", cwd=demo).stdout)
    assert [t["error"] is not None for t in status["load"]] == [True, False]
    assert status["status"] == "failed"

    blocker.unlink()
    fixed = run_cli("run", "--date", DAY, "--json", cwd=demo)
    assert fixed.returncode == 0, fixed.stderr
    assert json.loads(run_cli("status", "--json", cwd=demo).stdout)["status"] == "completed"


def test_pipeline_lock_context_manager_keeps_a_run_out_until_it_exits(demo: Path) -> None:
    config = load_config(demo / "onceflow.yml")
    with pipeline_lock(config) as lease:
        held = _store(demo).locks.holder("pipeline:demo")
        assert held is not None and held.token == lease.token
        blocked = run_cli("run", "--date", DAY, cwd=demo)
        assert blocked.returncode == 1 and "pipeline:demo" in blocked.stderr
    assert _store(demo).locks.holder("pipeline:demo") is None
    assert run_cli("run", "--date", DAY, cwd=demo).returncode == 0


def test_force_unlock_name_takes_a_table_and_refuses_a_lock_not_held(demo: Path) -> None:
    """`--name` is a lock's name or a table's key, name or target (the table's load lock
    is named by its absolute location); a name no held lock has is exit 1, naming the
    locks held, where it used to print `nothing released` and exit 0."""
    store = _store(demo)
    orders = f"load:{(demo / 'warehouse' / 'shop' / 'orders').resolve()}"
    customers = f"load:{(demo / 'warehouse' / 'shop' / 'customers').resolve()}"
    for name in ("shop.orders", "load:shop.orders", "orders", "load:shop/orders", orders):
        store.locks.acquire(orders)
        pipeline = store.locks.acquire("pipeline:demo")
        released = run_cli("force-unlock", "--yes", "--name", name, cwd=demo)
        assert released.returncode == 0, (name, released.stderr)
        assert f"released {orders} (was pid {os.getpid()}" in released.stdout, name
        assert store.locks.holder(orders) is None, name
        assert store.locks.holds("pipeline:demo", pipeline), name  # only that one
        store.locks.release("pipeline:demo", pipeline)

    pipeline = store.locks.acquire("pipeline:demo")
    for name in ("shop.customers", "nosuch", "load:shop/orders"):
        refused = run_cli("force-unlock", "--yes", "--name", name, cwd=demo)
        assert refused.returncode == 1, (name, refused.stdout)
        assert refused.stderr.count("\n") == 1, refused.stderr  # one line
        assert f"--name {name}" in refused.stderr
        assert "is not held; the locks held: pipeline:demo" in refused.stderr
    assert f"({customers})" in run_cli("force-unlock", "--name", "customers", cwd=demo).stderr
    assert store.locks.holds("pipeline:demo", pipeline)

    store.locks.release("pipeline:demo", pipeline)
    none_held = run_cli("force-unlock", "--yes", "--name", "pipeline:demo", cwd=demo)
    assert none_held.returncode == 1 and "no locks are held" in none_held.stderr
    assert run_cli("force-unlock", "--yes", cwd=demo).stdout == "no locks held\n"


def test_force_unlock_name_takes_a_standalone_target(tmp_path: Path) -> None:
    """A table of `load --path` (no config file) is found by its target in the tracker."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "drop").mkdir()
    pq.write_table(pa.table({"id": [1, 2, 3]}), tmp_path / "drop" / "a.parquet")
    loaded = run_cli("load", "--path", "drop/", "--target", "raw/events", cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    store = open_store(f"sqlite:///{tmp_path / '.onceflow' / 'state.db'}")
    lock = f"load:{(tmp_path / 'warehouse' / 'raw' / 'events').resolve()}"
    store.locks.acquire(lock)
    released = run_cli("force-unlock", "--yes", "--name", "load:raw/events", cwd=tmp_path)
    assert released.returncode == 0, released.stderr
    assert f"released {lock} " in released.stdout
    assert store.locks.holder(lock) is None
