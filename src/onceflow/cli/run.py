"""`onceflow run` and `onceflow extract`: run the pipeline, or only its extraction, for a date."""

from __future__ import annotations

import functools
from typing import Annotated, Any

import typer

from onceflow.cli.app import app, examples
from onceflow.cli.options import (
    AllowPartialOpt,
    ConfigOpt,
    DatabricksOpt,
    DateOpt,
    ForceReprocessOpt,
    JsonOpt,
    LockTimeoutOpt,
    RunIdOpt,
    TablesOpt,
    VerifyOpt,
    WorkersOpt,
    selected_tables,
)
from onceflow.cli.render import progress_bar, summarise_run
from onceflow.errors import ConfigError


def _with_progress(step: Any, total: int, **kwargs: Any) -> Any:
    """Call `step(**kwargs)` with a progress bar on a terminal."""
    bar = progress_bar(total)
    if bar is None:
        return step(**kwargs)
    with bar:
        task = bar.add_task("", total=total)
        return step(
            progress=lambda r: bar.update(
                task, advance=1, description=f"{r.table_key}: {r.action}"
            ),
            **kwargs,
        )


def _connection_url(
    url: str | None,
    host: str | None,
    port: int | None,
    user: str | None,
    password: str | None,
    service: str | None,
) -> str | None:
    """The single-table source URL: --url as given, or built from --host and the rest."""
    given = [o for o, v in (("--port", port), ("--user", user), ("--service", service)) if v]
    if url and host:
        raise ConfigError("give either --url or --host (with --port, --user, --service), not both")
    if host:
        from onceflow.config import oracle_url  # pydantic: not for every command's start

        return oracle_url(host, port, user, password, service)
    if given:
        raise ConfigError(f"{', '.join(given)} {'needs' if len(given) == 1 else 'need'} --host")
    return url


