"""`retry_on` against a failed table: the table's own error (its class, bases and the
transient marker) reaches the policy, not only the step's ExtractError or LoadError."""

from __future__ import annotations

import json
from collections.abc import Callable

from onceflow.config import Config
from onceflow.schedule import RetryManager, Worker, backfill
from onceflow.state import Store

# nothing listens there: every connection is refused, a transient source error
REFUSED = "postgresql://postgres@127.0.0.1:5999/nope"
FAST = {"backoff_base_minutes": 0.001, "max_delay_minutes": 0.01}


def unreachable(project: Callable[..., Config], retry: dict[str, object]) -> Config:
    return project(
        schedules=[{"name": "nightly", "cron": "0 2 * * *", "retry": {**FAST, **retry}}],
        extra={
            "sources": {"src": {"url": REFUSED}},
            "retry": {"max_attempts": 1},  # the extractor's own retries: none
        },
    )


def test_retry_on_transient_error_retries_a_table_whose_source_refused(
    store: Store, project: Callable[..., Config]
) -> None:
    config = unreachable(project, {"max_retries": 2, "retry_on": ["TransientError"]})
    backfill(config, "2025-01-02", "2025-01-02", store=store)
    report = Worker([config], store, poll_seconds=0.05).run(until_idle=True)
    assert (report.retried, report.failed) == (2, 1)
    (run,) = store.scheduled_runs.find()
    assert run.state == "FAILED" and run.error_type == "ExtractError"
    names = json.loads(run.error_types or "[]")
    assert names[:2] == ["TransientError", "SourceError"]
    assert {"ExtractError", "OnceflowError", "Exception"} <= set(names)
    # judged again later by its recorded names, as the worker judged it
    manager = RetryManager(store)
    assert manager.should_retry(run.id, {"max_retries": 5, "retry_on": ["SourceError"]})
    assert not manager.should_retry(run.id, {"max_retries": 5, "retry_on": ["LoadError"]})


def test_retry_on_a_base_class_matches_and_an_unlisted_type_does_not(
    store: Store, project: Callable[..., Config]
) -> None:
    config = unreachable(project, {"max_retries": 1, "retry_on": ["OnceflowError"]})
    backfill(config, "2025-01-02", "2025-01-02", store=store)
    assert Worker([config], store, poll_seconds=0.05).run(until_idle=True).retried == 1
    other = unreachable(project, {"max_retries": 1, "retry_on": ["TimeoutError"]})
    backfill(other, "2025-01-03", "2025-01-03", store=store)
    report = Worker([other], store, poll_seconds=0.05).run(until_idle=True)
    assert (report.retried, report.failed) == (0, 1)
