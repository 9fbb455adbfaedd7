"""The retry policy of scheduled runs: exponential backoff, only for retryable errors.

Retry n (1-based) waits `backoff_base_minutes * backoff_multiplier**(n-1)` minutes,
capped at `max_delay_minutes` (defaults 1, 2, 4, 8 ... 60), spread by +/- `jitter`.
An error is retryable when its type is listed in `retry_on`; with no list, every error
is, except those waiting cannot heal (a config error). A type matches by its class name
or any base class's (`OnceflowError` matches every onceflow error), and `TransientError`
(the seed's name) matches a source error marked transient. The policy is stored with
each run as JSON, so a retry scheduled before a restart is still honoured after it.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from onceflow.clock import now
from onceflow.config import ScheduleRetryConfig

NEVER_RETRIED = ("ConfigError", "TransitionError")


def error_types(error: BaseException | str) -> list[str]:
    """The names an error matches in `retry_on`: its class and bases, `TransientError`."""
    if isinstance(error, str):
        return [error]
    names = [cls.__name__ for cls in type(error).__mro__ if cls not in (object, BaseException)]
    if getattr(error, "transient", False):
        names.insert(0, "TransientError")
    return names


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed run is retried (the seed's retry configuration)."""

    max_retries: int = 3
    backoff_base_minutes: float = 1.0
    backoff_multiplier: float = 2.0
    max_delay_minutes: float = 60.0
    jitter: float = 0.0
    retry_on: tuple[str, ...] | None = None

    @classmethod
    def from_config(cls, cfg: ScheduleRetryConfig) -> RetryPolicy:
        """The policy of a schedule's `retry:` section."""
        return cls(
            max_retries=cfg.max_retries,
            backoff_base_minutes=cfg.backoff_base_minutes,
            backoff_multiplier=cfg.backoff_multiplier,
            max_delay_minutes=cfg.max_delay_minutes,
            jitter=cfg.jitter,
            retry_on=tuple(cfg.retry_on) if cfg.retry_on is not None else None,
        )

    def to_json(self) -> str:
        """The policy as stored with a run."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> RetryPolicy:
        """The policy stored with a run (the default when none was)."""
        if not text:
            return cls()
        data: dict[str, Any] = json.loads(text)
        if data.get("retry_on") is not None:
            data["retry_on"] = tuple(data["retry_on"])
        return cls(**data)

    def is_retryable(self, error: BaseException | str) -> bool:
        """True when this error type may be retried under the policy."""
        names = error_types(error)
        if self.retry_on is None:
            return not any(n in NEVER_RETRIED for n in names)
        return any(n in self.retry_on for n in names)

    def should_retry(self, failed_attempts: int, error: BaseException | str) -> bool:
        """Retry after `failed_attempts` failures (the first run counts) with this error?"""
        return failed_attempts <= self.max_retries and self.is_retryable(error)

    def delay(self, retry_number: int, rng: random.Random | None = None) -> timedelta:
        """The wait before retry `retry_number` (1 for the first retry)."""
        minutes = self.backoff_base_minutes * self.backoff_multiplier ** max(0, retry_number - 1)
        minutes = min(minutes, self.max_delay_minutes)
        if self.jitter:
            minutes *= 1 + (rng or random).uniform(-self.jitter, self.jitter)
        return timedelta(minutes=minutes)

    def calculate_retry_time(self, retry_number: int, at: datetime | None = None) -> datetime:
        """When retry `retry_number` becomes due, counted from `at` (default now)."""
        return (at or now()) + self.delay(retry_number)
