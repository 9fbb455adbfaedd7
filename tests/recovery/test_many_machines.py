"""Many machines for real: PostgreSQL-backed workers in two network namespaces of their
own (veth pairs to a forwarder in front of the database), one machine SIGKILLed mid-job
in one case, cut off the network mid-job and later restored in the other. Every run
completes exactly once, the cut-off worker's late completion is refused, and no file is
loaded twice. Skipped with the reason where namespaces cannot be made, except under CI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from onceflow.config import load_config
from onceflow.schedule import backfill
from onceflow.state import Store, open_store
from tests.helpers.cli import ONCEFLOW, cli_env
from tests.helpers.netns import Forwarder, Machine, random_subnet, require_netns
from tests.helpers.schedule import make_project
from tests.helpers.servers import PG_BASE, pg_state_url, unique

LEASE = "3"


@pytest.fixture
def cluster(pg_admin: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Two machines, the forwarder, a PostgreSQL schema and a project whose config per
    machine reaches the database through that machine's veth."""
    require_netns()
    schema = unique("of_netns")
    pg_admin.execute(f'CREATE SCHEMA "{schema}"')
    subnet = random_subnet()
    machines = [Machine.create(subnet, i) for i in range(2)]
    forwarder = Forwarder()
    procs: list[subprocess.Popen[str]] = []
    try:
        local = make_project(tmp_path / "p", pg_state_url(schema), days=6)
        data = yaml.safe_load(local.read_text())
        configs = []
        for m in machines:
            port = forwarder.listen(m.host_ip)
            url = PG_BASE.replace("127.0.0.1:5432", f"{m.host_ip}:{port}")
            path = local.with_name(f"onceflow-{m.name}.yml")
            path.write_text(
                yaml.safe_dump({**data, "state": f"{url}?options=-csearch_path%3D{schema}"})
            )
            configs.append(path)
        store = open_store(pg_state_url(schema))
        yield {
            "machines": machines,
            "configs": configs,
            "local": local,
            "store": store,
            "procs": procs,
            "tmp": tmp_path,
        }
        store.close()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
        forwarder.close()
        for m in machines:
            m.destroy()
        pg_admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _worker(
    c: dict[str, Any], i: int, *extra: str, pause: str | None = None
) -> subprocess.Popen[str]:
    env = cli_env()
    if pause:
        env["ONCEFLOW_PAUSE_AT"] = pause
    proc = subprocess.Popen(
        c["machines"][i].command(
            ONCEFLOW, "worker", "-c", str(c["configs"][i]), "--lease-seconds", LEASE, *extra
        ),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    c["procs"].append(proc)
    return proc


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"worker exited early: {proc.communicate()}")
        assert time.monotonic() < deadline, f"{path} not reached"
        time.sleep(0.05)


def _committed_files(local: Path) -> Counter[str]:
    from deltalake import DeltaTable

    config = load_config(local)
    table = DeltaTable(str(Path(config.resolve(config.warehouse)) / "src" / "events"))
    return Counter(str(e.get("onceflow.file")) for e in table.history() if e.get("onceflow.file"))


def _check_exactly_once(store: Store, local: Path, dates: int) -> None:
    runs = store.scheduled_runs.find()
    assert len(runs) == dates and {r.state for r in runs} == {"COMPLETED"}
    for run in runs:
        steps = [(h.from_state, h.to_state) for h in store.scheduled_runs.history(run.id)]
        assert steps.count(("RUNNING", "COMPLETED")) == 1, steps
    files = _committed_files(local)
    assert len(files) == dates and set(files.values()) == {1}  # no data written twice


@pytest.mark.slow
def test_a_sigkilled_machines_jobs_complete_once_on_the_other(cluster: dict[str, Any]) -> None:
    c = cluster
    store: Store = c["store"]
    assert backfill(load_config(c["local"]), "2025-01-01", "2025-01-04", store=store).created
    gate = c["tmp"] / "gate-a"
    a = _worker(c, 0, "--concurrency", "2", pause=f"worker_after_start:{gate}")
    _wait_for(Path(f"{gate}.reached"), a)
    assert [r.state for r in store.scheduled_runs.find() if r.state == "RUNNING"]
    os.kill(a.pid, signal.SIGKILL)  # the machine's worker dies mid-job
    a.communicate()
    b = _worker(c, 1, "--concurrency", "2", "--until-idle", "--json")
    out, err = b.communicate(timeout=180)
    assert b.returncode == 0, err
    assert json.loads(out)["completed"] == 4
    _check_exactly_once(store, c["local"], 4)


@pytest.mark.slow
def test_a_machine_cut_off_mid_job_is_fenced_when_it_comes_back(cluster: dict[str, Any]) -> None:
    c = cluster
    store: Store = c["store"]
    backfill(load_config(c["local"]), "2025-01-01", "2025-01-02", store=store)
    gate = c["tmp"] / "gate-a"
    # A extracts and loads its run, then is held before recording it: cut it off there
    a = _worker(c, 0, "--until-idle", "--json", pause=f"worker_before_complete:{gate}")
    _wait_for(Path(f"{gate}.reached"), a)
    (held,) = [r for r in store.scheduled_runs.find() if r.state == "RUNNING"]
    c["machines"][0].cut()
    b = _worker(c, 1, "--until-idle", "--json")
    out, err = b.communicate(timeout=180)
    assert b.returncode == 0, err
    assert json.loads(out)["completed"] == 2  # A's run too, once its lease expired
    c["machines"][0].restore()
    gate.touch()  # A goes on and tries to record its completion
    out_a, err_a = a.communicate(timeout=120)
    assert a.returncode == 0, err_a
    assert json.loads(out_a)["lost"] == 1 and json.loads(out_a)["completed"] == 0
    assert f"record of run {held.id} refused, nothing recorded" in err_a
    done = store.scheduled_runs.get(held.id)
    assert done is not None and done.state == "COMPLETED" and done.worker != held.worker
    _check_exactly_once(store, c["local"], 2)
