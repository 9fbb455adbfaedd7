"""The job queue contract, on SQLite and PostgreSQL: priority then FIFO, atomic claims,
leases that expire back to the queue, tokens that fence a holder who lost its lease."""

from __future__ import annotations

import threading
import time
from contextlib import nullcontext

import pytest

from onceflow.errors import ConfigError, LeaseLostError, StateError
from onceflow.state import JobSpec, Store


def _ids(store: Store, n: int, **kw: object) -> list[int]:
    return [store.queue.enqueue(JobSpec(pipeline="p", payload={"i": i}, **kw)) for i in range(n)]  # type: ignore[arg-type]


def test_claims_highest_priority_first_and_fifo_within_a_priority(store: Store) -> None:
    low = store.queue.enqueue(JobSpec(pipeline="p", priority=9))
    first = store.queue.enqueue(JobSpec(pipeline="p", priority=2))
    second = store.queue.enqueue(JobSpec(pipeline="p", priority=2))
    top = store.queue.enqueue(JobSpec(pipeline="p", priority=1))
    order = [j.id for _ in range(4) for j in store.queue.claim("w", limit=1)]
    assert order == [top, first, second, low]


def test_a_claim_takes_a_batch_and_each_job_once(store: Store) -> None:
    _ids(store, 25)
    seen: list[int] = []
    while jobs := store.queue.claim("w", limit=10):
        assert len(jobs) <= 10
        seen += [j.id for j in jobs]
    assert len(seen) == len(set(seen)) == 25


def test_concurrent_claimers_never_share_a_job(store: Store) -> None:
    store.queue.enqueue_many([JobSpec(pipeline="p", payload={"i": i}) for i in range(300)])
    claimed: list[list[int]] = [[] for _ in range(4)]

    def worker(k: int) -> None:
        while jobs := store.queue.claim(f"w{k}", limit=3):
            for job in jobs:
                claimed[k].append(job.id)
                store.queue.complete(job.id, job.token or "")
        store.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for ids in claimed for i in ids]
    assert len(every) == len(set(every)) == 300
    assert store.queue.length() == 0


def test_only_the_given_pipelines_jobs_are_claimed(store: Store) -> None:
    mine = store.queue.enqueue(JobSpec(pipeline="mine"))
    store.queue.enqueue(JobSpec(pipeline="other"))
    assert [j.id for j in store.queue.claim("w", limit=5, pipelines=["mine"])] == [mine]
    assert store.queue.claim("w", limit=5, pipelines=["mine"]) == []


def test_a_job_due_later_waits_until_then(store: Store) -> None:
    store.queue.enqueue(JobSpec(pipeline="p", run_after=time.time() + 0.6))
    assert store.queue.claim("w") == []
    time.sleep(0.7)
    assert len(store.queue.claim("w")) == 1


def test_an_expired_lease_requeues_the_job_and_fences_its_old_holder(store: Store) -> None:
    (job_id,) = _ids(store, 1)
    (old,) = store.queue.claim("dead", lease_seconds=0.2)
    assert store.queue.requeue_expired() == []  # not yet expired
    time.sleep(0.3)
    (requeued,) = store.queue.requeue_expired()
    assert requeued.id == job_id and requeued.state == "queued"
    (new,) = store.queue.claim("alive", lease_seconds=30)
    assert new.token != old.token and new.attempts == 2
    with pytest.raises(LeaseLostError, match=f"job {job_id}: lease lost"):
        store.queue.complete(old.id, old.token or "")
    with pytest.raises(LeaseLostError):
        store.queue.fail(old.id, old.token or "", "late")
    assert store.queue.heartbeat([old]) == {old.id}
    store.queue.complete(new.id, new.token or "")
    done = store.queue.get(job_id)
    assert done is not None and done.state == "completed" and done.worker == "alive"


def test_heartbeats_keep_a_lease_alive(store: Store) -> None:
    _ids(store, 1)
    (job,) = store.queue.claim("w", lease_seconds=0.4)
    for _ in range(3):
        time.sleep(0.2)
        assert store.queue.heartbeat([job], lease_seconds=0.4) == set()
        assert store.queue.requeue_expired() == []
    store.queue.complete(job.id, job.token or "")


