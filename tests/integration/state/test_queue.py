"""The job queue contract, on SQLite and PostgreSQL: priority then FIFO, atomic claims,
leases that expire back to the queue, tokens that fence a holder who lost its lease."""

from __future__ import annotations

import threading
import time

import pytest

from onceflow.errors import LeaseLostError
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
