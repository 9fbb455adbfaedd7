"""The `onceflow` command: each command is a thin call of the Python API."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from onceflow.cli_common import split_list
from onceflow.errors import ConfigError, OnceflowError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Batch data pipelines that are safe to rerun: SQL -> Parquet -> Delta Lake.",
)
_options: dict[str, Any] = {"debug": False}

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Path to onceflow.yml (default ./onceflow.yml)."),
]
DateOpt = Annotated[
    str | None, typer.Option("--date", "-d", help="Run date YYYY-MM-DD (default: yesterday).")
]
RunIdOpt = Annotated[
    str | None, typer.Option("--run-id", help="Override the deterministic run id.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.callback()
def _global(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    log_format: Annotated[str, typer.Option("--log-format", help="text or json")] = "text",
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING")] = "INFO",
) -> None:
    from onceflow.logs import setup_logging

    if log_format not in ("text", "json"):
        raise ConfigError(f"--log-format: expected 'text' or 'json', got {log_format!r}")
    _options["debug"] = debug
    setup_logging("DEBUG" if debug else log_level, log_format)


def _config(path: Path | None) -> Any:
    from onceflow.config import load_config

    return load_config(path)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _progress_runner(total: int) -> Any:
    """A rich progress bar on a terminal; None otherwise (log lines are printed instead)."""
    if not sys.stderr.isatty() or total == 0:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn("[bold]extract"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        transient=True,
    )


def _summarise(summary: Any, as_json: bool) -> None:
    if as_json:
        _print_json(summary.as_dict())
    else:
        counts = summary.counts()
        run = summary.run
        typer.echo(
            f"run {run.run_id}: {run.status} — {counts['extracted']} extracted, "
            f"{counts['skipped']} skipped, {counts['failed']} failed "
            f"({run.completed_tables}/{run.total_tables} tables complete, "
            f"restart {run.restart_count})"
        )
        for result in summary.results:
            if result.action == "failed":
                typer.echo(f"  failed: {result.error}", err=True)
        if getattr(summary, "load", None) is not None:
            c = summary.load.counts()
            typer.echo(
                f"load: {c['loaded']} files loaded, {c['skipped']} skipped, "
                f"{c['unchanged']} unchanged, {c['failed']} failed"
            )
            for r in summary.load.results:
                if r.error:
                    typer.echo(f"  load failed: {r.key}: {r.error}", err=True)
    if not summary.ok:
        raise typer.Exit(1)


def _run_extract(config: Any, *, step: str = "extract", **kwargs: Any) -> Any:
    from onceflow import pipeline

    extract = getattr(pipeline, step)  # extract, or run (extract then load)

    total = len(kwargs.get("tables") or config.tables)
    bar = _progress_runner(total)
    if bar is None:
        return extract(config, **kwargs)
    with bar:
        task = bar.add_task("", total=total)
        return extract(
            config,
            progress=lambda r: bar.update(
                task, advance=1, description=f"{r.table_key}: {r.action}"
            ),
            **kwargs,
        )


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder for the demo project.")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing demo.")] = False,
) -> None:
    """Scaffold a demo project: a SQLite shop database and an onceflow.yml."""
    from onceflow.demo import init_project

    path = init_project(directory, force=force)
    typer.echo(f"created {path}; next: cd {directory} && onceflow run")


@app.command()
def check(config: ConfigOpt = None) -> None:
    """Validate a config file."""
    cfg = _config(config)
    typer.echo(
        f"config ok: pipeline {cfg.pipeline}, {len(cfg.sources)} sources, {len(cfg.tables)} tables"
    )


@app.command("extract")
def extract_cmd(
    config: ConfigOpt = None,
    date: DateOpt = None,
    tables: Annotated[
        list[str] | None,
        typer.Option("--tables", "-t", help="Table keys or names (repeat, or comma-separate)."),
    ] = None,
    force_reprocess: Annotated[
        bool, typer.Option("--force-reprocess", help="Re-extract even committed tables.")
    ] = False,
    workers: Annotated[int | None, typer.Option("--workers", "-w", min=1)] = None,
    verify: Annotated[
        str, typer.Option("--verify", help="fast (size) or deep (checksum)")
    ] = "fast",
    run_id: RunIdOpt = None,
    url: Annotated[str | None, typer.Option("--url", help="Single-table mode: source URL.")] = None,
    source_name: Annotated[str | None, typer.Option("--source-name")] = None,
    table_name: Annotated[str | None, typer.Option("--table-name")] = None,
    full: Annotated[bool, typer.Option("--full", help="Single-table mode: full extract.")] = False,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="Single-table: cursor column.")
    ] = None,
    lake: Annotated[
        str | None, typer.Option("--lake", help="Single-table mode: lake folder.")
    ] = None,
    state: Annotated[
        str | None, typer.Option("--state", help="Single-table mode: state URL.")
    ] = None,
    timezone_name: Annotated[str | None, typer.Option("--timezone")] = None,
    lock_timeout: Annotated[
        float, typer.Option("--lock-timeout", help="Seconds to wait for the pipeline lock.")
    ] = 0.0,
    force_unlock: Annotated[
        bool,
        typer.Option("--force-unlock", help="First release the pipeline's lock, whoever holds it."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Extract tables for one run date into Parquet; committed tables are skipped."""
    from onceflow.config import config_from_dict

    if url or source_name or table_name:
        if not (url and source_name and table_name):
            raise ConfigError("single-table mode needs --url, --source-name and --table-name")
        if full and cursor:
            raise ConfigError("give either --full or --cursor COL, not both")
        extract_cfg = {"mode": "incremental", "cursor": cursor} if cursor else {"mode": "full"}
        cfg = config_from_dict(
            {
                "pipeline": "extract",
                "state": state or "sqlite:///.onceflow/state.db",
                "lake": lake or "./lake",
                "timezone": timezone_name or "UTC",
                "sources": {source_name: {"url": url}},
                "tables": [{"source": source_name, "table": table_name, "extract": extract_cfg}],
            },
            base_dir=str(Path.cwd()),
            origin="command line",
        )
    else:
        cfg = _config(config)
    selected = split_list(tables)
    summary = _run_extract(
        cfg,
        lock_timeout=lock_timeout,
        force_unlock=force_unlock,
        run_date=date,
        tables=selected or None,
        force_reprocess=force_reprocess,
        workers=workers,
        verify=verify,
        run_id=run_id,
    )
    _summarise(summary, as_json)


