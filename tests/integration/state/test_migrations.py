"""Migrations and transactions of the store, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from onceflow.errors import StateError
from onceflow.state import JobSpec, RunSpec, Store, open_store
from onceflow.state.migrations import LATEST_VERSION, MIGRATIONS
from tests.helpers.servers import PG_BASE, pg_state_url, unique
from tests.helpers.state import fresh_store_url

WINDOW = ("2025-01-23T00:00:00+00:00", "2025-01-24T00:00:00+00:00")


def test_fresh_store_is_at_latest_version(store: Store) -> None:
    assert store.schema_version() == LATEST_VERSION
    assert store.migrate() == LATEST_VERSION  # idempotent


def test_failed_transaction_rolls_back(store: Store) -> None:
    store.runs.begin("r", "p", "2025-01-23", WINDOW)
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.execute("UPDATE pipeline_runs SET status = ? WHERE run_id = ?", ("bogus", "r"))
        raise RuntimeError("abort")
    run = store.runs.get("r")
    assert run is not None and run.status == "running"


@pytest.mark.parametrize("start_version", range(LATEST_VERSION))
def test_migrates_from_every_earlier_version(
    request: pytest.FixtureRequest, tmp_path: Path, start_version: int, backend: str
) -> None:
    url = fresh_store_url(request, tmp_path, backend)
    old = open_store(url, migrate=False)
    assert old.migrate(target=start_version) == start_version
    if start_version >= 1:
        old.runs.begin("r", "p", "2025-01-23", WINDOW)
        with old.transaction() as tx:
            tx.execute(
                "INSERT INTO extractions (run_id, table_key, source, table_name, mode, status, "
                "record_count, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                ("r", "s.a", "s", "a", "full", "completed", 7, "2025-01-23T00:00:00+00:00"),
            )
    old.close()
    new = open_store(url)
    assert new.schema_version() == LATEST_VERSION
    if start_version >= 1:
        record = new.extractions.of_run("r")["s.a"]
        assert (record.status, record.record_count) == ("completed", 7)
    new.close()


def test_version_6_keeps_runs_recorded_before_it_and_records_duration_after(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    url = fresh_store_url(request, tmp_path, backend)
    old = open_store(url, migrate=False)
    assert old.migrate(target=5) == 5
    (run_id,) = old.scheduled_runs.create(
        [RunSpec("p", "nightly", "2025-01-24T07:00:00+00:00", "2025-01-23", *WINDOW)]
    )
    old.scheduled_runs.transition(run_id, "SCHEDULED", "PENDING")
    old.close()
    new = open_store(url)
    assert new.schema_version() == LATEST_VERSION
    run = new.scheduled_runs.get(run_id)
    assert run is not None and run.state == "PENDING"
    assert (run.duration_seconds, run.pipeline_logging_id) == (None, None)
    new.scheduled_runs.transition(
        run_id, "PENDING", "RUNNING", values={"pipeline_logging_id": "log-1"}
    )
    new.scheduled_runs.transition(run_id, "RUNNING", "COMPLETED", values={"duration_seconds": 3.0})
    done = new.scheduled_runs.get(run_id)
    assert done is not None and (done.duration_seconds, done.pipeline_logging_id) == (3.0, "log-1")
    new.close()


def test_version_8_keeps_jobs_queued_before_it_and_keys_enqueues_after(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    url = fresh_store_url(request, tmp_path, backend)
    old = open_store(url, migrate=False)
    assert old.migrate(target=7) == 7
    with old.transaction() as tx:
        for _ in range(2):
            tx.execute(
                "INSERT INTO jobs (pipeline, tenant, priority, state, enqueued_at, run_after) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                ("p", "acme", 5, "queued", 1.0, 1.0),
            )
    old.close()
    new = open_store(url)
    assert new.schema_version() == LATEST_VERSION
    assert new.queue.length() == 2  # jobs without a key are left out of the key's index
    assert {j.idempotency_key for j in new.queue.claim("w", limit=2)} == {None}
    spec = JobSpec(pipeline="p", tenant="acme", idempotency_key="k")
    assert new.queue.enqueue(spec) == new.queue.enqueue(spec)
    assert new.queue.length() == 1
    new.close()


def test_version_10_keeps_cursors_moving_and_runs_and_jobs_of_before_it_purgeable(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    url = fresh_store_url(request, tmp_path, backend)
    old = open_store(url, migrate=False)
    assert old.migrate(target=9) == 9
    start = "2025-01-01T00:00:00+00:00"
    assert old.scheduled_runs.cursor("p", "s", start=start) == start
    (run_id,) = old.scheduled_runs.create(
        [RunSpec("p", "nightly", "2025-01-24T07:00:00+00:00", "2025-01-23", *WINDOW)]
    )
    old.close()
    new = open_store(url)
    assert new.schema_version() == LATEST_VERSION
    row = new.scheduled_runs.cursor_row("p", "s")
    assert row is not None and not row.paused  # a cursor of before is active
    with new.transaction() as tx:
        assert new.scheduled_runs.advance_cursor("p", "s", start, "2025-01-02", tx=tx)
    later = "2099-01-01T00:00:00+00:00"
    assert new.scheduled_runs.finished_before(later, pipelines=["p"]) == []  # SCHEDULED stays
    assert new.scheduled_runs.get(run_id) is not None
    new.close()


def test_newer_schema_than_code_is_refused(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    url = fresh_store_url(request, tmp_path, backend)
    s = open_store(url)
    with s.transaction() as tx:
        tx.execute("INSERT INTO onceflow_schema (version) VALUES (?)", (LATEST_VERSION + 1,))
    with pytest.raises(StateError, match="newer than this onceflow"):
        s.migrate()
    s.close()


def test_migration_list_is_ordered_without_gaps() -> None:
    assert [m[0] for m in MIGRATIONS] == list(range(1, LATEST_VERSION + 1))


def test_a_store_opened_read_only_reads_and_refuses_a_write(store: Store) -> None:
    store.runs.begin("r", "p", "2025-01-23", WINDOW)
    reader = open_store(store.url, read_only=True)
    try:
        assert [r.run_id for r in reader.runs.find()] == ["r"]
        assert reader.schema_version() == LATEST_VERSION
        with pytest.raises(StateError, match="opened read-only, for a command that only reads"):
            reader.runs.begin("r2", "p", "2025-01-24", WINDOW)
    finally:
        reader.close()
    assert [r.run_id for r in store.runs.find()] == ["r"]


def test_a_read_only_open_of_a_store_an_older_onceflow_left_upgrades_it_first(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    # a store that can be written is upgraded as any command would, then read
    url = fresh_store_url(request, tmp_path, backend)
    old = open_store(url, migrate=False)
    old.migrate(target=LATEST_VERSION - 1)
    old.close()
    reader = open_store(url, read_only=True)
    try:
        assert reader.schema_version() == LATEST_VERSION
        assert reader.runs.find() == []
    finally:
        reader.close()


def test_a_migration_that_fails_half_way_changes_nothing_and_says_which_one(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    # an index of the name migration 10 creates, made by hand on a store at schema 6
    url = fresh_store_url(request, tmp_path, backend)
    old = open_store(url, migrate=False)
    old.migrate(target=6)
    with old.transaction() as tx:
        tx.execute("CREATE INDEX jobs_finished ON jobs (enqueued_at)")
    old.close()
    with pytest.raises(StateError) as raised:
        open_store(url)
    message = str(raised.value)
    assert message.startswith(
        f"state: upgrading the store from schema 6 to {LATEST_VERSION} failed at migration 10 ("
    )
    assert "jobs_finished" in message and "already exists" in message
    assert "nothing was changed (the upgrade is one transaction)" in message
    assert raised.value.permanent
    again = open_store(url, migrate=False)
    try:
        assert again.schema_version() == 6  # migrations 7 to 9 were rolled back with it
        with again.transaction() as tx:
            assert not again.db.has_table(tx, "quarantine_passes")  # migration 12's
    finally:
        again.close()


@pytest.fixture
def rows_only_role(request: pytest.FixtureRequest, pg_admin: object) -> Callable[[str], str]:
    """rows_only_role(schema) -> the URL of a new role that may read and write the rows of
    the tables in `schema` (and use its sequences), but not create anything there: the
    application's role of the Alembic/Flyway pattern. Dropped after the test."""
    role = unique("of_dml")
    pg_admin.execute(f'CREATE ROLE "{role}" LOGIN')  # type: ignore[attr-defined]

    def drop() -> None:
        # DROP OWNED revokes what was granted to it in this database (the schema may be
        # dropped already)
        pg_admin.execute(f'DROP OWNED BY "{role}"')  # type: ignore[attr-defined]
        pg_admin.execute(f'DROP ROLE "{role}"')  # type: ignore[attr-defined]

    request.addfinalizer(drop)

    def grant(schema: str) -> str:
        for statement in (
            f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"',
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"',
            f'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"',
        ):
            pg_admin.execute(statement)  # type: ignore[attr-defined]
        return pg_state_url(schema).replace(f"{urlsplit(PG_BASE).username}@", f"{role}@", 1)

    return grant