def test_completing_twice_is_refused(store: Store) -> None:
    _ids(store, 1)
    (job,) = store.queue.claim("w")
    store.queue.complete(job.id, job.token or "")
    with pytest.raises(LeaseLostError):
        store.queue.complete(job.id, job.token or "")


def test_failed_jobs_keep_their_error_and_released_jobs_return(store: Store) -> None:
    _ids(store, 2)
    a, b = store.queue.claim("w", limit=2)
    store.queue.fail(a.id, a.token or "", "boom: table missing")
    store.queue.release(b.id, b.token or "", note="waiting")
    failed = store.queue.get(a.id)
    assert failed is not None and failed.state == "failed" and failed.error == "boom: table missing"
    assert [j.id for j in store.queue.claim("w")] == [b.id]


def test_revoking_fences_the_holder(store: Store) -> None:
    _ids(store, 1)
    (job,) = store.queue.claim("w")
    revoked = store.queue.revoke(job.id, "ran past max_runtime")
    assert revoked is not None and revoked.state == "failed"
    with pytest.raises(LeaseLostError):
        store.queue.complete(job.id, job.token or "")
    assert store.queue.revoke(job.id, "again") is None


def test_complete_many_completes_a_batch(store: Store) -> None:
    _ids(store, 10)
    jobs = store.queue.claim("w", limit=10)
    assert store.queue.complete_many(jobs) == 10
    assert store.queue.length() == 0


def test_length_and_status_per_tenant(store: Store) -> None:
    store.queue.enqueue(JobSpec(pipeline="p", tenant="acme"))
    store.queue.enqueue(JobSpec(pipeline="p", tenant="acme"))
    store.queue.enqueue(JobSpec(pipeline="p", tenant="zeta", run_after=time.time() + 60))
    time.sleep(0.05)
    (job,) = store.queue.claim("w", pipelines=["p"])
    assert store.queue.length() == 2
    assert store.queue.length(tenant="acme") == 1
    status = {s.tenant: s for s in store.queue.status()}
    acme, zeta = status["acme"], status["zeta"]
    assert (acme.queued, acme.due, acme.running) == (1, 1, 1)
    assert acme.max_wait_seconds is not None and acme.max_wait_seconds >= 0.05
    assert acme.avg_wait_seconds is not None and acme.avg_start_wait_seconds is not None
    assert (zeta.queued, zeta.due, zeta.max_wait_seconds) == (1, 0, None)
    assert [s.tenant for s in store.queue.status(tenant="zeta")] == ["zeta"]
    assert job.tenant == "acme"


def test_tenants_lists_each_tenant_with_a_job_once(store: Store) -> None:
    assert store.queue.tenants() == []
    for tenant in ("zeta", "acme", "zeta"):
        store.queue.enqueue(JobSpec(pipeline="p", tenant=tenant))
    (job,) = store.queue.claim("w", limit=1)
    store.queue.complete(job.id, job.token or "")  # a finished job still counts
    assert store.queue.tenants() == ["acme", "zeta"]


def test_one_live_job_per_scheduled_run(store: Store) -> None:
    store.queue.enqueue(JobSpec(pipeline="p", run_id="r1"))
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        store.queue.enqueue(JobSpec(pipeline="p", run_id="r1"))
    (job,) = store.queue.claim("w")
    store.queue.complete(job.id, job.token or "")
    store.queue.enqueue(JobSpec(pipeline="p", run_id="r1"))  # a retry: the old one ended


def test_a_queued_job_can_be_rescheduled_but_not_a_claimed_one(store: Store) -> None:
    job_id = store.queue.enqueue(JobSpec(pipeline="p", run_after=time.time() + 3600))
    assert store.queue.claim("w") == []
    assert store.queue.reschedule(job_id, time.time() - 1) is True
    (job,) = store.queue.claim("w")
    assert job.id == job_id
    assert store.queue.reschedule(job_id, time.time() + 3600) is False
    current = store.queue.get(job_id)
    assert current is not None and current.state == "claimed" and current.run_after < time.time()


def test_an_idle_waiter_wakes_when_a_job_is_enqueued(store: Store) -> None:
    store.queue.listen()
    assert store.queue.wait_for_jobs(0.05) is False

    def later() -> None:
        time.sleep(0.2)
        store.queue.enqueue(JobSpec(pipeline="p"))
        store.close()

    thread = threading.Thread(target=later)
    started = time.monotonic()
    thread.start()
    assert store.queue.wait_for_jobs(5.0) is True
    assert time.monotonic() - started < 1.0
    thread.join()
    assert len(store.queue.claim("w")) == 1