@app.command("run")
def run_cmd(
    config: ConfigOpt = None,
    date: DateOpt = None,
    tables: Annotated[list[str] | None, typer.Option("--tables", "-t")] = None,
    force_reprocess: Annotated[bool, typer.Option("--force-reprocess")] = False,
    workers: Annotated[int | None, typer.Option("--workers", "-w", min=1)] = None,
    verify: Annotated[str, typer.Option("--verify")] = "fast",
    run_id: RunIdOpt = None,
    lock_timeout: Annotated[
        float, typer.Option("--lock-timeout", help="Wait this long (s) for the pipeline lock.")
    ] = 0.0,
    force_unlock: Annotated[
        bool,
        typer.Option(
            "--force-unlock",
            help="First release the pipeline's locks (its own and its tables'), whoever "
            "holds them.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the whole pipeline for a run date: extract, then load (under the pipeline lock)."""
    cfg = _config(config)
    selected = split_list(tables)
    summary = _run_extract(
        cfg,
        step="run",
        lock_timeout=lock_timeout,
        force_unlock=force_unlock,
        run_date=date,
        tables=selected or None,
        force_reprocess=force_reprocess,
        workers=workers,
        verify=verify,
        run_id=run_id,
    )
    _summarise(summary, as_json)


@app.command()
def status(
    config: ConfigOpt = None,
    date: DateOpt = None,
    run_id: RunIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a run's extractions (default: the latest run)."""
    from onceflow.admin import status_report

    report = status_report(_config(config), date, run_id=run_id)
    if as_json:
        _print_json(report)
        return
    from rich.console import Console
    from rich.table import Table

    counts = report["status_counts"]
    title = (
        f"{report['run_id']} — {report['status']}, {report['completion_rate']:.0f}% complete, "
        f"restarts {report['restart_count']}, window {report['window_start']} → "
        f"{report['window_end']}"
    )
    table = Table(title=title)
    for column in ("table", "status", "attempts", "records", "size", "duration", "error"):
        table.add_column(column)
    for row in report["tables"]:
        table.add_row(
            row["table_key"],
            row["status"],
            str(row["attempts"]),
            "" if row["record_count"] is None else str(row["record_count"]),
            "" if row["file_size"] is None else str(row["file_size"]),
            "" if row["duration_seconds"] is None else f"{row['duration_seconds']:.2f}s",
            (row["error"] or "")[:80],
        )
    console = Console()
    console.print(table)
    console.print("  ".join(f"{k}: {v}" for k, v in counts.items()))
    if report["load"]:
        loads = Table(title="load")
        for column in ("table", "strategy", "delta version", "files", "lock", "failed"):
            loads.add_column(column)
        for row in report["load"]:
            files = ", ".join(f"{k} {v}" for k, v in row["files"].items() if v)
            lock = row["lock"] or ""
            failed = "; ".join(f"{f['file']}: {f['error']}"[:80] for f in row["failed_files"])
            if row["error"]:
                failed = f"[red]{row['error'][:120]}[/red]"
            version = "" if row["delta_version"] is None else str(row["delta_version"])
            loads.add_row(row["table"], row["strategy"], version, files, str(lock), failed)
        console.print(loads)
    if report["locks"]:
        for lock in report["locks"]:
            state = f"[red]stale: {lock['stale']}[/red]" if lock["stale"] else "held"
            console.print(f"lock {lock['name']}: {state} by {lock['holder']}")
    else:
        console.print("locks: none held")
    if not report["window_consistency"]["consistent"]:
        console.print(
            "[red]window drift:[/red] "
            + ", ".join(d["table_key"] for d in report["window_consistency"]["inconsistent"])
        )


@app.command("validate-windows")
def validate_windows(
    config: ConfigOpt = None,
    date: DateOpt = None,
    run_id: RunIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Report extractions of a run whose window differs from the run's window."""
    from onceflow.admin import validate_window_consistency

    result = validate_window_consistency(_config(config), date, run_id=run_id)
    if as_json:
        _print_json(result)
    elif result["consistent"]:
        typer.echo(f"run {result['run_id']}: all windows match {result['expected_window']}")
    else:
        for item in result["inconsistent"]:
            typer.echo(f"{item['table_key']}: window {item['window_start']} → {item['window_end']}")
    if not result["consistent"]:
        raise typer.Exit(1)


@app.command("reset-state")
def reset_state_cmd(
    config: ConfigOpt = None,
    date: DateOpt = None,
    run_id: RunIdOpt = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Failed extractions back to pending.")
    ] = False,
    table: Annotated[
        str | None, typer.Option("--table", help="Re-extract this table next run.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Reset state: --failed, --table T, or (neither) forget the run's state entirely."""
    from onceflow.admin import reset_state

    if failed and table:
        raise ConfigError("give either --failed or --table, not both")
    if not failed and not table and not yes:
        typer.confirm(
            "Forget this run's state? (files stay; they are re-verified next run)", abort=True
        )
    result = reset_state(_config(config), date, run_id=run_id, failed=failed, table=table)
    typer.echo(json.dumps(result))


def _register_extensions() -> None:
    from onceflow.cli_load import register

    register(app)


_register_extensions()


def _cli_exceptions() -> tuple[tuple[type[BaseException], ...], ...]:
    """(exit, abort, usage) exception types: typer's own, plus click's where typer uses it."""
    from typer.exceptions import Abort, Exit, TyperException

    exits: list[type[BaseException]] = [Exit]
    aborts: list[type[BaseException]] = [Abort]
    usages: list[type[BaseException]] = [TyperException]
    try:  # typer releases before 0.29.2 raise click's exceptions
        import click
    except ImportError:  # typer 0.29.2+ does not depend on click
        return tuple(exits), tuple(aborts), tuple(usages)
    exits.append(click.exceptions.Exit)
    aborts.append(click.exceptions.Abort)
    usages.append(click.ClickException)
    return tuple(exits), tuple(aborts), tuple(usages)


def main() -> None:
    """Entry point: one clear line and a non-zero exit on error, tracebacks only with --debug."""
    exits, aborts, usages = _cli_exceptions()
    try:
        # Without standalone mode a command's exit code is returned instead of exiting.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except exits as done:
        sys.exit(getattr(done, "exit_code", 1))
    except aborts:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except usages as error:
        show = getattr(error, "show", None)
        if callable(show):
            show()
        else:
            typer.echo(f"error: {error}", err=True)
        sys.exit(getattr(error, "exit_code", 2))
    except OnceflowError as error:
        if _options["debug"]:
            raise
        from onceflow.redact import redact

        typer.echo(f"error: {redact(str(error))}", err=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as error:
        if _options["debug"]:
            raise
        from onceflow.redact import redact

        logging.getLogger("onceflow").debug("unexpected error", exc_info=True)
        typer.echo(
            f"error: unexpected {type(error).__name__}: {redact(str(error))} "
            "(rerun with --debug for a traceback)",
            err=True,
        )
        sys.exit(1)