def _schema_of(url: str) -> str:
    return url.rsplit("%3D", 1)[1]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_role_that_may_only_read_and_write_rows_uses_a_store_at_this_schema(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    backend: str,
    rows_only_role: Callable[[str], str],
) -> None:
    admin_url = fresh_store_url(request, tmp_path, backend)
    open_store(admin_url).close()  # the administrator's role migrates
    url = rows_only_role(_schema_of(admin_url))
    s = open_store(url)  # nothing to create: no CREATE privilege needed
    try:
        assert s.migrate() == LATEST_VERSION
        s.runs.begin("r", "p", "2025-01-23", WINDOW)
        s.queue.enqueue(JobSpec(pipeline="p", tenant="acme"))  # an identity column
        assert [j.pipeline for j in s.queue.claim("w", limit=1)] == ["p"]
        (run_id,) = s.scheduled_runs.create(
            [RunSpec("p", "nightly", "2025-01-24T07:00:00+00:00", "2025-01-23", *WINDOW)]
        )
        assert s.scheduled_runs.get(run_id) is not None
        s.refuse_newer_schema()
    finally:
        s.close()
    reader = open_store(url, read_only=True)
    try:
        assert [r.run_id for r in reader.runs.find()] == ["r"]
    finally:
        reader.close()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize("read_only", [False, True])
