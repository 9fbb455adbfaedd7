"""The line `worker` and `up` end with: each count says what happened."""

from __future__ import annotations

from onceflow.cli.schedule import summary_line
from onceflow.schedule.worker import WorkerReport


def test_a_run_that_failed_after_its_retry_is_not_said_to_be_retried_later() -> None:
    """One run, failed, retried once, failed again for good: it said `1 failed, 1 to
    retry`, as if a retry were still to come, of a run that had ended FAILED."""
    report = WorkerReport(claimed=2, failed=1, retried=1)
    line = summary_line("workers", report.as_dict())
    assert line == (
        "workers: 0 completed, 1 failed, 1 failed attempt retried, 0 deferred, "
        "0 lost (lease expired)"
    )
    assert "to retry" not in line


def test_the_retried_attempts_are_counted_in_the_plural() -> None:
    counts = WorkerReport(completed=1, retried=2, cancelled=1).as_dict()
    assert summary_line("worker", counts) == (
        "worker: 1 completed, 0 failed, 2 failed attempts retried, 0 deferred, "
        "0 lost (lease expired), 1 cancelled"
    )
