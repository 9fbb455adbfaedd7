"""The retry policy's delays and error types, and schedule config errors: one line naming
the schedule and the field."""

from __future__ import annotations

import re
from typing import Any

import pytest

from onceflow.config import config_from_dict
from onceflow.errors import ConfigError, LockError, SourceError
from onceflow.schedule import RetryPolicy
from onceflow.schedule.retry import error_type_of

# The seed's retry configuration (its RetryManager section), as it writes it.
SEED_RETRY_CONFIG = {
    "max_retries": 3,
    "backoff_multiplier": 2,
    "retry_on_errors": ["TimeoutError", "TransientError"],
}


def test_default_backoff_is_1_2_4_8_minutes_capped_at_60() -> None:
    policy = RetryPolicy(max_retries=10)
    minutes = [policy.delay(n).total_seconds() / 60 for n in range(1, 10)]
    assert minutes == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_jitter_stays_within_its_fraction() -> None:
    policy = RetryPolicy(jitter=0.1)
    for n in (1, 3, 6):
        base = RetryPolicy().delay(n).total_seconds()
        got = policy.delay(n).total_seconds()
        assert 0.9 * base <= got <= 1.1 * base


def test_jitter_never_takes_a_delay_past_max_delay_minutes() -> None:
    import random

    policy = RetryPolicy(max_retries=10, jitter=0.5)
    rng = random.Random(7)
    delays = [policy.delay(n, rng).total_seconds() / 60 for n in range(7, 12) for _ in range(50)]
    assert max(delays) <= 60 and min(delays) >= 30  # capped after the jitter
    assert min(RetryPolicy(jitter=0.5).delay(1, rng).total_seconds() for _ in range(50)) > 0


def test_a_huge_multiplier_or_retry_number_is_capped_not_an_overflow() -> None:
    policy = RetryPolicy.from_mapping({"max_retries": 100, "backoff_multiplier": 1e10})
    assert policy.delay(40).total_seconds() == 60 * 60
    assert policy.delay(100).total_seconds() == 60 * 60
    assert RetryPolicy().delay(10_000).total_seconds() == 60 * 60


def test_retries_stop_after_max_retries_and_for_non_retryable_errors() -> None:
    policy = RetryPolicy(max_retries=2)
    assert policy.should_retry(1, "ExtractError") and policy.should_retry(2, "ExtractError")
    assert not policy.should_retry(3, "ExtractError")
    assert not policy.should_retry(1, ConfigError("bad"))
    only = RetryPolicy(retry_on=("TransientError", "LockError"))
    assert only.should_retry(1, SourceError("reset", transient=True))
    assert not only.should_retry(1, SourceError("no such table"))
    assert only.should_retry(1, LockError("held"))
    assert RetryPolicy(retry_on=("OnceflowError",)).is_retryable(LockError("held"))


def test_the_policy_survives_its_json() -> None:
    policy = RetryPolicy(3, 0.5, 3.0, 10.0, 0.2, ("LoadError",))
    assert RetryPolicy.from_json(policy.to_json()) == policy
    assert RetryPolicy.from_json(None) == RetryPolicy()


def test_retry_policy_takes_the_seeds_retry_on_errors() -> None:
    policy = RetryPolicy(retry_on_errors=["TimeoutError", "TransientError"])
    assert policy == RetryPolicy(retry_on=("TimeoutError", "TransientError"))
    assert policy.retry_on_errors == ("TimeoutError", "TransientError")
    seed = RetryPolicy(**SEED_RETRY_CONFIG)  # type: ignore[arg-type]
    assert (seed.max_retries, seed.backoff_multiplier) == (3, 2)
    assert seed.should_retry(1, "TimeoutError") and seed.should_retry(3, TimeoutError())
    assert seed.should_retry(1, SourceError("reset", transient=True))
    assert not seed.should_retry(1, "ValueError") and not seed.should_retry(4, "TimeoutError")
    assert RetryPolicy.from_json(seed.to_json()) == seed
    with pytest.raises(TypeError, match="not both"):
        RetryPolicy(retry_on=["A"], retry_on_errors=["B"])
    with pytest.raises(TypeError, match="list of error type names"):
        RetryPolicy(retry_on_errors="TimeoutError")


def test_a_retry_mapping_is_checked_like_a_retry_section() -> None:
    assert RetryPolicy.from_mapping(SEED_RETRY_CONFIG) == RetryPolicy(**SEED_RETRY_CONFIG)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"retry_config: max_retry: unknown key") as caught:
        RetryPolicy.from_mapping({"max_retry": 3})
    assert caught.value.field == "retry_config.max_retry"
    with pytest.raises(ConfigError, match=r"retry_config: max_retries: .*got -1"):
        RetryPolicy.of({"max_retries": -1})
    with pytest.raises(TypeError, match="got int"):
        RetryPolicy.of(3)  # type: ignore[arg-type]


