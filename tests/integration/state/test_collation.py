"""The PostgreSQL store compares text byte-wise (COLLATE "C"), as SQLite does, whatever
the database's default collation.

The store keeps times as ISO text and compares and orders them in SQL. Under a
linguistic collation (en_US.UTF-8 from initdb, an ICU locale) text order is not time
order: ICU puts '.' before '+', so 06:30:00.25+00:00 sorted before 06:30:00+00:00. The
test servers' databases are C.UTF-8, which hid it; these tests open stores in a database
made with ICU's `en` as its default collation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from onceflow.state import JobSpec, RunSpec, Store, open_store
from onceflow.state.migrations import LATEST_VERSION
from onceflow.state.scheduled_runs import ScheduledRunRecord
from tests.helpers.servers import PG_BASE, missing, unique
from tests.helpers.state import fresh_store_url

BASE = datetime(2025, 1, 24, 6, 30, tzinfo=UTC)


def at(seconds: float) -> str:
    """The instant `seconds` after 06:30:00 UTC, as the store keeps it (`isoformat()`:
    no fraction on a whole second, six digits otherwise)."""
    return (BASE + timedelta(seconds=seconds)).isoformat()


def spec(tick: str) -> RunSpec:
    return RunSpec("p", "nightly", tick, "2025-01-23", at(-86400), at(0))


def ticks(runs: Sequence[ScheduledRunRecord]) -> list[str]:
    return [r.tick for r in runs]


@pytest.fixture
def linguistic_db(pg_admin: Any) -> Iterator[str]:
    """The URL of a new database whose default collation is ICU's `en`; dropped after."""
    if pg_admin.execute("SELECT 1 FROM pg_collation WHERE collprovider = 'i'").fetchone() is None:
        missing("PostgreSQL at 127.0.0.1:5432 has no ICU collations (built without ICU)")
    name = unique("of_icu")
    try:
        pg_admin.execute(
            f'CREATE DATABASE "{name}" TEMPLATE template0 LOCALE_PROVIDER icu '
            "ICU_LOCALE 'en' LOCALE 'C.UTF-8'"
        )
    except Exception as error:  # LOCALE_PROVIDER needs PostgreSQL 15
        missing(f"cannot create a database with ICU's collation `en` ({error})")
    yield urlsplit(PG_BASE)._replace(path=f"/{name}").geturl()
    pg_admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def linguistic_store(linguistic_db: str) -> Iterator[Store]:
    """A new store in `linguistic_db`."""
    with open_store(linguistic_db) as store:
        yield store


def test_the_linguistic_database_orders_iso_times_otherwise_than_time(
    linguistic_db: str,
) -> None:
    # what the other tests rely on: without it they would pass on any store
    import psycopg

    with psycopg.connect(linguistic_db) as conn:
        row = conn.execute("SELECT %s::text < %s::text", (at(0), at(0.25))).fetchone()
    assert row == (False,)


def test_due_at_an_exact_tick_and_at_a_fractional_instant_gives_the_runs_due_by_then(
    linguistic_store: Store,
) -> None:
    runs = linguistic_store.scheduled_runs
    runs.create([spec(at(0)), spec(at(0.5))])
    assert ticks(runs.due(at(-0.25))) == []
    assert ticks(runs.due(at(0))) == [at(0)]  # not the one half a second later
    assert ticks(runs.due(at(0.25))) == [at(0)]  # was missed
    assert ticks(runs.due(at(0.5))) == [at(0), at(0.5)]


def test_latest_of_picks_the_later_of_two_ticks_in_one_second(linguistic_store: Store) -> None:
    runs = linguistic_store.scheduled_runs
    runs.create([spec(at(0.5)), spec(at(0))])
    latest = runs.latest_of("p", "nightly")
    assert latest is not None
    run = runs.get(latest)
    assert run is not None and run.tick == at(0.5)


