"""`tenant_status` (what `onceflow status --tenant T` shows), on both stores: a tenant it
does not know is refused naming the known ones; a known one always has queue figures."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from onceflow import PipelineStateManager, QueueManager
from onceflow.config import Config
from onceflow.errors import ConfigError
from onceflow.schedule import backfill, pause_schedule, resume_schedule, tenant_status
from onceflow.state import Store

NIGHTLY = {"name": "nightly", "cron": "0 2 * * *", "tenant": "acme"}


def test_an_unknown_tenant_is_refused_naming_the_known_ones(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[NIGHTLY])
    QueueManager(store).enqueue("zeta", "other_pipeline")  # a tenant known by its job only
    with pytest.raises(ConfigError) as refused:
        tenant_status([config], "acmee", store=store)
    assert refused.value.field == "tenant" and refused.value.exit_code == 2
    assert str(refused.value) == (
        "--tenant 'acmee': no scheduled run, job or schedule has this tenant; "
        "known tenants: acme, zeta"
    )


def test_a_store_and_configs_with_no_tenant_say_so(store: Store) -> None:
    with pytest.raises(ConfigError, match="known tenants: none yet"):
        tenant_status([], "acme", store=store)


def test_a_configured_tenant_before_its_first_run_has_zeros_and_queue_figures(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[NIGHTLY])
    summary = tenant_status([config], "acme", store=store)
    assert not any(summary["counts"].values())
    assert summary["next_run"]["schedule"] == "nightly"
    assert summary["queue"] == {
        "tenant": "acme",
        "queued": 0,
        "due": 0,
        "running": 0,
        "completed": 0,
        "failed": 0,
        "avg_wait_seconds": None,
        "max_wait_seconds": None,
        "avg_start_wait_seconds": None,
        "max_start_wait_seconds": None,
    }


def test_a_tenant_known_by_its_runs_alone_is_shown(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[NIGHTLY])
    backfill(config, "2025-01-02", "2025-01-02", store=store)  # the only schedule's tenant
    other = project(schedules=[{"name": "nightly", "cron": "0 2 * * *", "tenant": "beta"}])
    # its schedule moved to another tenant since: its runs still make it known
    summary = tenant_status([other], "acme", store=store)
    assert summary["counts"]["PENDING"] == 1 and summary["queue"]["queued"] == 1


def test_the_seeds_customer_status_of_a_customer_without_runs_is_zeros(store: Store) -> None:
    summary = PipelineStateManager(store).get_customer_pipeline_status("new_customer")
    assert not any(summary["counts"].values()) and summary["queue"]["queued"] == 0


def test_a_paused_schedules_next_tick_is_not_the_tenants_next_run(
    store: Store, project: Callable[..., Config]
) -> None:
    config = project(schedules=[NIGHTLY])
    pause_schedule(config, "nightly", store=store)
    assert tenant_status([config], "acme", store=store)["next_run"] is None
    resume_schedule(config, "nightly", store=store)
    assert tenant_status([config], "acme", store=store)["next_run"]["schedule"] == "nightly"


def test_a_failure_retried_to_success_is_still_the_last_failure(
    store: Store, project: Callable[..., Config], broken: set[str]
) -> None:
    from onceflow.schedule import Worker

    retry = {"max_retries": 2, "backoff_base_minutes": 0.0001, "max_delay_minutes": 0.001}
    config = project(schedules=[{**NIGHTLY, "retry": retry}])
    backfill(config, "2025-01-02", "2025-01-02", store=store)
    broken.add("2025-01-02")
    assert Worker([config], store).run(max_jobs=1).retried == 1
    broken.clear()
    assert Worker([config], store, poll_seconds=0.05).run(until_idle=True).completed == 1
    status = tenant_status([config], "acme", store=store)
    assert status["counts"]["FAILED"] == 0 and status["queue"]["failed"] == 1
    failure = status["last_failure"]
    assert failure is not None and failure["run_date"] == "2025-01-02"
    assert "no such table (broken by the test)" in failure["error"]
    assert failure["state_now"] == "COMPLETED"
