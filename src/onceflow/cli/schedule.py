"""scheduler, worker, up, backfill and `schedule preview|list|pause|resume|trigger`: the
schedule step's commands.

Each is a thin call of one function of `onceflow.schedule`. SIGTERM (and Ctrl-C) makes
a scheduler stop after its pass and a worker stop claiming and finish its current jobs.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from onceflow.cli.app import app, echo, examples, say_problem
from onceflow.cli.options import ConfigOpt, ConfigsOpt, JsonOpt, load_configs
from onceflow.cli.render import print_json, print_rows
from onceflow.redact import redact

if TYPE_CHECKING:
    from onceflow.cli.layout import Kind
    from onceflow.config import Config

PANEL = "Scheduling"

ConcurrencyOpt = Annotated[
    int,
    typer.Option(
        "--concurrency",
        "-n",
        min=1,
        max=64,
        envvar="ONCEFLOW_CONCURRENCY",
        help="Runs this process works on at once.",
    ),
]
LeaseOpt = Annotated[
    float,
    typer.Option(
        "--lease-seconds",
        min=1.0,
        envvar="ONCEFLOW_LEASE_SECONDS",
        help="A claimed job's lease: it returns to the queue this long after its worker's "
        "last heartbeat (a heartbeat every third of it).",
    ),
]
#: --until-idle of `up`, whose scheduler records and queues the due ticks first.
UntilIdleOpt = Annotated[
    bool,
    typer.Option(
        "--until-idle",
        help="Exit once every due tick is queued and nothing is queued or running.",
    ),
]
#: --until-idle of `worker`, which records no ticks: it runs what is in the queue.
WorkerUntilIdleOpt = Annotated[
    bool,
    typer.Option(
        "--until-idle",
        help="Exit once no run of its pipelines is left to run: none queued (a retry due "
        "later included) and none running.",
    ),
]
IntervalOpt = Annotated[
    float,
    typer.Option("--interval", min=0.1, help="Seconds between scheduler passes (at most)."),
]

#: The columns of `schedule list` and `schedule preview` (`cli.layout`: what gives way
#: first on a narrow terminal).
SCHEDULE_COLUMNS: tuple[tuple[str, Kind], ...] = (
    ("pipeline/schedule", "key"),
    ("cron", "value"),
    ("timezone", "value"),
    ("status", "value"),
    ("next tick (local)", "value"),
    ("next tick (UTC)", "value"),
    ("last run", "value"),
)
PREVIEW_COLUMNS: tuple[tuple[str, Kind], ...] = (
    ("local time", "key"),
    ("UTC", "value"),
    ("window (run date)", "value"),
    ("hours", "value"),
)
#: Left out first on a narrow terminal (docs/commands.md#output-width): a schedule's
#: name, whether it is paused, when it fires next and how its last run ended stay
#: longest; a tick's local time and the window it extracts.
SCHEDULE_HIDDEN_FIRST = (
    "next tick (UTC)",
    "timezone",
    "cron",
    "last run",
    "next tick (local)",
    "status",
)
PREVIEW_HIDDEN_FIRST = ("hours", "UTC", "window (run date)")

schedule_app = typer.Typer(
    help="Schedules: `onceflow schedule list`, `preview NAME`, `pause NAME`, `resume NAME`, "
    "`trigger NAME`.",
    epilog=examples(
        "onceflow schedule list --config shop.yml --config crm.yml",
        "onceflow schedule preview nightly --from 2025-03-07 --count 4",
        "onceflow schedule trigger nightly --date 2025-01-09",
    ),
)
NameArg = Annotated[str, typer.Argument(help="The schedule's name in onceflow.yml.")]
app.add_typer(schedule_app, name="schedule", rich_help_panel=PANEL)


class _Stop(threading.Event):
    """Set by SIGTERM or SIGINT; remembers which asked, and whether the command was to
    run until idle."""

    interrupted = False  # a Ctrl-C (SIGINT)
    terminated = False  # a SIGTERM
    until_idle = False


def _stop_on_signals(*, until_idle: bool = False) -> _Stop:
    """SIGTERM: stop claiming, finish the current runs, exit 0 (a service's planned stop:
    systemd, a rolling deploy). SIGINT (Ctrl-C): the same, then `interrupted` and exit
    130, as every command (a run is never abandoned half way: its lease would have to
    expire before anyone runs it). With `until_idle` (a script waiting for the queue to
    empty) a SIGTERM is an interruption too: `interrupted` and exit 143 (128 + 15), as
    `timeout` or a cancelled CI job must not read "all done" from it."""
    stop = _Stop()
    stop.until_idle = until_idle

    def handler(signum: int, frame: object) -> None:
        if signum == signal.SIGINT:
            stop.interrupted = True
        else:
            stop.terminated = True
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def _exit_if_interrupted(stop: _Stop | None, configs: Sequence[Config]) -> None:
    """After a Ctrl-C, or a SIGTERM of a command run until idle: say so, with the runs
    left to run, and exit 130 (143 for the SIGTERM)."""
    if stop is None:
        return
    if stop.interrupted:
        code = 130
    elif stop.terminated and stop.until_idle:
        code = 143
    else:
        return
    from onceflow.schedule.api import still_queued

    left = still_queued(configs)
    say_problem(
        f"interrupted: {left} run(s) still queued (SCHEDULED or PENDING); "
        "`onceflow up` or `onceflow worker` runs them"
    )
    raise typer.Exit(code)


@app.command(
    rich_help_panel=PANEL,
    epilog=examples(
        "onceflow scheduler --config onceflow.yml      # until SIGTERM",
        "onceflow scheduler --once --json",
    ),
)
def scheduler(
    config: ConfigsOpt = None,
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    interval: IntervalOpt = 5.0,
    as_json: JsonOpt = False,
) -> None:
    """Turn due ticks into queued runs; requeue expired jobs; fail stuck runs."""
    from onceflow.schedule import run_scheduler

    stop = None if once else _stop_on_signals()
    configs = load_configs(config)
    report = run_scheduler(configs, once=once, interval=interval, stop=stop)
    if as_json:
        print_json(report.as_dict())
    else:
        echo(
            f"scheduler: {report.recorded} tick(s) recorded, {report.queued} run(s) queued, "
            f"{report.requeued} job(s) requeued, {len(report.stuck)} stuck run(s) failed"
        )
        for line in report.errors:
            echo(f"  skipped: {line}")
        for line in report.paused:
            echo(f"  paused: {line}; no ticks recorded")
        _say_missed(report.missed)
    _exit_if_interrupted(stop, configs)
    if report.errors:  # the rest of the pass was done; these need a fix
        raise typer.Exit(1)


@app.command(
    rich_help_panel=PANEL,
    epilog=examples(
        "onceflow worker --config shop.yml --config crm.yml --concurrency 4",
        "onceflow worker --until-idle --json     # run what is queued, then exit",
    ),
)
def worker(
    config: ConfigsOpt = None,
    concurrency: ConcurrencyOpt = 1,
    lease_seconds: LeaseOpt = 30.0,
    until_idle: WorkerUntilIdleOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run queued runs of the given pipelines; SIGTERM finishes the current ones, then exits."""
    from onceflow.errors import OnceflowError
    from onceflow.schedule import Worker

    configs, stop = load_configs(config), _stop_on_signals(until_idle=until_idle)
    runner = Worker(configs, concurrency=concurrency, lease_seconds=lease_seconds)
    try:
        report = runner.run(stop, until_idle=until_idle)
    except OnceflowError as error:  # the store went away for good: stderr says it
        if as_json:  # and a script reading stdout still gets what was done, and why not more
            print_json({**runner.report.as_dict(), "error": redact(str(error))})
        raise
    _summary("worker", report.as_dict(), as_json, stop=(stop, configs))


