"""`onceflow runs list|show|retry|cancel|purge`: scheduled runs as an operator handles them.

Each is a thin call of one function of `onceflow.schedule.runs`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from onceflow.cli.app import app, echo, examples
from onceflow.cli.options import ConfigsOpt, JsonOpt, load_configs
from onceflow.cli.render import print_json, print_rows
from onceflow.errors import typed_error

if TYPE_CHECKING:
    from onceflow.cli.layout import Kind

PANEL = "Scheduling"

runs_app = typer.Typer(
    help="Scheduled runs: `onceflow runs list`, `show ID`, `retry ID`, `cancel ID`, "
    "`purge --older-than DAYS`.",
    epilog=examples(
        "onceflow runs list --state FAILED",
        "onceflow runs show 974451893d3c45d4960307eb03f0ddad",
    ),
)
app.add_typer(runs_app, name="runs", rich_help_panel=PANEL)

#: States whose `ended_at` is the run's end (a requeued run keeps its last one).
ENDED = ("COMPLETED", "FAILED", "CANCELLED")
#: `runs list`'s columns (`cli.layout`: what gives way first on a narrow terminal). The
#: error is its first 70 characters: `runs show ID` and `--json` have it whole.
RUN_COLUMNS: tuple[tuple[str, Kind], ...] = (
    ("run id", "key"),  # copied into `runs show`, `retry`, `cancel`: kept whole longest
    ("pipeline/schedule", "value"),
    ("date", "value"),
    ("state", "value"),
    ("starts", "value"),
    ("ended (UTC)", "value"),
    ("error", "text"),
)
#: Left out first on a narrow terminal (docs/commands.md#output-width): the run id, its
#: state and data date stay longest; `runs show ID` has the rest.
RUN_HIDDEN_FIRST = ("starts", "ended (UTC)", "error", "pipeline/schedule", "date", "state")
RunIdArg = Annotated[str, typer.Argument(help="The run's id (onceflow runs list shows them).")]


@runs_app.command(
    "list",
    epilog=examples(
        "onceflow runs list --state FAILED",
        "onceflow runs list --schedule nightly --date 2025-01-23 --json",
    ),
)
def list_(
    config: ConfigsOpt = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--state",
            help="SCHEDULED, PENDING, RUNNING, COMPLETED, FAILED or CANCELLED.",
        ),
    ] = None,
    schedule: Annotated[
        str | None,
        typer.Option("--schedule", help="One schedule's runs (`backfill` for backfills)."),
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="One tenant's runs.")] = None,
    run_date: Annotated[
        str | None,
        typer.Option(
            "--date",
            help="Runs of this data date: YYYY-MM-DD, 'today' or 'yesterday' (in the first "
            "config's time zone).",
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """List scheduled runs, newest first: id, schedule, data date, state, starts, error."""
    from onceflow.schedule import list_runs

    runs = list_runs(
        load_configs(config),
        state=state,
        schedule=schedule,
        tenant=tenant,
        run_date=run_date,
        limit=limit,
    )
    if as_json:
        print_json([r.as_dict() for r in runs])
        return
    if not runs:
        echo("no scheduled runs match")
        return
    rows = []
    for r in runs:
        ended = (r.ended_at or "")[:19].replace("T", " ") if r.state in ENDED else ""
        error = typed_error(r.error_type, r.error)
        state = f"{r.state}*" if r.lease_expired_at else r.state
        where = f"{r.pipeline}/{r.schedule}"
        rows.append((r.id, where, r.run_date, state, str(r.attempt), ended, _short(error, 70)))
    print_rows(RUN_COLUMNS, rows, right=(4,), hide=RUN_HIDDEN_FIRST)
    expired = [r for r in runs if r.lease_expired_at]
    if expired:
        since = min(r.lease_expired_at or "" for r in expired)[:19].replace("T", " ")
        echo(
            f"* RUNNING, but its worker's lease ran out (at {since} UTC or later): the worker "
            "was killed or cut off; the next scheduler or worker pass (onceflow up, "
            "scheduler or worker) requeues it"
        )


@runs_app.command("show", epilog=examples("onceflow runs show 974451893d3c45d4960307eb03f0ddad"))
def show(run_id: RunIdArg, config: ConfigsOpt = None, as_json: JsonOpt = False) -> None:
    """One run: its fields, its queue job and every transition it went through."""
    from onceflow.schedule import run_details

    detail = run_details(load_configs(config), run_id)
    if as_json:
        print_json(detail)
        return
    echo(
        f"run {detail['id']}: {detail['pipeline']}/{detail['schedule']} "
        f"{detail['run_date']} - {detail['state']}"
    )
    for label, key in (
        ("window", "window_start"),
        ("tick", "tick"),
        ("tenant", "tenant"),
        ("priority", "priority"),
        ("starts", "attempt"),
        ("worker", "worker"),
        ("started", "started_at"),
        ("ended", "ended_at"),
        ("duration s", "duration_seconds"),
        ("next attempt", "next_attempt_at"),
        ("waiting on", "waiting_on"),
    ):
        value = detail[key]
        if key in ("ended_at", "duration_seconds") and detail["state"] not in ENDED:
            value = None  # a requeued run keeps its last end until it ends again
        if key == "window_start":
            value = f"{detail['window_start']} .. {detail['window_end']}"
        if value is not None:
            echo(f"  {label + ':':<14}{value}")
    if detail["error"]:
        echo(f"  {'error:':<14}{typed_error(detail['error_type'], detail['error'])}")
    job = detail["job"]
    if job is not None:
        due = datetime.fromtimestamp(job["run_after"], UTC).isoformat(timespec="seconds")
        echo(
            f"  {'job:':<14}{job['id']} {job['state']}, due {due}, claimed {job['attempts']}x"
            + (f" by {job['worker']}" if job["worker"] else "")
        )
    echo("  history:")
    for h in detail["history"]:
        why = f" ({h['reason']})" if h["reason"] else ""
        error = f" - {_short(h['error'], 90)}" if h["error"] else ""
        echo(f"    {h['at'][:19]}  {h['from_state'] or '-':>9} -> {h['to_state']}{why}{error}")


@runs_app.command(
    "retry",
    epilog=examples("onceflow runs retry 974451893d3c45d4960307eb03f0ddad   # and later windows"),
)
def retry(run_id: RunIdArg, config: ConfigsOpt = None, as_json: JsonOpt = False) -> None:
    """Queue a failed or cancelled run again (fresh retries), with the later failed windows."""
    from onceflow.schedule import retry_run

    report = retry_run(load_configs(config), run_id)
    if as_json:
        print_json(report.as_dict())
        return
    for one in report.requeued:
        echo(f"queued again: {one['run_id']} {one['run_date']} (was {one['was']})")
    echo("a worker runs them: onceflow worker, or onceflow up")


@runs_app.command(
    "cancel", epilog=examples("onceflow runs cancel 85b98b55e4b541059b506c3b7651d8e9")
)
def cancel(run_id: RunIdArg, config: ConfigsOpt = None) -> None:
    """Cancel a run that has not completed; a worker running it drops it before its load."""
    from onceflow.schedule import cancel_scheduled_run

    was = cancel_scheduled_run(load_configs(config), run_id)
    echo(f"cancelled: {run_id} (was {was})")


@runs_app.command(
    "purge",
    epilog=examples(
        "onceflow runs purge --older-than 90          # what would go",
        "onceflow runs purge --older-than 90 --yes    # delete it",
    ),
)
def purge(
    older_than: Annotated[
        float,
        typer.Option(
            "--older-than",
            help="Days: purge finished runs and jobs that ended more than this long ago.",
        ),
    ],
    config: ConfigsOpt = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Delete; without it, only say what would go.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete finished runs (with history and jobs) and finished jobs older than N days."""
    from onceflow.schedule import purge_runs

    report = purge_runs(load_configs(config), older_than, yes=yes)
    if as_json:
        print_json(report.as_dict())
        return
    states = ", ".join(f"{n} {state}" for state, n in report.runs.items())
    head = "purged" if report.deleted else "would purge (dry run; --yes deletes)"
    echo(
        f"{head}: {report.total_runs} run(s){f' ({states})' if states else ''} that ended "
        f"before {report.before[:19].replace('T', ' ')} UTC, {report.history} transition(s), "
        f"{report.jobs} job(s) of theirs, {report.other_jobs} other finished job(s)"
    )
    if report.kept:
        kept = ", ".join(f"{n} {why}" for why, n in report.kept.items())
        echo(f"kept: {kept}")


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."
