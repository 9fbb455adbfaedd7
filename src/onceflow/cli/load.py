"""`onceflow load` and `onceflow optimize`: load extracted files into Delta tables, and
compact them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from onceflow.cli.app import app, echo, examples, say_problem
from onceflow.cli.options import (
    ConfigOpt,
    JsonOpt,
    LockTimeoutOpt,
    TablesOpt,
    WorkersOpt,
    split_list,
    typed_state,
)
from onceflow.cli.render import print_json, print_load
from onceflow.errors import ConfigError


@app.command(
    "load",
    rich_help_panel="Running",
    epilog=examples(
        "onceflow load                      # every committed file not loaded yet",
        "onceflow load --date 2025-01-23 -t shop.orders",
        "onceflow load --workers 8                # 8 tables at once",
        "onceflow load --lock-timeout 60    # wait for a table another loader holds",
        "onceflow load --force-unlock       # release the loaded tables' locks first",
        "onceflow load --path ./drop/ --target raw/events --strategy append",
        "onceflow load --path './drop/*.parquet' --target dims/customer \\",
        "              --strategy merge --primary-key id",
    ),
)
def load_cmd(
    config: ConfigOpt = None,
    date: Annotated[
        str | None, typer.Option("--date", "-d", help="Load files up to this run date's window.")
    ] = None,
    tables: TablesOpt = None,
    workers: WorkersOpt = None,
    lock_timeout: LockTimeoutOpt = 0.0,
    force_unlock: Annotated[
        bool,
        typer.Option("--force-unlock", help="First release the tables' locks, whoever holds them."),
    ] = False,
    path: Annotated[
        str | None,
        typer.Option(
            "--path",
            help="Standalone: a folder or glob of Parquet. A file is known by its path within "
            "it; one named as a file the table took from another folder still there is refused.",
        ),
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="Standalone: the Delta table to load.")
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(
            "--strategy",
            metavar="append|overwrite|merge|scd2",
            help="Standalone: how the files go into the table (default: the one the table "
            "records; append for a new table).",
        ),
    ] = None,
    primary_key: Annotated[
        list[str] | None, typer.Option("--primary-key", help="Standalone: key column(s).")
    ] = None,
    warehouse: Annotated[
        str | None,
        typer.Option(
            "--warehouse",
            help="Standalone without a config file: the folder of the Delta tables (default "
            "./warehouse).",
        ),
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--state",
            envvar="ONCEFLOW_STATE",
            help="Standalone without a config file: the state store URL (default "
            "sqlite:///.onceflow/state.db).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Load committed extracted files into Delta tables, each file exactly once."""
    from onceflow.pipeline import Pipeline

    if path and config is None and not Path("onceflow.yml").exists():
        pipeline = Pipeline.standalone(state=state, warehouse=warehouse)
    else:
        if warehouse or typed_state(state):
            raise ConfigError("--warehouse and --state are for --path without a config file")
        pipeline = Pipeline.from_file(config)
    selected = split_list(tables)
    keys = split_list(primary_key)
    summary = pipeline.load(
        date,
        tables=selected or None,
        lock_timeout=lock_timeout,
        force_unlock=force_unlock,
        path=path,
        target=target,
        strategy=strategy,
        primary_key=keys or None,
        workers=workers,
    )
    print_load(summary, as_json)


@app.command(
    "optimize",
    rich_help_panel="Running",
    epilog=examples(
        "onceflow optimize -t shop.orders --retention-hours 336",
        "onceflow optimize --no-vacuum     # compact only",
        "onceflow optimize --lock-timeout 300   # wait for a table being loaded",
    ),
)
def optimize_cmd(
    config: ConfigOpt = None,
    tables: TablesOpt = None,
    lock_timeout: LockTimeoutOpt = 0.0,
    retention_hours: Annotated[
        int | None,
        typer.Option("--retention-hours", help="Vacuum retention (default: the table's, 7d)."),
    ] = None,
    no_vacuum: Annotated[bool, typer.Option("--no-vacuum", help="Compact only.")] = False,
    allow_short_retention: Annotated[
        bool,
        typer.Option(
            "--allow-short-retention",
            help="Allow a retention under 7 days (only when no reader or writer runs).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Compact the small files one-commit-per-file leaves, then vacuum safely."""
    from onceflow.pipeline import Pipeline

    selected = split_list(tables)
    out = Pipeline.from_file(config).optimize(
        selected or None,
        retention_hours=retention_hours,
        vacuum=not no_vacuum,
        allow_short_retention=allow_short_retention,
        lock_timeout=lock_timeout,
    )
    if as_json:
        print_json(out)
    else:
        for row in out:
            if "skipped" in row:
                echo(f"{row['table']}: skipped ({row['skipped']})")
            else:
                echo(
                    f"{row['table']}: version {row['version']}, {row['files_removed']} files "
                    f"compacted into {row['files_added']}, {row['vacuumed']} vacuumed"
                )
    busy = [row["table"] for row in out if row.get("busy")]
    if busy:
        # a table left uncompacted is a failure to retry (cron should see it), unlike a
        # table not created yet, which has nothing to compact
        say_problem(
            f"error: not optimized, their load lock is held: {', '.join(busy)}; run "
            "`onceflow optimize` again later, or with --lock-timeout SECONDS to wait"
        )
        raise typer.Exit(1)
