"""A run never starts before its window ends: a tick whose window is still open
(`window: same_day`) is queued due at the window's end; a backfill of a day not over
yet is refused; a window that has not settled (`settle`) waits."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from onceflow.config import Config
from onceflow.errors import ConfigError
from onceflow.lake import sidecar_path
from onceflow.schedule import Scheduler, Worker, backfill
from onceflow.state import Store


def test_a_same_day_tick_is_due_when_its_window_ends(
    store: Store, project: Callable[..., Config]
) -> None:
    moment = datetime.now(UTC)
    start = (moment - timedelta(hours=1)).isoformat()
    schedule = {"name": "hourly", "cron": "* * * * *", "window": "same_day", "start": start}
    config = project(schedules=[schedule])
    assert Scheduler([config], store).run_once(moment).queued == 1
    (run,) = store.scheduled_runs.find()
    assert run.run_date == moment.date().isoformat()
    job = store.queue.live_job_of_run(run.id)
    assert job is not None
    assert job.run_after == datetime.fromisoformat(run.window_end).timestamp()
    assert store.queue.claim("w") == []  # not before midnight


def test_a_backfill_of_a_day_not_over_yet_is_refused(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project()
    today = date.today()
    with pytest.raises(ConfigError, match=rf"--to {today + timedelta(days=2)}: its window ends"):
        backfill(config, today - timedelta(days=1), today + timedelta(days=2), store=store)
    assert store.scheduled_runs.find() == []
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    assert backfill(config, yesterday, yesterday, store=store).created == [str(yesterday)]


def test_a_run_whose_window_has_not_settled_waits_without_spending_an_attempt(
    store: Store, project: Callable[..., Config]
) -> None:
    """`settle`: a window counts as complete only that long after its end. A run queued
    before then (a 00:05 cron with `settle: 2h`) used to be refused as a window that has
    not ended, and fail after its retries; it waits in the queue until the window settles."""
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    config = project(extra={"settle": "30h"})
    assert backfill(config, yesterday, yesterday, store=store).created == [str(yesterday)]
    report = Worker([config], store, worker_id="w").run(max_jobs=1)
    assert (report.deferred, report.failed) == (1, 0)
    (run,) = store.scheduled_runs.find()
    assert run.state == "PENDING" and run.attempt == 0
    job = store.queue.live_job_of_run(run.id)
    assert job is not None
    settled = datetime.fromisoformat(run.window_end).timestamp() + 30 * 3600
    assert job.run_after == pytest.approx(settled, abs=5)
    assert store.queue.claim("w") == []  # not before the window has settled
    # once it has (here: a config whose settle has passed), the run completes
    store.queue.reschedule(job.id, 0.0)
    settled_config = project(extra={"settle": "1m"})
    assert Worker([settled_config], store).run(until_idle=True).completed == 1


def test_a_window_that_has_not_settled_is_refused_like_one_that_has_not_ended(
    project: Callable[..., Config],
) -> None:
    from onceflow.extract import extract

    config = project(extra={"settle": "30h"})
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    with pytest.raises(ConfigError, match=r"settle gives rows .* more to arrive"):
        extract(config, yesterday)
    summary = extract(config, yesterday, allow_partial=True)
    assert summary.ok
    (table,) = summary.results
    assert json.loads(sidecar_path(Path(table.file_path)).read_text())["partial"] is True
    assert table.partial is True  # a caller of the API learns it without the sidecar