def test_an_error_type_comes_from_its_class_or_its_message() -> None:
    assert error_type_of(TimeoutError("slow")) == "TimeoutError"
    assert error_type_of("TimeoutError: source did not answer") == "TimeoutError"
    assert error_type_of("psycopg.OperationalError: connection reset") == "OperationalError"
    assert error_type_of("source down: retry later") is None


BASE: dict[str, Any] = {
    "sources": {"shop": {"url": "sqlite:///shop.db"}},
    "tables": [{"source": "shop", "table": "orders"}],
}


@pytest.mark.parametrize(
    ("schedule", "field", "message"),
    [
        ({"cron": "61 * * * *"}, "schedules[nightly].cron", "minute 61 is out of range 0-59"),
        ({"cron": "0 25 * * *"}, "schedules[nightly].cron", "hour 25 is out of range 0-23"),
        ({"cron": "*/0 * * * *"}, "schedules[nightly].cron", "minute step '0' must be"),
        ({"cron": "0 2 * * 8"}, "schedules[nightly].cron", "day-of-week 8 is out of range 0-7"),
        ({"cron": "0 2 * 13 *"}, "schedules[nightly].cron", "month 13 is out of range 1-12"),
        ({"cron": "0 2 0 * *"}, "schedules[nightly].cron", "day-of-month 0 is out of range 1-31"),
        ({"cron": "0 2 * *"}, "schedules[nightly].cron", "expected 5 fields (minute hour"),
        ({"cron": "0 2 31 4 *"}, "schedules[nightly].cron", "'0 2 31 4 *' never fires"),
        ({"cron": "0 2 30 2 *"}, "schedules[nightly].cron", "'0 2 30 2 *' never fires"),
        ({"name": "backfill"}, "schedules[backfill].name", "'backfill' is reserved: backfill runs"),
        ({"name": "Manual"}, "schedules[Manual].name", "'Manual' is reserved"),
        ({"priority": True}, "schedules[nightly].priority", "whole number from 1 (highest) to 10"),
        ({"priority": 2.5}, "schedules[nightly].priority", "got 2.5"),
        ({"tenant": ""}, "schedules[nightly].tenant", "must be a non-empty name"),
        ({"tenant": " acme"}, "schedules[nightly].tenant", "got ' acme'"),
        (
            {"retry": {"retry_on": ["TimeoutErorr"]}},
            "schedules[nightly].retry.retry_on",
            "unknown error type 'TimeoutErorr' (did you mean TimeoutError?)",
        ),
        (
            {"retry": {"max_retries": True}},
            "schedules[nightly].retry.max_retries",
            "whole number from 0 to 100",
        ),
        ({"timezone": "Mars/Base"}, "schedules[nightly].timezone", "unknown time zone 'Mars/Base'"),
        ({"priority": 11}, "schedules[nightly].priority", "between 1 (highest) and 10, got 11"),
        ({"priority": 0}, "schedules[nightly].priority", "got 0"),
        ({"tables": ["orderz"]}, "schedules[nightly].tables", "unknown table 'orderz'"),
        ({"retry": {"max_retries": -1}}, "schedules[nightly].retry.max_retries", "got -1"),
        ({"catch_up": {"max": 0}}, "schedules[nightly].catch_up", "invalid catch-up policy"),
        ({"max_runtime": "soon"}, "schedules[nightly].max_runtime", "invalid duration 'soon'"),
        ({"window": "last_week"}, "schedules[nightly].window", "invalid window 'last_week'"),
    ],
)
def test_bad_schedule_input_is_one_line_naming_schedule_and_field(
    schedule: dict[str, Any], field: str, message: str
) -> None:
    entry = {"name": "nightly", "cron": "0 2 * * *", **schedule}
    with pytest.raises(ConfigError) as caught:
        config_from_dict({**BASE, "schedules": [entry]}, origin="onceflow.yml")
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith(f"onceflow.yml: {field}: ") and message in text
    assert caught.value.field == field


def test_a_good_schedule_reads_every_key() -> None:
    config = config_from_dict(
        {
            **BASE,
            "schedules": [
                {
                    "name": "nightly",
                    "cron": "0 2 * * *",
                    "timezone": "America/New_York",
                    "tables": ["orders"],
                    "tenant": "acme",
                    "priority": 1,
                    "retry": {"max_retries": 0, "retry_on_errors": ["TransientError"]},
                    "catch_up": {"max": 3},
                    "max_runtime": "1h30m",
                    "window": {"days_before": 2},
                    "start": "2025-01-01T00:00:00+00:00",
                }
            ],
        }
    )
    s = config.schedule("nightly")
    assert (s.priority, s.tenant, s.catch_up_policy, s.window_days_before) == (1, "acme", 3, 2)
    assert s.max_runtime_seconds == 5400 and s.retry.retry_on == ["TransientError"]
    assert config.schedule_zone(s).key == "America/New_York"
    with pytest.raises(ConfigError, match="schedule 'weekly' is not in the config"):
        config.schedule("weekly")