@app.command(
    rich_help_panel=PANEL,
    epilog=examples(
        "onceflow up                       # until Ctrl-C / SIGTERM",
        "onceflow up --until-idle          # catch up, run what is due, exit",
    ),
)
def up(
    config: ConfigsOpt = None,
    concurrency: ConcurrencyOpt = 2,
    lease_seconds: LeaseOpt = 30.0,
    until_idle: UntilIdleOpt = False,
    interval: IntervalOpt = 5.0,
    as_json: JsonOpt = False,
) -> None:
    """A scheduler and workers in one process: the single-machine default."""
    from onceflow.schedule import up as run_up

    configs, stop = load_configs(config), _stop_on_signals(until_idle=until_idle)
    result = run_up(
        configs,
        concurrency=concurrency,
        lease_seconds=lease_seconds,
        until_idle=until_idle,
        interval=interval,
        stop=stop,
    )
    s = result["scheduler"]
    if not as_json:
        echo(f"scheduler: {s['recorded']} tick(s) recorded, {s['queued']} run(s) queued")
        for line in s["skipped"]:
            echo(f"  skipped: {line}")
        for line in s["paused"]:
            echo(f"  paused: {line}; no ticks recorded")
        _say_missed(s["missed"])
    if s["skipped"] and not result["worker"]["failed"]:
        _summary("workers", result["worker"], as_json, full=result, stop=(stop, configs))
        raise typer.Exit(1)  # what was skipped was not done
    _summary("workers", result["worker"], as_json, full=result, stop=(stop, configs))