def test_a_claim_can_complete_the_previous_batch_in_the_same_commit(store: Store) -> None:
    _ids(store, 25)
    seen: list[int] = []
    jobs = store.queue.claim("w", limit=10)
    while jobs:
        seen += [j.id for j in jobs]
        jobs = store.queue.claim("w", limit=10, complete=jobs)
    assert len(seen) == len(set(seen)) == 25
    with store.transaction() as tx:
        row = tx.execute("SELECT COUNT(*) AS n FROM jobs WHERE state = 'completed'").fetchone()
    assert row is not None and int(row["n"]) == 25


def test_a_batch_with_a_lost_lease_completes_nothing_and_claims_nothing(store: Store) -> None:
    _ids(store, 3)
    a, b = store.queue.claim("w", limit=2, lease_seconds=0.2)
    time.sleep(0.3)
    store.queue.requeue_expired()
    (again,) = store.queue.claim("other", limit=1)  # a was claimed again by another worker
    assert again.id == a.id
    with pytest.raises(LeaseLostError, match=rf"jobs \[{a.id}, {b.id}\]|jobs \[{a.id}\]"):
        store.queue.claim("w", limit=5, complete=[a, b])
    assert store.queue.length() == 2  # b was requeued too; the third job is still queued
    with pytest.raises(LeaseLostError):
        store.queue.complete_many([a])
    done = store.queue.get(a.id)
    assert done is not None and done.state == "claimed" and done.worker == "other"


# --- idempotent enqueues ---------------------------------------------------------------


def test_a_second_enqueue_with_a_key_returns_the_first_job_and_queues_nothing(
    store: Store,
) -> None:
    spec = JobSpec(pipeline="p", payload={"n": 1}, tenant="acme", idempotency_key="k-1")
    first = store.queue.enqueue(spec)
    assert store.queue.enqueue(spec) == first
    assert store.queue.length() == 1
    job = store.queue.get(first)
    assert job is not None and job.idempotency_key == job.row_id == "k-1"


def test_a_key_keeps_naming_its_job_after_the_job_ran(store: Store) -> None:
    spec = JobSpec(pipeline="p", tenant="acme", idempotency_key="k-1")
    first = store.queue.enqueue(spec)
    (job,) = store.queue.claim("w")
    store.queue.complete(job.id, job.token or "")
    # the client's retry arrives after a worker already ran the job: still one job
    assert store.queue.enqueue(spec) == first
    assert store.queue.length() == 0
    assert store.queue.claim("w") == []


def test_keys_are_per_tenant_and_jobs_without_a_key_are_never_merged(store: Store) -> None:
    a = store.queue.enqueue(JobSpec(pipeline="p", tenant="acme", idempotency_key="2025-01-10"))
    b = store.queue.enqueue(JobSpec(pipeline="p", tenant="zeta", idempotency_key="2025-01-10"))
    c = store.queue.enqueue(JobSpec(pipeline="p", tenant="acme"))
    d = store.queue.enqueue(JobSpec(pipeline="p", tenant="acme"))
    assert len({a, b, c, d}) == 4 and store.queue.length() == 4


def test_a_key_reused_for_another_job_is_refused_and_nothing_is_queued(store: Store) -> None:
    first = store.queue.enqueue(JobSpec(pipeline="p", payload={"n": 1}, idempotency_key="k"))
    for other in (
        JobSpec(pipeline="q", payload={"n": 1}, idempotency_key="k"),
        JobSpec(pipeline="p", payload={"n": 2}, idempotency_key="k"),
        JobSpec(pipeline="p", payload={"n": 1}, priority=1, idempotency_key="k"),
    ):
        with pytest.raises(ConfigError, match=f"'k' of tenant default was used by job {first}"):
            store.queue.enqueue(other)
    assert store.queue.length() == 1


def test_a_bad_key_is_refused_before_any_sql(store: Store) -> None:
    with pytest.raises(ValueError, match="idempotency_key must be non-empty text"):
        JobSpec(pipeline="p", idempotency_key=" ")
    with pytest.raises(ValueError, match="256 characters long; at most 255"):
        JobSpec(pipeline="p", idempotency_key="k" * 256)
    with pytest.raises(ValueError, match="enqueue them with enqueue"):
        store.queue.enqueue_many([JobSpec(pipeline="p", idempotency_key="k")])
    assert store.queue.length() == 0


