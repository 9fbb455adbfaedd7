"""The schedule step: cron schedules with a DST rule, scheduled runs, a durable priority
queue with leases, workers, retries and backfills; it runs pipelines through
`onceflow.pipeline`, above every other step.

The seed's four parts are public: `PipelineStateManager` (run state), `QueueManager`
(the queue), `ScheduleCalculator` with `calculate_next_run(cron, zone)` (schedule
calculation) and `RetryManager` with `RetryPolicy` (retry policy); the three managers
(managers.py) have awaitable forms for asyncio programs (`AsyncPipelineStateManager`...,
aio.py).

Every schedule command of the CLI is one function here: `run_scheduler` (`onceflow
scheduler`), `run_worker` (`worker`), `up`, `backfill`, `preview` (`schedule preview`),
`tenant_status` (`status --tenant`), `list_runs`, `run_details`, `retry_run`,
`cancel_scheduled_run`, `purge_runs` (`onceflow runs ...`), `list_schedules`,
`pause_schedule`, `resume_schedule`, `trigger_schedule` (`onceflow schedule ...`); and
`check_config` (`onceflow check`: the config, its sources' drivers and its schedules'
coverage).
"""

from onceflow.schedule.aio import AsyncPipelineStateManager, AsyncQueueManager, AsyncRetryManager
from onceflow.schedule.api import (
    BackfillReport,
    backfill,
    check_config,
    coverage_gaps,
    preview,
    run_scheduler,
    run_worker,
    tenant_status,
    up,
)
from onceflow.schedule.cron import ScheduleCalculator, Tick, calculate_next_run
from onceflow.schedule.managers import PipelineStateManager, QueueManager, RetryManager
from onceflow.schedule.purge import PurgeReport, purge_runs
from onceflow.schedule.retry import RetryPolicy
from onceflow.schedule.runs import (
    RetryReport,
    cancel_scheduled_run,
    list_runs,
    retry_run,
    run_details,
)
from onceflow.schedule.scheduler import PassReport, Scheduler
from onceflow.schedule.schedules import (
    PauseChange,
    ScheduleInfo,
    TriggerReport,
    list_schedules,
    pause_schedule,
    resume_schedule,
    trigger_schedule,
)
from onceflow.schedule.worker import Worker, WorkerReport

__all__ = [
    "AsyncPipelineStateManager",
    "AsyncQueueManager",
    "AsyncRetryManager",
    "BackfillReport",
    "PassReport",
    "PauseChange",
    "PipelineStateManager",
    "PurgeReport",
    "QueueManager",
    "RetryManager",
    "RetryPolicy",
    "RetryReport",
    "ScheduleCalculator",
    "ScheduleInfo",
    "Scheduler",
    "Tick",
    "TriggerReport",
    "Worker",
    "WorkerReport",
    "backfill",
    "calculate_next_run",
    "cancel_scheduled_run",
    "check_config",
    "coverage_gaps",
    "list_runs",
    "list_schedules",
    "pause_schedule",
    "preview",
    "purge_runs",
    "resume_schedule",
    "retry_run",
    "run_details",
    "run_scheduler",
    "run_worker",
    "tenant_status",
    "trigger_schedule",
    "up",
]
