"""The scheduled-run contract, on SQLite and PostgreSQL: one run per (pipeline, schedule,
tick), conditional transitions with history, illegal ones refused, cursors that move once."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import date, timedelta

import pytest

from onceflow.errors import TransitionError
from onceflow.state import RunSpec, Store, open_store
from tests.helpers.state import in_thread

TICK = "2025-03-10T06:30:00+00:00"


def spec(tick: str = TICK, run_date: str = "2025-03-09", **kw: object) -> RunSpec:
    return RunSpec(
        pipeline="p",
        schedule="nightly",
        tick=tick,
        run_date=run_date,
        window_start=f"{run_date}T00:00:00-05:00",
        window_end=f"{run_date}T23:00:00-04:00",
        **kw,  # type: ignore[arg-type]
    )


def test_a_tick_is_recorded_once(store: Store) -> None:
    (run_id,) = store.scheduled_runs.create([spec()])
    assert store.scheduled_runs.create([spec()]) == []
    run = store.scheduled_runs.get(run_id)
    assert run is not None and run.state == "SCHEDULED" and run.tick == TICK
    assert store.scheduled_runs.get_by_tick("p", "nightly", TICK) == run


def test_racing_recorders_create_one_run_per_tick(store: Store) -> None:
    ticks = [f"2025-01-01T{h:02d}:{m:02d}:00+00:00" for h in range(10) for m in range(0, 60, 6)]
    created: list[list[str]] = [[] for _ in range(4)]

    def record(k: int) -> None:
        for lo in range(0, len(ticks), 10):
            created[k] += store.scheduled_runs.create([spec(t) for t in ticks[lo : lo + 10]])
        store.close()

    threads = [threading.Thread(target=record, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(c) for c in created) == len(ticks) == 100
    assert len(store.scheduled_runs.find()) == 100


def test_transitions_follow_the_state_machine_and_keep_history(store: Store) -> None:
    (run_id,) = store.scheduled_runs.create([spec()])
    runs = store.scheduled_runs
    runs.transition(run_id, "SCHEDULED", "PENDING", values={"job_id": 7})
    runs.transition(run_id, "PENDING", "RUNNING", worker="w1")
    runs.transition(run_id, "RUNNING", "FAILED", worker="w1", error="source down")
    runs.transition(run_id, "FAILED", "PENDING", reason="retry 1")
    runs.transition(run_id, "PENDING", "RUNNING", worker="w2")
    runs.transition(run_id, "RUNNING", "COMPLETED", worker="w2")
    run = runs.get(run_id)
    assert run is not None and run.state == "COMPLETED" and run.attempt == 2
    assert run.worker == "w2" and run.job_id == 7
    steps = [(h.from_state, h.to_state, h.worker, h.error) for h in runs.history(run_id)]
    assert steps == [
        (None, "SCHEDULED", None, None),
        ("SCHEDULED", "PENDING", None, None),
        ("PENDING", "RUNNING", "w1", None),
        ("RUNNING", "FAILED", "w1", "source down"),
        ("FAILED", "PENDING", None, None),
        ("PENDING", "RUNNING", "w2", None),
        ("RUNNING", "COMPLETED", "w2", None),
    ]
    assert all(h.at for h in runs.history(run_id))


def test_duration_and_logging_id_are_set_by_a_transition(store: Store) -> None:
    (run_id,) = store.scheduled_runs.create([spec()])
    runs = store.scheduled_runs
    assert runs.get(run_id) is not None
    runs.transition(run_id, "SCHEDULED", "PENDING")
    runs.transition(run_id, "PENDING", "RUNNING", values={"pipeline_logging_id": "log-1"})
    runs.transition(run_id, "RUNNING", "COMPLETED", values={"duration_seconds": 1.5})
    run = runs.get(run_id)
    assert run is not None and (run.pipeline_logging_id, run.duration_seconds) == ("log-1", 1.5)


def test_the_next_attempt_of_a_pending_run_only_is_moved(store: Store) -> None:
    (run_id,) = store.scheduled_runs.create([spec()])
    with pytest.raises(TransitionError, match="no longer PENDING"):
        store.scheduled_runs.set_next_attempt(run_id, TICK)
    store.scheduled_runs.transition(run_id, "SCHEDULED", "PENDING")
    store.scheduled_runs.set_next_attempt(run_id, TICK)
    run = store.scheduled_runs.get(run_id)
    assert run is not None and run.next_attempt_at == TICK and run.state == "PENDING"


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([], ("SCHEDULED", "RUNNING")),
        ([], ("SCHEDULED", "COMPLETED")),
        ([("SCHEDULED", "PENDING")], ("PENDING", "COMPLETED")),
        ([("SCHEDULED", "PENDING")], ("PENDING", "FAILED")),
        ([("SCHEDULED", "PENDING"), ("PENDING", "RUNNING")], ("RUNNING", "SCHEDULED")),
        (
            [("SCHEDULED", "PENDING"), ("PENDING", "RUNNING"), ("RUNNING", "COMPLETED")],
            ("COMPLETED", "FAILED"),
        ),
    ],
)
def test_an_illegal_transition_is_refused_and_changes_nothing(
    store: Store, path: list[tuple[str, str]], illegal: tuple[str, str]
) -> None:
    (run_id,) = store.scheduled_runs.create([spec()])
    for frm, to in path:
        store.scheduled_runs.transition(run_id, frm, to)
    before = store.scheduled_runs.get(run_id)
    with pytest.raises(TransitionError, match=f"illegal transition {illegal[0]} -> {illegal[1]}"):
        store.scheduled_runs.transition(run_id, *illegal)
    assert store.scheduled_runs.get(run_id) == before


def test_a_stale_transition_loses_to_the_one_that_won(store: Store) -> None:
    (run_id,) = store.scheduled_runs.create([spec()])
    store.scheduled_runs.transition(run_id, "SCHEDULED", "PENDING")
    with pytest.raises(TransitionError, match="it is PENDING now"):
        store.scheduled_runs.transition(run_id, "SCHEDULED", "PENDING")
    assert len(store.scheduled_runs.history(run_id)) == 2


def test_racing_transitions_have_exactly_one_winner(store: Store) -> None:
    (run_id,) = store.scheduled_runs.create([spec()])
    store.scheduled_runs.transition(run_id, "SCHEDULED", "PENDING")
    wins: list[str] = []
    refused: list[str] = []

    def start(worker: str) -> None:
        try:
            store.scheduled_runs.transition(run_id, "PENDING", "RUNNING", worker=worker)
            wins.append(worker)
        except TransitionError:  # the run was no longer PENDING: another worker won
            refused.append(worker)
        store.close()

    threads = [threading.Thread(target=start, args=(f"w{k}",)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(refused) == 5
    run = store.scheduled_runs.get(run_id)
    assert run is not None and run.worker == wins[0] and run.attempt == 1


def test_the_cursor_moves_only_from_where_it_was(store: Store) -> None:
    start = "2025-01-01T00:00:00+00:00"
    assert store.scheduled_runs.cursor("p", "s", start=start) == start
    assert store.scheduled_runs.cursor("p", "s", start="2030-01-01T00:00:00+00:00") == start
    with store.transaction() as tx:
        assert store.scheduled_runs.advance_cursor("p", "s", start, "2025-01-02", tx=tx)
    with store.transaction() as tx:
        assert not store.scheduled_runs.advance_cursor("p", "s", start, "2025-01-03", tx=tx)
    assert store.scheduled_runs.cursor("p", "s", start=start) == "2025-01-02"


def test_a_paused_cursor_does_not_move_and_resume_moves_it_only_forward(store: Store) -> None:
    runs = store.scheduled_runs
    start = "2025-01-01T00:00:00+00:00"
    row, changed = runs.pause("p", "s", start=start, reason="maintenance")
    assert changed and row.paused and (row.last_tick, row.pause_reason) == (start, "maintenance")
    assert runs.cursor("p", "s", start="2030-01-01T00:00:00+00:00") == start  # the pause made it
    assert runs.pause("p", "s", start=start)[1] is False  # paused already: unchanged
    with store.transaction() as tx:
        assert not runs.advance_cursor("p", "s", start, "2025-01-02T00:00:00+00:00", tx=tx)
    assert [(r.pipeline, r.schedule) for r in runs.paused()] == [("p", "s")]

    row2, resumed = runs.resume("p", "s", skip_to="2024-12-01T00:00:00+00:00")  # never back
    assert resumed and row2 is not None and not row2.paused and row2.last_tick == start
    assert runs.resume("p", "s") == (row2, False)
    runs.pause("p", "s", start=start)
    row3, _ = runs.resume("p", "s", skip_to="2025-02-01T00:00:00+00:00")
    assert row3 is not None and row3.last_tick == "2025-02-01T00:00:00+00:00"
    assert runs.paused() == [] and runs.resume("q", "s") == (None, False)


def test_counts_last_success_and_failure_per_tenant(store: Store) -> None:
    ids = store.scheduled_runs.create(
        [spec(f"2025-01-0{d}T02:00:00+00:00", f"2025-01-0{d}", tenant="acme") for d in (1, 2, 3)]
        + [spec("2025-01-04T02:00:00+00:00", "2025-01-04", tenant="zeta")]
    )
    runs = store.scheduled_runs
    for run_id, end in zip(ids[:2], ("COMPLETED", "FAILED"), strict=True):
        runs.transition(run_id, "SCHEDULED", "PENDING")
        runs.transition(run_id, "PENDING", "RUNNING")
        runs.transition(run_id, "RUNNING", end, values={"ended_at": "2025-01-05"})
    counts = runs.counts(tenant="acme")
    assert (counts["COMPLETED"], counts["FAILED"], counts["SCHEDULED"]) == (1, 1, 1)
    last_ok = runs.last_in_state("COMPLETED", tenant="acme")
    assert last_ok is not None and last_ok.id == ids[0]
    assert runs.last_in_state("FAILED", tenant="zeta") is None
    assert runs.tenants() == ["acme", "zeta"]


def test_earlier_unfinished_runs_of_the_same_schedule(store: Store) -> None:
    a, b, c = store.scheduled_runs.create(
        [
            spec(f"2025-01-0{d}T02:00:00+00:00", f"2025-01-0{d}", batch="backfill-1")
            for d in (1, 2, 3)
        ]
    )
    runs = store.scheduled_runs
    third = runs.get(c)
    assert third is not None
    assert [r.id for r in runs.earlier_unfinished(third)] == [a, b]
    for run_id in (a, b):
        runs.transition(run_id, "SCHEDULED", "PENDING")
        runs.transition(run_id, "PENDING", "RUNNING")
    runs.transition(a, "RUNNING", "COMPLETED")
    runs.transition(b, "RUNNING", "FAILED", error="x")
    assert [r.id for r in runs.earlier_unfinished(third)] == [b]  # failed in the same batch
    runs.transition(b, "FAILED", "CANCELLED")
    assert list(runs.earlier_unfinished(third)) == []


def test_earlier_windows_of_other_tables_do_not_hide_one_of_its_own(store: Store) -> None:
    # 60 earlier days of another table's backfill, queued: more than one page of rows
    others = [
        spec(f"2024-11-{d:02d}T02:00:00+00:00", f"2024-11-{d:02d}", tables=["customers"])
        for d in range(1, 31)
    ] + [
        spec(f"2024-12-{d:02d}T02:00:00+00:00", f"2024-12-{d:02d}", tables=["customers"])
        for d in range(1, 31)
    ]
    runs = store.scheduled_runs
    for run_id in runs.create(others):
        runs.transition(run_id, "SCHEDULED", "PENDING")
    mine = [
        spec(f"2025-01-0{d}T02:00:00+00:00", f"2025-01-0{d}", tables=["orders"], batch="b")
        for d in (1, 2)
    ]
    # a name that holds `orders` as a part, or LIKE's wildcard, is another table
    near = [spec("2024-12-31T03:00:00+00:00", "2024-12-31", tables=["orders_archive", "o_ders"])]
    first, second = runs.create(mine)
    (archive,) = runs.create(near)
    runs.transition(archive, "SCHEDULED", "PENDING")
    later = runs.get(second)
    assert later is not None
    assert [r.id for r in runs.earlier_unfinished(later)] == [first]
    # a run of all tables shares every table; one of all tables waits for every table
    (everything,) = runs.create([spec("2024-10-01T02:00:00+00:00", "2024-10-01")])
    runs.transition(everything, "SCHEDULED", "PENDING")
    assert [r.id for r in runs.earlier_unfinished(later)] == [everything, first]
    (last,) = runs.create([spec("2025-02-01T02:00:00+00:00", "2025-02-01")])
    whole = runs.get(last)
    assert whole is not None
    assert len(list(runs.earlier_unfinished(whole, page=7))) == 1 + 60 + 1 + 2
    # a failed window of its batch comes first, however many rows sort before it
    runs.transition(first, "SCHEDULED", "PENDING")
    runs.transition(first, "PENDING", "RUNNING")
    runs.transition(first, "RUNNING", "FAILED", error="x")
    assert next(iter(runs.earlier_unfinished(later, page=1))).id == first


# --- the verbs the scheduler, the worker and purges read and move runs by -----------------


def _drive(store: Store, run_id: str, *states: str, ended_at: str | None = None) -> None:
    """Move a SCHEDULED run through `states`; the last transition records `ended_at`."""
    current = store.scheduled_runs.get(run_id)
    assert current is not None
    frm = current.state
    for k, to in enumerate(states):
        last = k == len(states) - 1 and ended_at is not None
        error = "boom" if to == "FAILED" else None
        values = {"ended_at": ended_at} if last else None
        store.scheduled_runs.transition(run_id, frm, to, error=error, values=values)
        frm = to


def _other(run_spec: RunSpec, **changes: object) -> RunSpec:
    """`run_spec` of another pipeline or schedule."""
    return replace(run_spec, **changes)  # type: ignore[arg-type]


def test_transition_many_moves_only_the_runs_still_in_that_state_and_keeps_history(
    store: Store,
) -> None:
    runs = store.scheduled_runs
    a, b, c, d = runs.create(
        [spec(f"2025-01-0{k}T02:00:00+00:00", f"2025-01-0{k}") for k in "1234"]
    )
    runs.transition(c, "SCHEDULED", "PENDING")  # moved by another process first
    moved = runs.transition_many([a, b, c, "nosuch"], "SCHEDULED", "PENDING", reason="queued")
    assert sorted(moved) == sorted([a, b])
    assert [r.state for r in map(runs.get, (a, b, c, d))] == [  # type: ignore[union-attr]
        "PENDING",
        "PENDING",
        "PENDING",
        "SCHEDULED",
    ]
    last = runs.history(a)[-1]
    assert (last.from_state, last.to_state, last.reason) == ("SCHEDULED", "PENDING", "queued")
    assert len(runs.history(c)) == 2  # its own move only
    assert runs.transition_many([], "SCHEDULED", "PENDING") == []
    with pytest.raises(TransitionError, match="illegal transition SCHEDULED -> RUNNING"):
        runs.transition_many([d], "SCHEDULED", "RUNNING")
    assert runs.get(d).state == "SCHEDULED"  # type: ignore[union-attr]


def test_transition_many_leaves_out_a_run_another_transaction_is_moving(store: Store) -> None:
    runs = store.scheduled_runs
    a, b = runs.create([spec(f"2025-01-0{k}T02:00:00+00:00", f"2025-01-0{k}") for k in "12"])
    other = open_store(store.url)
    try:
        with other.transaction() as tx:
            other.scheduled_runs.transition(a, "SCHEDULED", "PENDING", reason="theirs", tx=tx)
            thread, out = in_thread(
                store, lambda: runs.transition_many([a, b], "SCHEDULED", "PENDING")
            )
            if store.backend == "postgresql":
                # the locked row is skipped, not waited for: no deadlock between passes
                thread.join(timeout=10)
                assert out == [[b]]
            else:
                time.sleep(0.1)  # SQLite: it waits for the other's write lock
                assert thread.is_alive()
    finally:
        other.close()
    thread.join(timeout=10)
    assert out == [[b]]
    assert [h.reason for h in runs.history(a)] == ["tick recorded", "theirs"]


def test_set_job_records_the_job_of_that_run_only(store: Store) -> None:
    runs = store.scheduled_runs
    a, b = runs.create([spec(f"2025-01-0{k}T02:00:00+00:00", f"2025-01-0{k}") for k in "12"])
    runs.set_job(a, 7)
    runs.set_job(a, 9)  # its current job
    runs.set_job("nosuch", 1)
    assert [runs.get(i).job_id for i in (a, b)] == [9, None]  # type: ignore[union-attr]


def test_due_gives_the_scheduled_runs_up_to_and_at_the_instant_oldest_tick_first(
    store: Store,
) -> None:
    runs = store.scheduled_runs
    at = "2025-03-10T06:30:00+00:00"
    ticks = [
        "2025-03-10T07:00:00+00:00",
        at,
        "2025-03-10T06:30:00.500000+00:00",  # half a second after `at`
        "2025-03-10T06:00:00+00:00",
        "2025-03-10T05:00:00+00:00",
    ]
    late, on_time, half, early, queued = runs.create([spec(t) for t in ticks])
    runs.transition(queued, "SCHEDULED", "PENDING")  # its job is queued already

    def due(moment: str) -> list[str]:
        return [r.id for r in runs.due(moment)]

    assert due(at) == [early, on_time]
    assert due("2025-03-10T06:30:00.250000+00:00") == [early, on_time]
    assert due("2025-03-10T06:30:00.500000+00:00") == [early, on_time, half]
    assert due("2025-03-10T08:00:00+00:00") == [early, on_time, half, late]
    assert due("2025-03-10T05:59:59.999999+00:00") == []


def test_next_waiting_is_the_first_later_window_waiting_for_an_earlier_one(store: Store) -> None:
    runs = store.scheduled_runs
    days = [f"2025-01-0{k}" for k in range(1, 7)]
    ids = runs.create([spec(f"{d}T02:00:00+00:00", d) for d in days])
    (elsewhere,) = runs.create([_other(spec("2025-01-02T02:00:00+00:00", days[1]), pipeline="q")])
    waiting = {0: None, 2: ids[0], 4: ids[0]}  # day index -> the run it waits on
    for k, on in waiting.items():
        runs.transition(ids[k], "SCHEDULED", "PENDING", values={"waiting_on": on})
    runs.transition(ids[1], "SCHEDULED", "PENDING")  # queued, waiting on nothing
    runs.transition(elsewhere, "SCHEDULED", "PENDING", values={"waiting_on": ids[0]})
    _drive(store, ids[3], "PENDING", "RUNNING")  # was waiting, runs now

    def after(k: int) -> str | None:
        run = runs.get(ids[k])
        assert run is not None
        found = runs.next_waiting(run)
        return None if found is None else found.id

    assert after(0) == ids[2]  # day 2 waits on nothing; another pipeline's day 2 is not it
    assert after(2) == ids[4]  # a RUNNING one no longer waits
    assert after(4) is None and after(5) is None


def test_by_dates_gives_a_schedules_runs_of_those_dates_however_many(store: Store) -> None:
    runs = store.scheduled_runs
    # 600 asked dates, read 500 at a time: runs on both sides of that boundary
    dates = [(date(2020, 1, 1) + timedelta(days=k)).isoformat() for k in range(600)]
    mine = runs.create([spec(f"{dates[k]}T02:00:00+00:00", dates[k]) for k in (0, 499, 500, 599)])
    runs.create(
        [
            _other(spec(f"{dates[0]}T02:00:00+00:00", dates[0]), schedule="hourly"),
            _other(spec(f"{dates[0]}T02:00:00+00:00", dates[0]), pipeline="q"),
            spec("2030-01-01T02:00:00+00:00", "2030-01-01"),  # not asked for
        ]
    )
    assert sorted(r.id for r in runs.by_dates("p", "nightly", dates)) == sorted(mine)
    assert [r.id for r in runs.by_dates("p", "nightly", [dates[499]])] == [mine[1]]
    assert runs.by_dates("p", "nightly", []) == []


def test_last_failure_is_the_latest_transition_to_failed_even_when_retried_since(
    store: Store,
) -> None:
    runs = store.scheduled_runs
    assert runs.last_failure() is None
    acme, zeta = runs.create(
        [
            spec("2025-01-01T02:00:00+00:00", "2025-01-01", tenant="acme"),
            spec("2025-01-02T02:00:00+00:00", "2025-01-02", tenant="zeta"),
        ]
    )
    _drive(store, acme, "PENDING", "RUNNING", "FAILED")
    _drive(store, zeta, "PENDING", "RUNNING", "FAILED")
    _drive(store, acme, "PENDING", "RUNNING", "COMPLETED")  # retried to success
    found = runs.last_failure()
    assert found is not None and found[0].id == zeta
    found = runs.last_failure(tenant="acme")
    assert found is not None
    run, step = found
    assert (run.id, run.state) == (acme, "COMPLETED")
    assert (step.run_id, step.from_state, step.to_state, step.error) == (
        acme,
        "RUNNING",
        "FAILED",
        "boom",
    )
    assert runs.last_failure(pipeline="p", tenant="zeta") is not None
    assert runs.last_failure(pipeline="q") is None


def test_latest_of_is_the_run_with_the_latest_tick_of_that_schedule(store: Store) -> None:
    runs = store.scheduled_runs
    assert runs.latest_of("p", "nightly") is None
    ticks = [
        "2025-03-10T06:30:00+00:00",
        "2025-03-10T06:30:00.500000+00:00",
        "2025-03-09T06:30:00+00:00",
    ]
    _, latest, _ = runs.create([spec(t) for t in ticks])
    runs.create(
        [
            _other(spec("2026-01-01T00:00:00+00:00"), schedule="hourly"),
            _other(spec("2026-01-01T00:00:00+00:00"), pipeline="q"),
        ]
    )
    assert runs.latest_of("p", "nightly") == latest
    with store.transaction() as tx:
        assert runs.latest_of("p", "nightly", tx=tx) == latest


def test_later_window_kept_is_a_later_window_of_the_batch_that_may_still_run(
    store: Store,
) -> None:
    runs = store.scheduled_runs
    cutoff = "2025-02-01T00:00:00+00:00"
    days = [f"2025-01-0{k}" for k in range(1, 5)]
    first, second, third = runs.create(
        [spec(f"{d}T02:00:00+00:00", d, batch="b1") for d in days[:3]]
    )
    runs.create([spec(f"{days[3]}T02:00:00+00:00", days[3], batch="b2")])  # another batch
    _drive(store, first, "PENDING", "RUNNING", "FAILED", ended_at="2025-01-05T00:00:00+00:00")

    def kept(run_id: str = first) -> bool:
        run = runs.get(run_id)
        assert run is not None
        return runs.later_window_kept(run, cutoff)

    assert kept()  # its later windows have not run yet
    assert not kept(third)  # an earlier window that has not run is no later one
    _drive(store, second, "PENDING", "RUNNING", "COMPLETED")
    _drive(store, third, "PENDING", "RUNNING", "FAILED", ended_at="2025-01-20T00:00:00+00:00")
    assert not kept()  # one completed, one failed as long ago as the cutoff
    _drive(store, third, "PENDING", "RUNNING", "FAILED", ended_at="2025-02-02T00:00:00+00:00")
    assert kept()  # failed since the cutoff: a retry of it reads its blockers
    _drive(store, third, "CANCELLED", ended_at="2025-01-20T00:00:00+00:00")
    assert not kept()
    with store.transaction() as tx:  # a purge reads in its own transaction, writes seen
        runs.transition(third, "CANCELLED", "PENDING", tx=tx)
        run = runs.get(first, tx=tx)
        assert run is not None and runs.later_window_kept(run, cutoff, tx=tx)
    # runs of no batch are no batch together
    lone, later = runs.create([spec(f"2025-03-0{k}T02:00:00+00:00", f"2025-03-0{k}") for k in "12"])
    _drive(store, lone, "PENDING", "RUNNING", "FAILED", ended_at="2025-01-05T00:00:00+00:00")
    lone_run = runs.get(lone)
    assert lone_run is not None and not runs.later_window_kept(lone_run, cutoff)
    assert runs.get(later).state == "SCHEDULED"  # type: ignore[union-attr]


def test_history_count_counts_the_transitions_of_those_runs(store: Store) -> None:
    runs = store.scheduled_runs
    a, b = runs.create([spec(f"2025-01-0{k}T02:00:00+00:00", f"2025-01-0{k}") for k in "12"])
    _drive(store, a, "PENDING", "RUNNING")
    assert runs.history_count([]) == 0
    assert runs.history_count([a]) == 3
    assert runs.history_count([a, b, "nosuch"]) == 4
    with store.transaction() as tx:
        assert runs.history_count([b], tx=tx) == 1
