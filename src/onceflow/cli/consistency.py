"""validate-consistency, fix-inconsistencies and force-unlock: check the state against the
data, repair it, and release locks whose holders are gone."""

from __future__ import annotations

from typing import Annotated

import typer

from onceflow.cli.app import app, echo, examples
from onceflow.cli.options import (
    ChangeStateOpt,
    ConfigOpt,
    JsonOpt,
    PipelineOpt,
    SafeAgeOpt,
    StateOpt,
    YesOpt,
    open_pipeline,
)
from onceflow.cli.render import print_fixes, print_report


@app.command(
    "validate-consistency",
    rich_help_panel="Consistency",
    epilog=examples(
        "onceflow validate-consistency --json --safe-age 3600",
        "onceflow validate-consistency --fix    # and repair, as fix-inconsistencies",
    ),
)
def validate_consistency_cmd(
    config: ConfigOpt = None,
    state: StateOpt = None,
    pipeline_name: PipelineOpt = None,
    fix: Annotated[bool, typer.Option("--fix", help="Apply the fixes too.")] = False,
    safe_age: SafeAgeOpt = 3600.0,
    as_json: JsonOpt = False,
) -> None:
    """Compare state with sidecars, Delta logs and files; exit 1 when inconsistent."""
    pipeline = open_pipeline(config, state, pipeline_name, read_only=not fix)
    if fix:
        print_fixes(pipeline.fix_inconsistencies(safe_age_seconds=safe_age), as_json)
        return
    report = pipeline.validate_consistency(safe_age_seconds=safe_age)
    print_report(report, as_json)
    if not report["consistent"]:
        raise typer.Exit(1)


@app.command(
    "fix-inconsistencies",
    rich_help_panel="Consistency",
    epilog=examples(
        "onceflow fix-inconsistencies",
        "onceflow fix-inconsistencies --json --safe-age 86400",
    ),
)
def fix_inconsistencies_cmd(
    config: ConfigOpt = None,
    state: ChangeStateOpt = None,
    pipeline_name: PipelineOpt = None,
    safe_age: SafeAgeOpt = 3600.0,
    as_json: JsonOpt = False,
) -> None:
    """Repair the state from the data, remove old garbage, and say what was done."""
    pipeline = open_pipeline(config, state, pipeline_name)
    print_fixes(pipeline.fix_inconsistencies(safe_age_seconds=safe_age), as_json)


@app.command(
    "force-unlock",
    rich_help_panel="Consistency",
    epilog=examples(
        "onceflow force-unlock                           # each holder, asks y/N",
        "onceflow force-unlock --yes --name shop.orders  # that table's lock",
        "onceflow force-unlock --yes --name pipeline:shop",
    ),
)
def force_unlock_cmd(
    config: ConfigOpt = None,
    state: ChangeStateOpt = None,
    pipeline_name: PipelineOpt = None,
    yes: YesOpt = False,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="Only this lock: its name as status shows it, or a table's key or name "
            "(shop.orders, load:shop.orders) for that table's load lock. Exit 1, listing the "
            "locks held, when it is not held.",
        ),
    ] = None,
) -> None:
    """Show who holds the pipeline's locks and release them (asks unless --yes)."""
    pipeline = open_pipeline(config, state, pipeline_name)
    if not name and not pipeline.locks():
        echo("no locks held")
        return

    def ask(description: str) -> bool:
        echo(f"Current lock: {description}")
        return bool(typer.confirm("Are you sure you want to force release the lock?"))

    released = pipeline.force_unlock(yes, name=name, confirm=ask)
    for lock in released:
        echo(f"released {lock.name} (was {lock.describe()})")
    if not released:
        echo("nothing released")
