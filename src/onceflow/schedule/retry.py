"""The retry policy of scheduled runs: exponential backoff, only for retryable errors.

Retry n (1-based) waits `backoff_base_minutes * backoff_multiplier**(n-1)` minutes,
spread by +/- `jitter`, capped at `max_delay_minutes` (defaults 1, 2, 4, 8 ... 60).
An error is retryable when its type is listed in `retry_on`; with no list, every error
is, except those waiting cannot heal (a config error). A type matches by its class name
or any base class's (`OnceflowError` matches every onceflow error), and `TransientError`
(the seed's name) matches a source error marked transient. The policy is stored with
each run as JSON, so a retry scheduled before a restart is still honoured after it.

The seed's spellings are accepted wherever a policy is given: `retry_on_errors` for
`retry_on` (`RetryPolicy(retry_on_errors=[...])`), and a plain mapping such as
`{"max_retries": 3, "backoff_multiplier": 2, "retry_on_errors": [...]}`, checked
like a `retry:` section of onceflow.yml.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import ValidationError

from onceflow.clock import now
from onceflow.config import ScheduleRetryConfig
from onceflow.errors import ConfigError, check_error_name, error_names, names_of
from onceflow.state.scheduled_runs import FAILED

NEVER_RETRIED = ("ConfigError", "TransitionError")
# A blocked run waits for the fix of the window before it, never for time: no policy
# retries it (the blocker's reprocess requeues it).
BLOCKED = "BlockedRunError"
# "TimeoutError: read timed out": the way Python prints an exception, and the way callers
# pass one as a message (the seed's mark_as_failed takes a string)
_TYPED_MESSAGE = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception))\s*:")


def error_type_of(error: BaseException | str) -> str | None:
    """The type name of an error: its class, or the `Name:` a message starts with
    (`"TimeoutError: read timed out"`); None for a message without one."""
    if isinstance(error, BaseException):
        return type(error).__name__
    match = _TYPED_MESSAGE.match(error)
    return match.group(1).rsplit(".", 1)[-1] if match else None


#: The error of the history step that requeues a run whose worker was lost (its job's
#: lease expired): such a step is a failed attempt, counted against the retry budget.
WORKER_LOST = "WorkerLostError"


class _Step(Protocol):
    @property
    def to_state(self) -> str: ...

    @property
    def reason(self) -> str | None: ...

    @property
    def error(self) -> str | None: ...


def is_lost_attempt(step: _Step) -> bool:
    """Whether a history step is an attempt whose worker was lost (requeued or failed)."""
    return bool(step.error and step.error.startswith(f"{WORKER_LOST}:"))


def failures_since_reprocess(history: Sequence[_Step]) -> int:
    """Failures in a run's history since it was last reprocessed: the count a retry
    budget (`max_retries`) is spent against. An attempt whose worker was lost (its lease
    expired) is one: else a run that kills its worker every time (out of memory) would be
    requeued for ever."""
    count = 0
    for step in history:
        if step.reason and step.reason.startswith("reprocess"):
            count = 0
        elif step.to_state == FAILED or is_lost_attempt(step):
            count += 1
    return count


def lost_since_reprocess(history: Sequence[_Step]) -> int:
    """How many attempts since the last reprocess lost their worker."""
    count = 0
    for step in history:
        if step.reason and step.reason.startswith("reprocess"):
            count = 0
        elif is_lost_attempt(step):
            count += 1
    return count


ErrorLike = BaseException | str | Sequence[str]


def error_types(error: ErrorLike) -> list[str]:
    """The names an error matches in `retry_on`: its class and bases, `TransientError`
    when it is marked transient (`onceflow.errors.error_names`). A type name alone
    stands for its known class and bases (`TimeoutError` -> `OSError`, `Exception`), as
    does a message that starts with one (`"TimeoutError: read timed out"`, as
    `error_type_of` reads it); a sequence of names (a failed table's, as the worker
    carries them) is taken as is."""
    if isinstance(error, BaseException):
        return list(error_names(error))
    if isinstance(error, str):
        # the whole message taken as a name matched no retry_on entry, and not ConfigError
        # either: "TimeoutError: ..." was never retried, "ConfigError: ..." always was
        return list(names_of(error_type_of(error) or error.strip()))
    return list(error)


@dataclass(frozen=True, init=False)
class RetryPolicy:
    """How a failed run is retried (the seed's retry configuration).

    `retry_on_errors` is the seed's name of `retry_on` (give one of them); either takes
    any iterable of error type names and is kept as a tuple.
    """

    max_retries: int = 3
    backoff_base_minutes: float = 1.0
    backoff_multiplier: float = 2.0
    max_delay_minutes: float = 60.0
    jitter: float = 0.0
    retry_on: tuple[str, ...] | None = None

    def __init__(
        self,
        max_retries: int = 3,
        backoff_base_minutes: float = 1.0,
        backoff_multiplier: float = 2.0,
        max_delay_minutes: float = 60.0,
        jitter: float = 0.0,
        retry_on: Iterable[str] | None = None,
        *,
        retry_on_errors: Iterable[str] | None = None,
    ) -> None:
        if retry_on is not None and retry_on_errors is not None:
            raise TypeError(
                "RetryPolicy: give retry_on or retry_on_errors (its seed name), not both"
            )
        names = retry_on if retry_on is not None else retry_on_errors
        if isinstance(names, str):
            # a lone string would become a tuple of its letters, and match nothing
            raise TypeError(f"RetryPolicy: retry_on is a list of error type names, got {names!r}")
        if names is not None:
            try:
                names = [check_error_name(n) for n in names]
            except ValueError as error:
                raise ConfigError(f"retry_on: {error}", field="retry_on") from None
        # frozen: the dataclass's own __init__ would set the fields the same way
        object.__setattr__(self, "max_retries", max_retries)
        object.__setattr__(self, "backoff_base_minutes", backoff_base_minutes)
        object.__setattr__(self, "backoff_multiplier", backoff_multiplier)
        object.__setattr__(self, "max_delay_minutes", max_delay_minutes)
        object.__setattr__(self, "jitter", jitter)
        object.__setattr__(self, "retry_on", None if names is None else tuple(names))

    @property
    def retry_on_errors(self) -> tuple[str, ...] | None:
        """The seed's name of `retry_on`."""
        return self.retry_on

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RetryPolicy:
        """The policy of a mapping of retry settings (onceflow's or the seed's names),
        checked like a `retry:` section: ConfigError names a bad or unknown key."""
        try:
            cfg = ScheduleRetryConfig.model_validate(dict(data))
        except ValidationError as error:
            first = error.errors()[0]
            key = ".".join(str(p) for p in first["loc"] if not isinstance(p, int))
            message = first["msg"].removeprefix("Value error, ")
            if first["type"] == "extra_forbidden":
                message = (
                    "unknown key; retry settings are max_retries, backoff_base_minutes, "
                    "backoff_multiplier, max_delay_minutes, jitter, retry_on (retry_on_errors)"
                )
            raise ConfigError(
                f"retry_config: {key}: {message}", field=f"retry_config.{key}"
            ) from None
        return cls.from_config(cfg)

    @classmethod
    def of(cls, config: RetryPolicy | ScheduleRetryConfig | Mapping[str, Any]) -> RetryPolicy:
        """A policy from any of the forms a caller may hold one in."""
        if isinstance(config, RetryPolicy):
            return config
        if isinstance(config, ScheduleRetryConfig):
            return cls.from_config(config)
        if isinstance(config, Mapping):
            return cls.from_mapping(config)
        raise TypeError(
            "retry_config: a RetryPolicy, a schedule's retry section or a mapping of retry "
            f"settings, got {type(config).__name__}"
        )

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
        names = data.pop("retry_on", None)
        policy = cls(**data)
        # as stored: a run recorded before names were checked keeps its policy
        object.__setattr__(policy, "retry_on", None if names is None else tuple(names))
        return policy

    def is_retryable(self, error: ErrorLike) -> bool:
        """True when this error type may be retried under the policy."""
        names = error_types(error)
        if BLOCKED in names:
            return False
        if self.retry_on is None:
            return not any(n in NEVER_RETRIED for n in names)
        # a dotted name (`psycopg.OperationalError`) matches by its class name
        wanted = {n.rsplit(".", 1)[-1] for n in self.retry_on}
        return any(n in wanted for n in names)

    def should_retry(self, failed_attempts: int, error: ErrorLike) -> bool:
        """Retry after `failed_attempts` failures (the first run counts) with this error?"""
        return failed_attempts <= self.max_retries and self.is_retryable(error)

    def delay(self, retry_number: int, rng: random.Random | None = None) -> timedelta:
        """The wait before retry `retry_number` (1 for the first retry)."""
        base, factor, cap = (
            self.backoff_base_minutes,
            self.backoff_multiplier,
            self.max_delay_minutes,
        )
        exponent = max(0, retry_number - 1)
        # compared in logs first: base * factor**exponent overflows a float (retry 40 of a
        # multiplier of 1e10), and any value past the cap is the cap
        if factor > 1 and base > 0 and exponent * math.log(factor) >= math.log(cap / base):
            minutes = cap
        else:
            minutes = min(base * factor**exponent, cap)
        if self.jitter:
            minutes *= 1 + (rng or random).uniform(-self.jitter, self.jitter)
        # the cap holds after the jitter too (as Celery's, tenacity's and AWS's "full
        # jitter" do): max_delay_minutes is a promise about the longest wait
        return timedelta(minutes=max(0.0, min(minutes, cap)))

    def calculate_retry_time(self, retry_number: int, at: datetime | None = None) -> datetime:
        """When retry `retry_number` becomes due, counted from `at` (default now)."""
        if at is not None and at.tzinfo is None:
            # a naive time would give a naive answer, which schedule_retry then refuses
            raise ValueError(
                f"calculate_retry_time: at {at.isoformat()} has no time zone; give an aware "
                "datetime (datetime.now(UTC), or .replace(tzinfo=ZoneInfo(...)))"
            )
        return (at or now()) + self.delay(retry_number)

    def next_retry(self, history: Sequence[_Step], error: ErrorLike) -> tuple[int, datetime | None]:
        """The failure a run with this `history` is failing now (counted since it was last
        reprocessed, the first run included) and when its retry is due: None when the
        policy retries it no more (budget spent, or an error type it never retries)."""
        failures = failures_since_reprocess(history) + 1
        if not self.should_retry(failures, error):
            return failures, None
        return failures, self.calculate_retry_time(failures)
