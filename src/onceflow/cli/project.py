"""Commands about the project itself: init (a demo project) and check (the config)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from onceflow.cli.app import app, echo, examples, say_problem
from onceflow.cli.options import ConfigOpt
from onceflow.demo import init_project


@app.command(
    rich_help_panel="Project",
    epilog=examples(
        "onceflow init demo && cd demo && onceflow run",
        "onceflow init demo --force        # a new demo in place of the old one",
    ),
)
def init(
    directory: Annotated[Path, typer.Argument(help="Folder for the demo project.")] = Path("."),
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Overwrite an existing demo: a new shop.db and onceflow.yml, and the old "
            "demo's state store (.onceflow/), lake/ and warehouse/ removed (the new shop's "
            "dates are relative to today). Refused, nothing removed, when one of them is a "
            "symlink or lies outside the folder.",
        ),
    ] = False,
) -> None:
    """Scaffold a demo project: a SQLite shop database and an onceflow.yml."""
    path = init_project(directory, force=force)
    echo(f"created {path}; next: cd {directory} && onceflow run")


@app.command(rich_help_panel="Project", epilog=examples("onceflow check --config onceflow.yml"))
def check(config: ConfigOpt = None) -> None:
    """Validate a config file: every field and reference, and each source's driver.

    No source is connected: a table or column missing at the source is found by its
    extraction."""
    from onceflow.config import load_config
    from onceflow.schedule import check_config

    cfg = load_config(config)  # refuses a config that lists no tables
    warnings = check_config(cfg)
    echo(
        f"config ok: pipeline {cfg.pipeline}, {len(cfg.sources)} sources, {len(cfg.tables)} tables"
    )
    for warning in warnings:
        say_problem(f"warning: {warning}")
