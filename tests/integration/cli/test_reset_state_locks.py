"""reset-state while a run, an extraction or a load of the pipeline is live: refused with
the holder's name (or it waits up to --lock-timeout), so it never deletes what a live run
goes on writing. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from onceflow.errors import ConfigError, LockError
from onceflow.pipeline import Pipeline
from onceflow.state import Store
from tests.helpers.cli import run_cli, spawn
from tests.helpers.servers import pg_state_url, unique

DAY1, DAY2 = "2025-01-10", "2025-01-11"
RUN2 = "demo_20250111"


@pytest.fixture(params=["sqlite", "postgresql"])
def demo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """The demo project with DAY1 run, its state store on each backend."""
    from onceflow.demo import init_project

    folder = tmp_path / "demo"
    init_project(folder)
    schema = None
    if request.param == "postgresql":
        admin = request.getfixturevalue("pg_admin")
        schema = unique("of_reset")
        admin.execute(f'CREATE SCHEMA "{schema}"')
        config = folder / "onceflow.yml"
        text = config.read_text(encoding="utf-8")
        assert "state: sqlite:///.onceflow/state.db\n" in text
        config.write_text(
            text.replace("sqlite:///.onceflow/state.db", pg_state_url(schema)), encoding="utf-8"
        )
    assert run_cli("run", "--date", DAY1, cwd=folder).returncode == 0
    yield folder
    if schema is not None:
        request.getfixturevalue("pg_admin").execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def pipeline(demo: Path) -> Iterator[Pipeline]:
    """The demo's pipeline; its store's connection closed after the test."""
    opened = Pipeline.from_file(demo / "onceflow.yml")
    yield opened
    opened.store.close()


@contextmanager
def _released_after(store: Store, lock: str, token: str, seconds: float) -> Iterator[None]:
    """Another process's lock, given up `seconds` after the block starts (and before it
    ends, whatever happens in it)."""

    def release() -> None:
        try:
            store.locks.release(lock, token)
        finally:
            store.close()  # this thread's connection

    timer = threading.Timer(seconds, release)
    timer.start()
    try:
        yield
    finally:
        timer.join()


def test_every_form_of_reset_state_is_refused_naming_the_live_run_and_the_run_finishes(
    demo: Path, pipeline: Pipeline, tmp_path: Path
) -> None:
    """`reset-state --yes` deleted the run row and the tracker under a run paused after a
    Delta commit, which then died with `run ... is not in the state store`."""
    gate = tmp_path / "gate"
    run = spawn(
        "run", "--date", DAY2, cwd=demo, env={"ONCEFLOW_PAUSE_AT": f"after_delta_commit:{gate}"}
    )
    try:
        deadline = time.monotonic() + 120
        while not Path(f"{gate}.reached").exists():  # committed, tracker not updated yet
            assert run.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        store = pipeline.store
        # the run's other table may still track files while this one waits at the gate:
        # a refused reset deletes nothing
        tracked = {f.target_uri for f in store.files.find()}
        for form in (
            ["--yes", "--date", DAY2],
            ["--yes"],
            ["--failed"],
            ["--table", "shop.orders", "--date", DAY2],
            ["--validation"],
        ):
            refused = run_cli("reset-state", *form, cwd=demo)
            assert refused.returncode == 1, (form, refused.stdout, refused.stderr)
            assert refused.stderr.startswith(
                f"error: lock 'pipeline:demo' is held by pid {run.pid} on "
            ), (form, refused.stderr)
            assert "--lock-timeout" in refused.stderr
        assert store.runs.get(RUN2) is not None
        assert tracked <= {f.target_uri for f in store.files.find()}

        gate.touch()
        _out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert pipeline.store.runs.get(RUN2).status == "completed"  # type: ignore[union-attr]
    forgot = run_cli("reset-state", "--yes", "--date", DAY2, cwd=demo)
    assert forgot.returncode == 0, forgot.stderr
    assert pipeline.store.runs.get(RUN2) is None


def test_reset_state_is_refused_while_a_scheduled_run_or_a_load_holds_its_own_lock(
    demo: Path, pipeline: Pipeline
) -> None:
    # a scheduled run holds only its run lock, a load only its table's lock
    store = pipeline.store
    orders = f"load:{(demo / 'warehouse' / 'shop' / 'orders').resolve()}"
    for lock in ("pipeline:demo@demo_20250112", orders):
        token = store.locks.acquire(lock, ttl=600)
        for form in ({}, {"failed": True}, {"table": "shop.orders"}, {"validation": True}):
            with pytest.raises(LockError) as refused:
                pipeline.reset_state(DAY1, **form)  # type: ignore[arg-type]
            assert f"lock {lock!r} is held by pid {os.getpid()} on " in str(refused.value)
        assert store.locks.holder("pipeline:demo") is None  # its own lock given back
        store.locks.release(lock, token)
    assert pipeline.store.runs.get("demo_20250110") is not None
    assert pipeline.reset_state(DAY1)["run_id"] == "demo_20250110"
    assert pipeline.store.runs.get("demo_20250110") is None


def test_reset_state_waits_up_to_its_lock_timeout_for_a_run_to_end(pipeline: Pipeline) -> None:
    store = pipeline.store
    lock = "pipeline:demo@demo_20250112"
    token = store.locks.acquire(lock, ttl=600)
    with pytest.raises(LockError, match=r"waited 0\.3s"):
        pipeline.reset_state(DAY1, failed=True, lock_timeout=0.3)
    started = time.monotonic()
    with _released_after(store, lock, token, 0.5):
        assert pipeline.reset_state(DAY1, lock_timeout=30)["run_id"] == "demo_20250110"
    assert 0.4 < time.monotonic() - started < 20
    with pytest.raises(ConfigError, match="--lock-timeout: must be 0 or more seconds"):
        pipeline.reset_state(DAY1, lock_timeout=-1)


def test_reset_state_lock_timeout_is_an_option_of_the_command(
    demo: Path, pipeline: Pipeline
) -> None:
    store = pipeline.store
    token = store.locks.acquire("pipeline:demo", ttl=600)
    with _released_after(store, "pipeline:demo", token, 0.5):
        waited = run_cli("reset-state", "--failed", "--lock-timeout", "30", "--json", cwd=demo)
    assert waited.returncode == 0, waited.stderr
