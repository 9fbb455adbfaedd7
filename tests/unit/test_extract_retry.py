"""Retries of an extraction attempt: transient source errors only, exponential backoff."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from onceflow.config import RetryConfig
from onceflow.errors import SourceError
from onceflow.extract import extractor


def _job(**retry: Any) -> Any:
    return SimpleNamespace(key="pg.t", retry=RetryConfig(**retry))


def _attempts(outcomes: list[BaseException | None]) -> tuple[list[int], Any]:
    calls: list[int] = []

    def attempt() -> Any:
        calls.append(len(calls) + 1)
        outcome = outcomes[len(calls) - 1]
        if outcome is not None:
            raise outcome
        return f"written on attempt {len(calls)}"

    return calls, attempt


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(extractor.time, "sleep", slept.append)
    monkeypatch.setattr("tenacity.nap.time.sleep", slept.append)
    return slept


def test_transient_errors_wait_backoff_doubling_up_to_the_cap_then_succeed(sleeps, caplog):
    calls, attempt = _attempts([SourceError("reset", transient=True)] * 4 + [None])
    job = _job(max_attempts=5, backoff_seconds=1.5, max_backoff_seconds=5)
    with caplog.at_level(logging.WARNING, logger="onceflow.extract"):
        assert extractor._with_retries(job, attempt) == "written on attempt 5"
    assert calls == [1, 2, 3, 4, 5]
    assert sleeps == [1.5, 3.0, 5.0, 5.0]
    warnings = [r.getMessage() for r in caplog.records]
    assert [w.split(":")[1].strip() for w in warnings] == [
        f"attempt {n} failed, retrying" for n in (1, 2, 3, 4)
    ]


def test_the_last_transient_error_is_raised_after_max_attempts(sleeps):
    calls, attempt = _attempts([SourceError(f"reset {n}", transient=True) for n in (1, 2, 3)])
    with pytest.raises(SourceError, match="reset 3"):
        extractor._with_retries(_job(max_attempts=3, backoff_seconds=0.25), attempt)
    assert calls == [1, 2, 3]
    assert sleeps == [0.25, 0.5]


@pytest.mark.parametrize(
    "error", [SourceError("no such table"), ValueError("a bug")], ids=["permanent", "other"]
)
def test_a_permanent_error_is_raised_at_once(sleeps, error):
    calls, attempt = _attempts([error, None])
    with pytest.raises(type(error)):
        extractor._with_retries(_job(max_attempts=3), attempt)
    assert calls == [1]
    assert sleeps == []


def test_a_permanent_error_after_a_transient_one_stops_the_retries(sleeps):
    calls, attempt = _attempts([SourceError("reset", transient=True), SourceError("gone"), None])
    with pytest.raises(SourceError, match="gone"):
        extractor._with_retries(_job(max_attempts=3, backoff_seconds=1), attempt)
    assert calls == [1, 2]
    assert sleeps == [1.0]


def test_one_attempt_means_no_retry(sleeps):
    calls, attempt = _attempts([SourceError("reset", transient=True), None])
    with pytest.raises(SourceError):
        extractor._with_retries(_job(max_attempts=1), attempt)
    assert calls == [1]
    assert sleeps == []