@app.command(
    "extract",
    rich_help_panel="Running",
    epilog=examples(
        "onceflow extract --date 2025-01-23 --tables shop.orders,customers",
        "onceflow extract --tables tables.json    # the tables a file lists",
        "onceflow extract --url sqlite:///shop.db --source-name shop \\",
        "                 --table-name customers --full   # single-table mode",
        "onceflow extract --url postgresql://app@db/shop --source-name shop \\",
        "                 --table-name public.orders --cursor updated_at \\",
        "                 --date 2025-01-23 --lake ./lake",
        "onceflow extract --host db.example --user hr --service XEPDB1 \\",
        "                 --source-name oracle_db --table-name hr.employees \\",
        "                 --full --date 2025-01-23   # Oracle, the seed's options",
        "onceflow extract --databricks --config /Workspace/jobs/shop.yml \\",
        "                 --tables tables.json",
    ),
)
def extract_cmd(
    ctx: typer.Context,
    config: ConfigOpt = None,
    date: DateOpt = None,
    tables: TablesOpt = None,
    force_reprocess: ForceReprocessOpt = False,
    workers: WorkersOpt = None,
    verify: VerifyOpt = "fast",
    run_id: RunIdOpt = None,
    url: Annotated[str | None, typer.Option("--url", help="Single-table mode: source URL.")] = None,
    host: Annotated[
        str | None,
        typer.Option("--host", help="Single-table mode, instead of --url: the Oracle host."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=1, max=65535, help="With --host: its port (default 1521)."),
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="With --host: the user.")] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            envvar="ONCEFLOW_SOURCE_PASSWORD",
            show_default=False,
            # named in the text, which wraps: rich cuts the [env var: ...] tag at 80 columns
            show_envvar=False,
            help="With --host: the password; better set ONCEFLOW_SOURCE_PASSWORD than type it.",
        ),
    ] = None,
    service: Annotated[
        str | None,
        typer.Option("--service", help="With --host: the Oracle service name (required; e.g. XE)."),
    ] = None,
    source_name: Annotated[
        str | None, typer.Option("--source-name", help="Single-table mode: the source's name.")
    ] = None,
    table_name: Annotated[
        str | None, typer.Option("--table-name", help="Single-table mode: schema.table.")
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Single-table mode: full extract.")] = False,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="Single-table mode: cursor column.")
    ] = None,
    lake: Annotated[
        str | None,
        typer.Option("--lake", help="Single-table mode: lake folder (default ./lake)."),
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--state",
            envvar="ONCEFLOW_STATE",
            help="Single-table mode: state store URL (default sqlite:///.onceflow/state.db).",
        ),
    ] = None,
    timezone_name: Annotated[
        str | None,
        typer.Option("--timezone", help="Single-table mode: window time zone (default UTC)."),
    ] = None,
    lock_timeout: LockTimeoutOpt = 0.0,
    force_unlock: Annotated[
        bool,
        typer.Option("--force-unlock", help="First release the pipeline's lock, whoever holds it."),
    ] = False,
    allow_partial: AllowPartialOpt = False,
    databricks: DatabricksOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Extract tables for one run date into Parquet; committed tables are skipped."""
    # The step's own function, not Pipeline: an extraction does not import the loader
    # (Delta Lake, DuckDB), which a small window would pay for on every run.
    from onceflow.config import load_config, single_table_config
    from onceflow.extract.early import connect_early

    url = _connection_url(url, host, port, user, password, service)
    if url or source_name or table_name:
        if not (url and source_name and table_name):
            raise ConfigError(
                "single-table mode needs --url (or --host ...), --source-name and --table-name"
            )
        if full and cursor:
            raise ConfigError("give either --full or --cursor COL, not both")
        cfg = single_table_config(
            url,
            source_name,
            table_name,
            cursor=cursor,
            lake=lake,
            state=state,
            timezone=timezone_name,
        )
    else:
        cfg = load_config(config)
    if databricks:
        from onceflow.extract.databricks import require_databricks

        require_databricks(cfg, warehouse=False)  # an extraction writes only the lake
    selected = selected_tables(ctx, tables)
    # the source connection opens in a thread while the extractor and Arrow load (~40 ms
    # of a small window's start-up); the reader takes it
    connect_early(cfg, selected)
    from onceflow.extract import extract

    summary = _with_progress(
        functools.partial(extract, cfg),
        len(selected or cfg.tables),
        run_date=date,
        tables=selected,
        force_reprocess=force_reprocess,
        workers=workers,
        verify=verify,
        run_id=run_id,
        lock_timeout=lock_timeout,
        force_unlock=force_unlock,
        allow_partial=allow_partial,
    )
    summarise_run(summary, as_json)


@app.command(
    "run",
    rich_help_panel="Running",
    epilog=examples(
        "onceflow run --date 2025-01-23 --lock-timeout 600",
        "onceflow run --tables tables.json --databricks   # the seed's table list",
    ),
)
def run_cmd(
    ctx: typer.Context,
    config: ConfigOpt = None,
    date: DateOpt = None,
    tables: TablesOpt = None,
    force_reprocess: ForceReprocessOpt = False,
    workers: WorkersOpt = None,
    verify: VerifyOpt = "fast",
    run_id: RunIdOpt = None,
    lock_timeout: LockTimeoutOpt = 0.0,
    force_unlock: Annotated[
        bool,
        typer.Option(
            "--force-unlock",
            help="First release the pipeline's locks (its own and its tables'), whoever "
            "holds them.",
        ),
    ] = False,
    allow_partial: AllowPartialOpt = False,
    databricks: DatabricksOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the whole pipeline for a run date: extract, load, then validate loaded tables.

    All of it under the pipeline lock."""
    from onceflow.pipeline import Pipeline

    pipeline = Pipeline.from_file(config)
    if databricks:
        pipeline.require_databricks()
    selected = selected_tables(ctx, tables)
    summary = _with_progress(
        pipeline.run,
        len(selected or pipeline.config.tables),
        run_date=date,
        tables=selected,
        force_reprocess=force_reprocess,
        workers=workers,
        verify=verify,
        run_id=run_id,
        lock_timeout=lock_timeout,
        force_unlock=force_unlock,
        allow_partial=allow_partial,
    )
    summarise_run(summary, as_json)
