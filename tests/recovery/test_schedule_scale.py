"""Scale on both stores, with real processes: 20,000 jobs drained by 1, 2, 4 and 8 worker
processes, each claimed and completed exactly once; 4 scheduler processes over 10,000
ticks create exactly one run (and one job) each."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from onceflow.state import JobSpec, open_store
from tests.helpers.cli import spawn
from tests.helpers.schedule import make_project
from tests.helpers.state import fresh_store_url

ROOT = Path(__file__).resolve().parents[2]
JOBS = 20_000


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2, 4, 8])
def test_every_job_is_claimed_and_completed_exactly_once(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str, workers: int
) -> None:
    url = fresh_store_url(request, tmp_path, backend)
    store = open_store(url)
    for lo in range(0, JOBS, 1000):
        store.queue.enqueue_many(
            [
                JobSpec(pipeline="scale", payload={"i": i}, priority=1 + i % 10)
                for i in range(lo, lo + 1000)
            ]
        )
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.helpers.queue_worker",
                url,
                str(tmp_path / f"w{k}"),
                "10",
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(workers)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "READY"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("GO\n")
        p.stdin.close()
    for p in procs:
        assert p.wait(timeout=600) == 0
        assert p.stdout is not None
        p.stdout.close()
    done = Counter(
        int(line) for k in range(workers) for line in (tmp_path / f"w{k}").read_text().split()
    )
    assert len(done) == JOBS and max(done.values()) == 1  # none twice, none lost
    with store.transaction() as tx:
        rows = tx.execute(
            "SELECT state, attempts, COUNT(*) AS n FROM jobs GROUP BY state, attempts"
        ).fetchall()
    assert [(r["state"], int(r["attempts"]), int(r["n"])) for r in rows] == [("completed", 1, JOBS)]
    store.close()


@pytest.mark.slow
def test_four_schedulers_over_10000_ticks_create_one_run_each(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    url = fresh_store_url(request, tmp_path, backend)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=10_000) + timedelta(seconds=30)
    config = make_project(
        tmp_path / "p",
        url,
        schedules=[
            {"name": "minutely", "cron": "* * * * *", "catch_up": "all", "start": start.isoformat()}
        ],
    )
    procs = [spawn("scheduler", "--once", "--config", str(config)) for _ in range(4)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [e for _, e in outs]
    store = open_store(url)
    runs = store.scheduled_runs.find(limit=100_000)
    ticks = Counter(r.tick for r in runs)
    assert len(runs) >= 10_000 and max(ticks.values()) == 1
    assert {r.state for r in runs} == {"PENDING"}
    with store.transaction() as tx:
        row = tx.execute("SELECT COUNT(*) AS n, COUNT(DISTINCT run_id) AS d FROM jobs").fetchone()
    assert row is not None and int(row["n"]) == int(row["d"]) == len(runs)
    store.close()