def _say_missed(missed: list[dict[str, Any]]) -> None:
    """A line per schedule whose catch-up policy left missed ticks out: not a failure
    (exit 0, the policy's choice), but said, with the backfill that runs them."""
    from onceflow.schedule.scheduler import missed_line

    for entry in missed:
        echo(f"  warning: {missed_line(entry)}")


def summary_line(who: str, counts: dict[str, Any]) -> str:
    """The worker's outcome counts as a line. `retried` counts attempts that failed and
    were queued again, not runs waiting for a retry: with `--until-idle` (and `up`) the
    retry has run by then, and its run is counted by its own outcome (`1 failed, 1 failed
    attempt retried`: one run, failed twice). It said `1 to retry` of a run that had
    already failed for good."""
    retried = int(counts["retried"])
    return (
        f"{who}: {counts['completed']} completed, {counts['failed']} failed, "
        f"{retried} failed attempt{'' if retried == 1 else 's'} retried, "
        f"{counts['deferred']} deferred, {counts['lost']} lost (lease expired)"
        + (f", {counts['cancelled']} cancelled" if counts.get("cancelled") else "")
        + (f", {counts['revoked']} revoked (past max_runtime)" if counts.get("revoked") else "")
    )


def _summary(
    who: str,
    counts: dict[str, Any],
    as_json: bool,
    full: dict[str, Any] | None = None,
    stop: tuple[_Stop, Sequence[Config]] | None = None,
) -> None:
    """The workers' counts as a line (or `full`, `up`'s whole result, as JSON); exit 130
    (143) after an interruption given by `stop`, else 1 when a run failed."""
    if as_json:
        print_json(full if full is not None else counts)
    else:
        echo(summary_line(who, counts))
        for line in counts.get("failures", []):
            echo(f"  failed: {line}")
    if stop is not None:  # a Ctrl-C outranks failures: the runs left are the news
        _exit_if_interrupted(*stop)
    if counts["failed"]:
        raise typer.Exit(1)