def test_concurrent_enqueues_of_one_key_make_one_job(store: Store) -> None:
    spec = JobSpec(pipeline="p", payload={"n": 1}, tenant="acme", idempotency_key="k-1")
    ids: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def client() -> None:
        try:
            start.wait()
            ids.append(store.queue.enqueue(spec))
        except BaseException as error:  # a thread's error is reported by the asserts
            errors.append(error)
        finally:
            store.close()

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(ids) == 8 and len(set(ids)) == 1
    assert store.queue.length() == 1


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_an_enqueue_racing_an_uncommitted_one_of_its_key_waits_for_its_outcome(
    store: Store, outcome: str
) -> None:
    spec = JobSpec(pipeline="p", tenant="acme", idempotency_key="k-1")
    second: list[int] = []
    inserted = threading.Event()

    def racer() -> None:
        inserted.wait()
        second.append(store.queue.enqueue(spec))  # blocks until the first one ends
        store.close()

    thread = threading.Thread(target=racer)
    thread.start()
    failing = pytest.raises(RuntimeError) if outcome == "rollback" else nullcontext()
    with failing, store.transaction() as tx:
        first = store.queue.enqueue(spec, tx=tx)
        inserted.set()
        time.sleep(0.3)  # the racer's insert is waiting on this transaction now
        assert not second
        if outcome == "rollback":
            raise RuntimeError("the first client's transaction fails")
    thread.join()
    (job,) = [j for j in [store.queue.get(second[0])] if j is not None]
    assert store.queue.length() == 1
    if outcome == "commit":
        assert second == [first]
    else:  # the first job never existed: the racer's enqueue made the only one
        assert job.idempotency_key == "k-1"


@pytest.mark.postgres
def test_a_store_in_another_schema_of_the_database_does_not_wake_this_ones_waiter(
    pg_admin: object,
) -> None:
    from onceflow.state import open_store
    from tests.helpers.servers import pg_state_url, unique

    schemas = [unique("of_wake"), unique("of_wake")]
    for schema in schemas:
        pg_admin.execute(f'CREATE SCHEMA "{schema}"')  # type: ignore[attr-defined]
    mine, other = (open_store(pg_state_url(s)) for s in schemas)
    try:
        mine.queue.listen()
        other.queue.enqueue(JobSpec(pipeline="p"))  # NOTIFY channels are database-wide
        assert mine.queue.wait_for_jobs(0.3) is False
        mine.queue.enqueue(JobSpec(pipeline="p"))
        assert mine.queue.wait_for_jobs(5.0) is True
    finally:
        mine.queue.close_listener()
        mine.close()
        other.close()
        for schema in schemas:
            pg_admin.execute(f'DROP SCHEMA "{schema}" CASCADE')  # type: ignore[attr-defined]


def test_only_finished_jobs_are_purged_and_a_purged_key_names_a_new_job(store: Store) -> None:
    done, claimed, queued = (
        store.queue.enqueue(JobSpec(pipeline="p", idempotency_key=k)) for k in "abc"
    )
    (job,) = store.queue.claim("w", limit=1)
    store.queue.complete(job.id, job.token or "")
    store.queue.claim("w", limit=1)
    later = time.time() + 60
    assert store.queue.unowned_finished(later, pipelines=["p"]) == [done]
    assert store.queue.unowned_finished(later, pipelines=["q"]) == []
    assert store.queue.unowned_finished(time.time() - 60, pipelines=["p"]) == []
    # asked to, it still deletes neither the claimed nor the queued job
    assert store.queue.delete_finished([done, claimed, queued]) == 1
    assert store.queue.get(claimed) is not None and store.queue.get(queued) is not None
    assert store.queue.enqueue(JobSpec(pipeline="p", idempotency_key="a")) not in (done, claimed)


JOB_ENDS = ("completed", "failed", "cancelled")