def test_run_history_is_listed_in_time_order(linguistic_store: Store) -> None:
    runs = linguistic_store.scheduled_runs
    ids = runs.create([spec(at(1)), spec(at(0.5)), spec(at(0))])
    assert ticks(runs.find()) == [at(0), at(0.5), at(1)]
    assert ticks(runs.find(newest_first=True)) == [at(1), at(0.5), at(0)]
    # the run that ended last, whichever ended first in its own second
    for run_id, ended in zip(ids, (at(0), at(0.5), at(-1)), strict=True):
        for step in (("SCHEDULED", "PENDING"), ("PENDING", "RUNNING")):
            runs.transition(run_id, *step)
        runs.transition(run_id, "RUNNING", "COMPLETED", values={"ended_at": ended})
    last = runs.last_in_state("COMPLETED")
    assert last is not None and last.ended_at == at(0.5)
    # validations, newest first (`onceflow validate` history, the report)
    rules = linguistic_store.rules
    for vid, started in (("v0", at(0)), ("v1", at(0.5)), ("v2", at(-0.5))):
        rules.begin(vid, "p", "s.t", stage="post_load", fingerprint="f")
        with linguistic_store.transaction() as tx:
            tx.execute(
                "UPDATE validations SET started_at = ? WHERE validation_id = ?", (started, vid)
            )
    assert [v.validation_id for v in rules.validations("p")] == ["v1", "v0", "v2"]


def test_cutoffs_take_the_runs_that_ended_before_them(linguistic_store: Store) -> None:
    runs = linguistic_store.scheduled_runs
    early, late = runs.create([spec(at(0)), spec(at(0.5))])
    for run_id, ended in ((early, at(0)), (late, at(0.5))):
        runs.transition(run_id, "SCHEDULED", "CANCELLED", values={"ended_at": ended})
    # `onceflow runs purge`: ended before the cutoff, a quarter second after 06:30:00
    assert [r.id for r in runs.finished_before(at(0.25), pipelines=["p"])] == [early]
    assert runs.delete_finished([early, late], before=at(0.25))[0] == [early]


def test_lease_expiries_are_judged_by_time(linguistic_store: Store) -> None:
    """Guards, not a fix: a lock's expiry is compared in Python and only matched for
    equality in SQL, a job's lease is a number; both held under ICU before too."""
    locks = linguistic_store.locks
    token, _ = locks.try_acquire("pipeline:p", ttl=0.3)
    assert token is not None and locks.holds("pipeline:p", token)
    assert locks.try_acquire("pipeline:p", ttl=30)[0] is None  # live: refused
    time.sleep(0.35)
    assert not locks.holds("pipeline:p", token)
    taker, _ = locks.try_acquire("pipeline:p", ttl=30)  # expired: taken over
    assert taker is not None and locks.holds("pipeline:p", taker)
    queue = linguistic_store.queue
    queue.enqueue(JobSpec(pipeline="p", tenant="acme"))
    (job,) = queue.claim("w", lease_seconds=0.3)
    assert queue.requeue_expired() == []
    time.sleep(0.35)
    assert [j.id for j in queue.requeue_expired()] == [job.id]


def _not_bytewise(store: Store) -> list[tuple[str, str, str | None]]:
    """The text columns of the store's tables that do not compare as bytes."""
    with store.transaction() as tx:
        rows = tx.execute(
            "SELECT table_name, column_name, collation_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND data_type = 'text' "
            "AND (collation_name IS NULL OR collation_name <> 'C') "
            "ORDER BY table_name, column_name"
        ).fetchall()
    return [(r["table_name"], r["column_name"], r["collation_name"]) for r in rows]