@app.command(
    rich_help_panel=PANEL,
    epilog=examples(
        "onceflow backfill --from 2025-01-01 --to 2025-01-31",
        "onceflow backfill --from 2025-01-01 --to 2025-01-31 --reprocess failed",
    ),
)
def backfill(
    start: Annotated[str, typer.Option("--from", help="First data date, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--to", help="Last data date, YYYY-MM-DD (inclusive).")],
    config: ConfigOpt = None,
    reprocess: Annotated[
        str,
        typer.Option(
            "--reprocess",
            metavar="none|failed|all",
            help="none: queue only dates not backfilled yet; failed: also requeue failed "
            "dates; all: also rerun done dates (re-extracted).",
        ),
    ] = "none",
    schedule: Annotated[
        str | None,
        typer.Option("--schedule", help="Take tables, tenant, priority and retries from it."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue one run per data date from --from to --to, idempotently."""
    from onceflow.config import load_config
    from onceflow.schedule import backfill as run_backfill

    report = run_backfill(load_config(config), start, end, schedule=schedule, reprocess=reprocess)
    if as_json:
        print_json(report.as_dict())
    else:
        echo(
            f"backfill {report.pipeline}: {len(report.created)} date(s) queued, "
            f"{len(report.requeued)} requeued, {len(report.unchanged)} unchanged"
        )


@schedule_app.command(
    "preview", epilog=examples("onceflow schedule preview nightly --from 2025-03-07 --count 4")
)
def preview(
    name: NameArg,
    config: ConfigOpt = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Start after this time (ISO 8601; local to the schedule "
            "without an offset; default now).",
        ),
    ] = None,
    count: Annotated[int, typer.Option("--count", min=1, max=10_000, help="How many ticks.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """List a schedule's next ticks: local time, UTC instant and the window each processes."""
    from onceflow.config import load_config
    from onceflow.schedule import coverage_gaps
    from onceflow.schedule import preview as run_preview

    cfg = load_config(config)
    ticks = run_preview(cfg, name, start=start, count=count)
    for warning in coverage_gaps(cfg, name):
        say_problem(f"warning: {warning}")
    if as_json:
        print_json([t.as_dict() for t in ticks])
        return
    rows = [
        (t.local.isoformat(), t.at.isoformat(), t.run_date.isoformat(), f"{t.window.hours:g}")
        for t in ticks
    ]
    print_rows(PREVIEW_COLUMNS, rows, hide=PREVIEW_HIDDEN_FIRST)


@schedule_app.command(
    "list", epilog=examples("onceflow schedule list --config shop.yml --config crm.yml")
)
def list_(config: ConfigsOpt = None, as_json: JsonOpt = False) -> None:
    """List the schedules: cron, zone, active or paused, next tick, last run."""
    from onceflow.schedule import list_schedules

    schedules = list_schedules(load_configs(config))
    if as_json:
        print_json([s.as_dict() for s in schedules])
        return
    if not schedules:
        echo("no schedules in the config (schedules: in onceflow.yml)")
        return
    rows = []
    for s in schedules:
        d = s.as_dict()
        last = d["last_run"]
        last_text = "none" if last is None else f"{last['run_date']} {last['state']}"
        rows.append(
            (
                f"{s.pipeline}/{s.schedule}",
                s.cron,
                s.timezone,
                "paused" if s.paused else "active",
                d["next_tick_local"] or "-",
                d["next_tick_utc"] or "-",
                last_text,
            )
        )
    print_rows(SCHEDULE_COLUMNS, rows, hide=SCHEDULE_HIDDEN_FIRST)
    for s in schedules:
        if s.paused:
            why = f" ({s.pause_reason})" if s.pause_reason else ""
            echo(
                f"paused: {s.pipeline}/{s.schedule} since {s.paused_at}{why}; "
                f"onceflow schedule resume {s.schedule}"
            )


@schedule_app.command(
    "pause",
    epilog=examples('onceflow schedule pause nightly --reason "source upgrade until 18:00"'),
)
def pause(
    name: NameArg,
    config: ConfigOpt = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why, shown by schedule list and scheduler.")
    ] = None,
) -> None:
    """Pause a schedule: no scheduler records its ticks until resumed; queued runs still run."""
    from onceflow.config import load_config
    from onceflow.schedule import pause_schedule

    change = pause_schedule(load_config(config), name, reason=reason)
    where = f"{change.pipeline}/{change.schedule}"
    if change.changed:
        echo(f"paused: {where}; no ticks are recorded until onceflow schedule resume {name}")
    else:
        echo(f"{where} was already paused (since {change.paused_at}); nothing changed")


@schedule_app.command(
    "resume",
    epilog=examples(
        "onceflow schedule resume nightly                # missed ticks: catch_up",
        "onceflow schedule resume nightly --skip-missed  # drop them",
    ),
)
def resume(
    name: NameArg,
    config: ConfigOpt = None,
    skip_missed: Annotated[
        bool,
        typer.Option(
            "--skip-missed",
            help="Record none of the ticks missed while paused (default: the schedule's "
            "catch_up policy decides, as after downtime).",
        ),
    ] = False,
) -> None:
    """Resume a paused schedule; its missed ticks follow its catch_up policy."""
    from onceflow.config import load_config
    from onceflow.schedule import resume_schedule

    change = resume_schedule(load_config(config), name, skip_missed=skip_missed)
    where = f"{change.pipeline}/{change.schedule}"
    if change.changed:
        echo(f"resumed: {where}; ticks missed while paused: {change.missed}")
    else:
        echo(f"{where} is not paused; nothing changed")


@schedule_app.command(
    "trigger",
    epilog=examples(
        "onceflow schedule trigger nightly          # the latest ended window",
        "onceflow schedule trigger nightly --date 2025-01-09",
    ),
)
def trigger(
    name: NameArg,
    config: ConfigOpt = None,
    run_date: Annotated[
        str | None,
        typer.Option(
            "--date",
            help="The data date, YYYY-MM-DD (default: the run date of the schedule's "
            "latest tick whose window has ended).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue one run of a schedule now for a data date, once per date (a manual run)."""
    from onceflow.config import load_config
    from onceflow.schedule import trigger_schedule

    report = trigger_schedule(load_config(config), name, run_date=run_date)
    if as_json:
        print_json(report.as_dict())
        return
    run = report.run
    if report.created:
        echo(f"queued: run {run.id} of {run.pipeline}/{name} for {run.run_date} (manual)")
        echo("a worker runs it: onceflow worker, or onceflow up")
    else:
        echo(
            f"exists: run {run.id} of {run.pipeline}/{name} for {run.run_date} is {run.state} "
            f"(triggered before); {_rerun_hint(run.id, run.state, run.run_date, run.schedule)}"
        )
    if report.paused:
        echo(f"note: schedule {name} is paused; this run runs all the same")


def _rerun_hint(run_id: str, state: str, run_date: str, schedule: str) -> str:
    from onceflow.schedule.runs import redo_command

    if state in ("FAILED", "CANCELLED"):
        return f"to run it again: onceflow runs retry {run_id}"
    if state == "COMPLETED":
        return f"to extract and load the date again: {redo_command(schedule, run_date)}"
    return f"it will run (onceflow runs show {run_id})"
