"""The scheduled-run contract, on SQLite and PostgreSQL: one run per (pipeline, schedule,
tick), conditional transitions with history, illegal ones refused, cursors that move once."""

from __future__ import annotations

import threading

import pytest

from onceflow.errors import TransitionError
from onceflow.state import RunSpec, Store

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