def test_a_store_made_by_an_older_onceflow_compares_bytewise_once_upgraded(
    linguistic_db: str,
) -> None:
    old = open_store(linguistic_db, migrate=False)
    assert old.migrate(target=12) == 12
    old.scheduled_runs.create([spec(at(0.5)), spec(at(0))])
    assert _not_bytewise(old)  # version 12 took the database's collation
    old.close()
    with open_store(linguistic_db) as new:
        assert new.schema_version() == LATEST_VERSION
        assert _not_bytewise(new) == []
        runs = new.scheduled_runs
        assert ticks(runs.due(at(0))) == [at(0)]
        assert ticks(runs.due(at(0.25))) == [at(0)]
        latest = runs.latest_of("p", "nightly")
        assert latest is not None
        assert [r.tick for r in runs.find() if r.id == latest] == [at(0.5)]
        # its unique key still makes a tick's recording idempotent
        assert runs.create([spec(at(0)), spec(at(0.5))]) == []


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_every_text_column_of_a_new_store_compares_bytewise(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    """Also the check on migrations to come: a text column they add without
    `COLLATE "C"` fails here."""
    with open_store(fresh_store_url(request, tmp_path, backend)) as store:
        assert _not_bytewise(store) == []
        with store.transaction() as tx:
            row = tx.execute(
                "SELECT COUNT(*) AS n FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND collation_name = 'C'"
            ).fetchone()
        assert row is not None and row["n"] > 100  # the query looked at the store


def _shape(store: Store) -> tuple[list[tuple[Any, ...]], list[str]]:
    """The store's columns (type, collation, nullability, default) and index definitions,
    with its schema's name left out."""
    with store.transaction() as tx:
        schema = str((tx.execute("SELECT current_schema() AS s").fetchone() or {})["s"])
        columns = tx.execute(
            "SELECT table_name, column_name, data_type, collation_name, is_nullable, "
            "column_default, is_identity FROM information_schema.columns "
            "WHERE table_schema = current_schema() ORDER BY table_name, column_name"
        ).fetchall()
        indexes = tx.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY indexname"
        ).fetchall()
    return (
        [tuple(r.values()) for r in columns],
        [str(r["indexdef"]).replace(f"{schema}.", "") for r in indexes],
    )


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_store_upgraded_from_version_12_has_the_schema_of_a_new_one(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    upgraded_url = fresh_store_url(request, tmp_path, backend)
    old = open_store(upgraded_url, migrate=False)
    old.migrate(target=12)
    old.close()
    with (
        open_store(upgraded_url) as upgraded,
        open_store(fresh_store_url(request, tmp_path, backend)) as new,
    ):
        assert _shape(upgraded) == _shape(new)


def test_an_upgrade_that_deadlocks_with_an_older_onceflows_transaction_is_run_again(
    linguistic_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The upgrade locks each table it alters until it commits: an older onceflow's
    transaction that holds one table and then reads another that the upgrade has locked
    makes a deadlock, and PostgreSQL rolls the upgrade back (it waited first, so its
    deadlock check runs first)."""
    import psycopg

    old = open_store(linguistic_db, migrate=False)
    old.migrate(target=12)
    old.close()
    # a worker of the older onceflow: a row of `jobs` (altered late) locked ...
    worker = psycopg.connect(linguistic_db)
    worker.execute(
        "INSERT INTO jobs (pipeline, tenant, priority, state, enqueued_at, "
        "run_after) VALUES ('p', 'acme', 5, 'queued', 0, 0)"
    )
    outcome: list[object] = []

    def upgrade() -> None:
        try:
            with open_store(linguistic_db) as store:
                outcome.append(store.schema_version())
        except Exception as error:
            outcome.append(error)

    caplog.set_level("INFO", logger="onceflow.state.db")
    upgrader = threading.Thread(target=upgrade)
    upgrader.start()
    with psycopg.connect(linguistic_db, autocommit=True) as watch:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the upgrade holds pipeline_runs, waits for jobs
            row = watch.execute(
                "SELECT COUNT(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE NOT l.granted AND c.relname = 'jobs'"
            ).fetchone()
            if row and row[0]:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the upgrade never waited for the table jobs")
    # ... then a read of `pipeline_runs` (altered first) in the same transaction
    worker.execute("SELECT COUNT(*) FROM pipeline_runs").fetchone()
    worker.commit()
    worker.close()
    upgrader.join(timeout=60)
    assert outcome == [LATEST_VERSION]
    assert any("deadlock detected" in r.getMessage() for r in caplog.records)


def test_a_text_column_written_collate_c_is_binary_text_on_sqlite(tmp_path: Path) -> None:
    """A migration writes a new text column once, `TEXT COLLATE "C"`, for both stores:
    SQLite knows no collation "C", and its default is the same byte order."""
    from onceflow.state.sqlite import SqliteDatabase

    db = SqliteDatabase(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with db.transaction() as tx:
            tx.execute(db.adapt_ddl('CREATE TABLE t (a TEXT COLLATE "C" NOT NULL)'))
            tx.executemany("INSERT INTO t (a) VALUES (?)", [(at(0.25),), (at(0),)])
            rows = tx.execute("SELECT a FROM t ORDER BY a").fetchall()
        assert [r["a"] for r in rows] == [at(0), at(0.25)]
    finally:
        db.close()