def test_a_role_that_may_only_read_and_write_rows_is_told_how_an_older_store_is_upgraded(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    backend: str,
    read_only: bool,
    rows_only_role: Callable[[str], str],
) -> None:
    admin_url = fresh_store_url(request, tmp_path, backend)
    old = open_store(admin_url, migrate=False)
    old.migrate(target=LATEST_VERSION - 1)
    old.close()
    url = rows_only_role(_schema_of(admin_url))
    with pytest.raises(StateError) as raised:
        open_store(url, read_only=read_only).close()
    message = str(raised.value)
    assert message.startswith(
        f"state: the state store has schema version {LATEST_VERSION - 1}, older than this "
        f"onceflow's ({LATEST_VERSION}), and this database role may not upgrade it "
        "(permission denied for schema "
    )
    assert "CREATE on the store's schema" in message and "`onceflow status`" in message
    assert "LINE 1" not in message and raised.value.permanent
    admin = open_store(admin_url)  # the administrator's role upgrades it
    admin.close()
    open_store(url).close()  # then the role that only writes rows can use it


def _open_and_close(url: str) -> str:
    try:
        open_store(url).close()
    except Exception as error:  # reported to the test, which names it
        return f"{type(error).__name__}: {error}"
    return "ok"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_processes_migrating_one_empty_store_at_once_all_open_it(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    """A second migrator waited for the schema lock, then looked for onceflow_schema in
    PostgreSQL's catalog cache, which could still miss the table the first had just
    committed: it began again from version 0 and failed ("relation pipeline_runs already
    exists"), about one start in three of six processes."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(6) as pool:
        for attempt in range(4):  # each an empty store
            url = fresh_store_url(request, tmp_path / str(attempt), backend)
            assert pool.map(_open_and_close, [url] * 6) == ["ok"] * 6
            with open_store(url) as store:
                assert store.schema_version() == LATEST_VERSION


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_processes_upgrading_one_store_at_once_all_open_it(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    """Migration 13 alters every table of a store left at version 12 (PostgreSQL): the
    processes that find it so wait for the one upgrading it, then use it."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(6) as pool:
        for attempt in range(2):
            url = fresh_store_url(request, tmp_path / str(attempt), backend)
            old = open_store(url, migrate=False)
            old.migrate(target=12)
            old.scheduled_runs.create(
                [RunSpec("p", "nightly", "2025-01-24T07:00:00+00:00", "2025-01-23", *WINDOW)]
            )
            old.close()
            assert pool.map(_open_and_close, [url] * 6) == ["ok"] * 6
            with open_store(url) as store:
                assert store.schema_version() == LATEST_VERSION
                assert len(store.scheduled_runs.find()) == 1


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_role_that_may_create_but_owns_no_table_is_told_to_own_them_for_an_upgrade(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    backend: str,
    pg_admin: object,
    rows_only_role: Callable[[str], str],
) -> None:
    """Migration 13 alters every table (`COLLATE "C"`), which only their owner may do."""
    admin_url = fresh_store_url(request, tmp_path, backend)
    old = open_store(admin_url, migrate=False)
    old.migrate(target=12)
    old.close()
    schema = _schema_of(admin_url)
    url = rows_only_role(schema)
    role = urlsplit(url).username
    pg_admin.execute(f'GRANT CREATE ON SCHEMA "{schema}" TO "{role}"')  # type: ignore[attr-defined]
    with pytest.raises(StateError) as raised:
        open_store(url).close()
    message = str(raised.value)
    assert message.startswith(
        f"state: the state store has schema version 12, older than this onceflow's "
        f"({LATEST_VERSION}), and this database role may not upgrade it (must be owner of "
        "table pipeline_runs): grant the role CREATE on the store's schema (and ownership "
        "of its tables)"
    )
    assert raised.value.permanent
    with open_store(url, migrate=False) as again:
        assert again.schema_version() == 12  # nothing was changed