def _finished(store: Store, spec: JobSpec, end: str) -> int:
    """Enqueue a job and end it: `completed` or `failed` by its worker, or `cancelled`."""
    job_id = store.queue.enqueue(spec)
    if end == "cancelled":
        assert store.queue.revoke(job_id, "no longer wanted", state="cancelled") is not None
        return job_id
    (job,) = store.queue.claim("w", limit=1)
    assert job.id == job_id
    if end == "completed":
        store.queue.complete(job.id, job.token or "")
    else:
        store.queue.fail(job.id, job.token or "", "boom")
    return job_id


def test_finished_of_runs_counts_and_deletes_only_the_finished_jobs_of_those_runs(
    store: Store,
) -> None:
    q = store.queue
    ended = [_finished(store, JobSpec(pipeline="p", run_id="a"), e) for e in JOB_ENDS]
    other_run = _finished(store, JobSpec(pipeline="p", run_id="b"), "completed")
    no_run = _finished(store, JobSpec(pipeline="p"), "completed")
    claimed = q.enqueue(JobSpec(pipeline="p", run_id="a"))
    assert [j.id for j in q.claim("w")] == [claimed]
    queued = q.enqueue(JobSpec(pipeline="p", run_id="b"))  # a run has one live job at most

    assert q.finished_of_runs([]) == 0
    assert q.finished_of_runs(["a"]) == 3
    assert q.finished_of_runs(["a", "b", "nosuch"]) == 4
    with store.transaction() as tx:
        assert q.finished_of_runs(["a"], delete=True, tx=tx) == 3
        assert q.finished_of_runs(["a"], tx=tx) == 0
    assert [q.get(i) for i in ended] == [None, None, None]
    assert all(q.get(i) is not None for i in (other_run, no_run, claimed, queued))
    assert q.finished_of_runs([], delete=True) == 0


def test_live_job_of_run_is_its_queued_or_claimed_job_only(store: Store) -> None:
    q = store.queue
    assert q.live_job_of_run("a") is None
    _finished(store, JobSpec(pipeline="p", run_id="a"), "failed")
    assert q.live_job_of_run("a") is None  # a failed job runs nothing
    job_id = q.enqueue(JobSpec(pipeline="p", run_id="a"))
    q.enqueue(JobSpec(pipeline="p", run_id="b"))
    queued = q.live_job_of_run("a")
    assert queued is not None and (queued.id, queued.state) == (job_id, "queued")
    (job,) = q.claim("w", limit=1)
    claimed = q.live_job_of_run("a")
    assert claimed is not None and (claimed.id, claimed.state) == (job_id, "claimed")
    q.complete(job.id, job.token or "")
    assert q.live_job_of_run("a") is None


def test_unlinked_live_jobs_are_a_pipeline_and_tenants_live_jobs_without_a_run(
    store: Store,
) -> None:
    q = store.queue
    claimed = q.enqueue(JobSpec(pipeline="p", tenant="t", priority=3))
    assert [j.id for j in q.claim("w")] == [claimed]
    low = q.enqueue(JobSpec(pipeline="p", tenant="t", priority=5))
    high = q.enqueue(JobSpec(pipeline="p", tenant="t", priority=1))
    q.enqueue(JobSpec(pipeline="p", tenant="t", run_id="r"))  # a run's own job
    q.enqueue(JobSpec(pipeline="p", tenant="u"))
    q.enqueue(JobSpec(pipeline="o", tenant="t"))
    _finished(store, JobSpec(pipeline="p", tenant="t"), "cancelled")
    found = q.unlinked_live_jobs("p", "t")
    # in claim order: priority, then enqueue order
    assert [(j.id, j.state) for j in found] == [
        (high, "queued"),
        (claimed, "claimed"),
        (low, "queued"),
    ]
    assert q.unlinked_live_jobs("nosuch", "t") == []


def test_a_second_live_job_of_a_run_is_a_state_error_and_the_store_goes_on(store: Store) -> None:
    # one live job per run (a unique index): SQLite and PostgreSQL refuse the second alike
    q = store.queue
    first = q.enqueue(JobSpec(pipeline="p", run_id="a"))
    with pytest.raises(StateError, match=r"jobs\.run_id|\"jobs_live_run\""):
        q.enqueue(JobSpec(pipeline="p", run_id="a"))
    live = q.live_job_of_run("a")
    assert live is not None and live.id == first and q.length() == 1
    (job,) = q.claim("w")
    q.complete(job.id, job.token or "")
    assert q.enqueue(JobSpec(pipeline="p", run_id="a")) > first  # ended: another may follow