def test_an_error_answers_to_its_class_its_bases_and_the_transient_marker() -> None:
    from onceflow.errors import error_names, names_of

    assert error_names(SourceError("reset", transient=True)) == (
        "TransientError",
        "SourceError",
        "OnceflowError",
        "Exception",
    )
    assert error_names(TimeoutError("slow")) == ("TimeoutError", "OSError", "Exception")
    assert names_of("TimeoutError") == ("TimeoutError", "OSError", "Exception")
    assert names_of("LockError") == ("LockError", "OnceflowError", "Exception")
    assert names_of("OperationalError") == ("OperationalError",)


def test_retry_on_matches_any_name_a_failed_table_carries() -> None:
    table = ("TransientError", "SourceError", "ExtractError", "OnceflowError", "Exception")
    assert RetryPolicy(retry_on=["TransientError"]).is_retryable(table)
    assert RetryPolicy(retry_on=["OnceflowError"]).is_retryable(table)
    assert not RetryPolicy(retry_on=["TimeoutError"]).is_retryable(table)
    # a type recorded by its name alone answers to its known bases
    assert RetryPolicy(retry_on=["OSError"]).is_retryable("TimeoutError")
    # a dotted name (a driver's) matches by its class name
    assert RetryPolicy(retry_on=["psycopg.OperationalError"]).is_retryable("OperationalError")
    # a blocked run waits for its blocker's fix, never for a policy's retry
    assert not RetryPolicy().is_retryable(("BlockedRunError", "OnceflowError"))


def test_a_message_is_judged_by_the_type_it_starts_with_as_its_exception_is() -> None:
    listed = RetryPolicy(retry_on=["TimeoutError", "TransientError"])
    assert listed.is_retryable("TimeoutError: read timed out")
    assert listed.is_retryable(TimeoutError("read timed out"))
    assert RetryPolicy(retry_on=["OSError"]).is_retryable("TimeoutError: read timed out")
    assert not listed.is_retryable("KeyError: 'x'")
    # the default retries every error but the ones waiting cannot heal
    assert not RetryPolicy().is_retryable("ConfigError: unknown column x")
    assert not RetryPolicy().is_retryable(ConfigError("unknown column x"))
    assert RetryPolicy().is_retryable("ValueError: bad row")
    # a type name alone is still a type name
    assert listed.is_retryable("TimeoutError") and not RetryPolicy().is_retryable("ConfigError")


@pytest.mark.parametrize(
    "cron", ["0 2 29 2 *", "0 2 L * *", "0 2 * * 1#2", "0 2 * * mon-fri", "0 22-2 * * *"]
)
def test_cron_expressions_croniter_reads_are_still_accepted(cron: str) -> None:
    entry = {"name": "nightly", "cron": cron}
    assert config_from_dict({**BASE, "schedules": [entry]}).schedule("nightly").cron == cron


def test_a_calculator_names_the_bad_cron_field_too() -> None:
    from onceflow.schedule import ScheduleCalculator

    with pytest.raises(ValueError, match="hour 25 is out of range 0-23"):
        ScheduleCalculator("0 25 * * *")
    with pytest.raises(ValueError, match="never fires"):
        ScheduleCalculator("0 2 31 4 *")


def test_retry_on_takes_known_names_and_dotted_names_of_other_libraries() -> None:
    entry = {
        "name": "nightly",
        "cron": "0 2 * * *",
        "retry": {"retry_on": ["TransientError", "StuckRunError", "OSError", "psycopg.Error"]},
    }
    config = config_from_dict({**BASE, "schedules": [entry]})
    assert config.schedule("nightly").retry.retry_on == [
        "TransientError",
        "StuckRunError",
        "OSError",
        "psycopg.Error",
    ]
    with pytest.raises(ConfigError, match="unknown error type 'MyError'"):
        RetryPolicy(retry_on=["MyError"])
    # a policy stored before names were checked still reads
    stored = '{"max_retries": 1, "retry_on": ["TimeoutErorr"]}'
    assert RetryPolicy.from_json(stored).retry_on == ("TimeoutErorr",)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"priority": 2.5}, "priority must be a whole number from 1 (highest) to 10, got 2.5"),
        ({"priority": True}, "got True"),
        ({"priority": 99}, "priority must be between 1 (highest) and 10, got 99"),
        ({"tenant": ""}, "tenant must be non-empty text"),
        ({"pipeline": " "}, "pipeline must be non-empty text"),
    ],
)
def test_a_job_or_run_that_could_not_be_queued_is_refused_when_made(
    kw: dict[str, Any], message: str
) -> None:
    from onceflow.state import JobSpec, RunSpec

    job = {"pipeline": "shop", **kw}
    with pytest.raises(ValueError, match=re.escape(message)):
        JobSpec(**job)
    run = {"pipeline": "shop", "schedule": "s", "tick": "t", "run_date": "d"}
    with pytest.raises(ValueError, match=re.escape(message)):
        RunSpec(**{**run, "window_start": "a", "window_end": "b", **kw})
