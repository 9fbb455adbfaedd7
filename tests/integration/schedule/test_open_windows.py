"""A run never starts before its window ends: a tick whose window is still open
(`window: same_day`) is queued due at the window's end; a backfill of a day not over
yet is refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest

from onceflow.config import Config
from onceflow.errors import ConfigError
from onceflow.schedule import Scheduler, backfill
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
