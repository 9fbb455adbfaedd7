"""SIGKILL of real scheduler and worker processes, on both stores.

* A scheduler killed between recording a tick and queueing its job leaves SCHEDULED
  runs; two schedulers started together afterwards queue each exactly once.
* A worker killed right after its claim (before its first heartbeat), after starting a
  run, or after the run's data is committed but not recorded: its job goes back to the
  queue once the lease expires, another worker completes it once, and the Delta table
  has each file once.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from onceflow.config import load_config
from onceflow.schedule import backfill
from onceflow.state import open_store
from tests.helpers.cli import run_cli, spawn
from tests.helpers.schedule import make_project
from tests.helpers.state import fresh_store_url


@pytest.mark.slow
def test_a_scheduler_killed_after_recording_ticks_loses_and_doubles_nothing(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    url = fresh_store_url(request, tmp_path, backend)
    start = (datetime.now(UTC) - timedelta(days=5)).isoformat()  # 5 or 6 nightly ticks due
    schedule = {"name": "nightly", "cron": "0 2 * * *", "catch_up": "all", "start": start}
    config = str(make_project(tmp_path / "p", url, schedules=[schedule]))
    killed = run_cli("scheduler", "--once", "-c", config, crash_at="scheduler_after_tick")
    assert killed.returncode == -9, killed.stderr
    store = open_store(url)
    recorded = store.scheduled_runs.find()
    assert recorded and {r.state for r in recorded} == {"SCHEDULED"}
    assert store.queue.length() == 0
    procs = [spawn("scheduler", "--once", "-c", config) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    runs = store.scheduled_runs.find()
    assert len(runs) == len(recorded) in (5, 6)
    assert max(Counter(r.tick for r in runs).values()) == 1
    assert {r.state for r in runs} == {"PENDING"}
    with store.transaction() as tx:
        row = tx.execute("SELECT COUNT(*) AS n, COUNT(DISTINCT run_id) AS d FROM jobs").fetchone()
    assert row is not None and int(row["n"]) == int(row["d"]) == len(runs)
    for run in runs:
        steps = [(h.from_state, h.to_state) for h in store.scheduled_runs.history(run.id)]
        assert steps == [(None, "SCHEDULED"), ("SCHEDULED", "PENDING")]
    store.close()


def _rows_per_file(config_path: Path) -> Counter[str]:
    from deltalake import DeltaTable

    config = load_config(config_path)
    table = DeltaTable(str(Path(config.resolve(config.warehouse)) / "src" / "events"))
    return Counter(str(e.get("onceflow.file")) for e in table.history() if e.get("onceflow.file"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "point", ["worker_after_claim", "worker_after_start", "worker_before_complete"]
)
def test_a_sigkilled_workers_job_is_claimed_again_after_its_lease_and_completed_once(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str, point: str
) -> None:
    url = fresh_store_url(request, tmp_path, backend)
    config_path = make_project(tmp_path / "p", url)
    store = open_store(url)
    backfill(load_config(config_path), "2025-01-03", "2025-01-03", store=store)
    config = str(config_path)
    lease = "2"
    killed = run_cli("worker", "-c", config, "--lease-seconds", lease, crash_at=point)
    assert killed.returncode == -9, killed.stderr
    (run,) = store.scheduled_runs.find()
    assert run.state == ("PENDING" if point == "worker_after_claim" else "RUNNING")
    job = store.queue.live_job_of_run(run.id)
    assert job is not None and job.state == "claimed"
    started = time.monotonic()
    again = run_cli("worker", "-c", config, "--lease-seconds", lease, "--until-idle", "--json")
    assert again.returncode == 0, again.stderr
    assert time.monotonic() - started < 60  # back in the queue within the lease (+ a pass)
    done = store.scheduled_runs.get(run.id)
    assert done is not None and done.state == "COMPLETED"
    steps = [(h.from_state, h.to_state) for h in store.scheduled_runs.history(run.id)]
    assert steps.count(("RUNNING", "COMPLETED")) == 1
    if point != "worker_after_claim":
        assert ("RUNNING", "PENDING") in steps  # the expired lease sent it back
    finished = store.queue.get(job.id)
    assert finished is not None and finished.state == "completed" and finished.attempts == 2
    files = _rows_per_file(config_path)
    assert len(files) == 1 and set(files.values()) == {1}  # one file, committed once
    store.close()
