"""status, validate-windows and reset-state: what the state store says, and resetting it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from onceflow.cli.app import app, echo, examples
from onceflow.cli.options import (
    ChangeStateOpt,
    ConfigOpt,
    JsonOpt,
    LockTimeoutOpt,
    PipelineOpt,
    RunDateOpt,
    StateOpt,
    WhichRunIdOpt,
    YesOpt,
    open_pipeline,
    rules_only_validator,
)
from onceflow.cli.render import (
    print_json,
    print_status,
    print_tenant_status,
    print_validation_status,
    print_windows,
    reset_sentence,
)
from onceflow.errors import ConfigError, StateError
from onceflow.extract.reports import find_run

if TYPE_CHECKING:
    from onceflow.pipeline import Pipeline
    from onceflow.validate import Validator


@app.command(
    rich_help_panel="State",
    epilog=examples(
        "onceflow status --date 2025-01-23 --json",
        "onceflow status --problems        # only the tables with a problem",
        "onceflow status --tenant acme",
        "onceflow status --config config.yaml   # a rules-only config",
    ),
)
def status(
    config: ConfigOpt = None,
    state: StateOpt = None,
    pipeline_name: PipelineOpt = None,
    date: RunDateOpt = None,
    run_id: WhichRunIdOpt = None,
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant",
            help="Instead: a tenant's scheduled runs - counts by state, last success, last "
            "failure, next run, waiting runs, queue.",
        ),
    ] = None,
    problems: Annotated[
        bool,
        typer.Option(
            "--problems",
            help="List only the tables with a problem (an extraction not completed, a load "
            "with failed, damaged or waiting files, a validation not passed); the count "
            "lines still count every table.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show a run's extractions, each table's load and the locks (default: the latest run)."""
    if tenant is not None:
        if problems:
            raise ConfigError(
                "--problems lists a run's tables with a problem; --tenant shows a "
                "tenant's scheduled runs, which it does not apply to",
                field="problems",
            )
        if date is not None or run_id is not None:
            given = " and ".join(o for o, v in (("--date", date), ("--run-id", run_id)) if v)
            raise ConfigError(
                f"--tenant shows a tenant's scheduled runs, not one run: {given} "
                "does not apply to it (`onceflow runs list --tenant T --date D` lists a "
                "tenant's runs of one data date)",
                field="tenant",
            )
        from onceflow.schedule import tenant_status

        pipeline = open_pipeline(config, state, pipeline_name, read_only=True)
        summary = tenant_status([pipeline.config], tenant, store=pipeline.store)
        if as_json:
            print_json(summary)
        else:
            print_tenant_status(summary)
        return
    report = _status_report(config, state, pipeline_name, date, run_id, problems)
    if as_json:
        print_json(report)
    elif report.get("rules_only"):
        print_validation_status(report)
    else:
        print_status(report)


def _status_report(
    config: Path | None,
    state: str | None,
    pipeline_name: str | None,
    date: str | None,
    run_id: str | None,
    problems: bool = False,
) -> dict[str, Any]:
    """The pipeline's status report (`problems`: only the tables with a problem); for a
    rules-only config (the seed validator's), which has no runs, loads or locks, its
    tables' validations."""
    validator = rules_only_validator(config, state, pipeline_name)
    if validator is None:
        return open_pipeline(config, state, pipeline_name, read_only=True).status(
            date, run_id=run_id, problems=problems
        )
    if date is not None or run_id is not None:
        raise ConfigError(
            f"{config or 'onceflow.yml'} gives rules only: it has no runs for --date or "
            "--run-id to name"
        )
    from onceflow.pipeline.status import has_problem, validation_summary

    rows = validator.validation_status()
    return {
        "pipeline": validator.settings.pipeline,
        "rules_only": True,
        "problems_only": problems,
        "validation": [r for r in rows if has_problem("validation", r)] if problems else rows,
        "validation_summary": validation_summary(rows),
    }


@app.command(
    "validate-windows",
    rich_help_panel="State",
    epilog=examples("onceflow validate-windows --date 2025-01-23"),
)
def validate_windows(
    config: ConfigOpt = None,
    state: StateOpt = None,
    pipeline_name: PipelineOpt = None,
    date: RunDateOpt = None,
    run_id: WhichRunIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Report a run's extractions off its window, and gaps or overlaps between run dates.

    An extraction whose window differs from its run's, and a gap or an overlap between
    the windows of consecutive run dates, come from a changed timezone."""
    result = open_pipeline(config, state, pipeline_name, read_only=True).validate_windows(
        date, run_id=run_id
    )
    if as_json:
        print_json(result)
    else:
        print_windows(result)
    if not result["consistent"]:
        raise typer.Exit(1)


@app.command(
    "reset-state",
    rich_help_panel="State",
    epilog=examples(
        "onceflow reset-state --failed             # failed ones back to pending",
        "onceflow reset-state --table shop.orders  # re-extract it next run",
        "onceflow reset-state --yes       # forget the run's state and the tracker",
        "onceflow reset-state --failed --lock-timeout 600   # after a live run ends",
        "onceflow reset-state --validation   # every stored rule result",
        "onceflow reset-state --validation --table shop.orders   # its results",
        "onceflow reset-state --validation --table shop.orders \\",
        "                     --rule order_id_unique   # one rule's",
        "onceflow reset-state --config config.yaml --validation \\",
        "                     --table customers --rule id_check",
    ),
)
def reset_state_cmd(
    config: ConfigOpt = None,
    state: ChangeStateOpt = None,
    pipeline_name: PipelineOpt = None,
    date: Annotated[
        str | None,
        typer.Option(
            "--date",
            "-d",
            help="The run of this date, YYYY-MM-DD, 'today' or 'yesterday' (default: the "
            "latest run date's run; with --table, yesterday's, the run a plain `onceflow "
            "run` does).",
        ),
    ] = None,
    run_id: WhichRunIdOpt = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Failed extractions and loads back to pending.")
    ] = False,
    table: Annotated[
        str | None,
        typer.Option(
            "--table", help="Re-extract this table next run (with --validation: its results)."
        ),
    ] = None,
    validation: Annotated[
        bool,
        typer.Option(
            "--validation", help="Forget stored rule results (all, --table T's, or --rule R's)."
        ),
    ] = False,
    rule: Annotated[
        str | None,
        typer.Option("--rule", help="With --validation --table T: only this rule's results."),
    ] = None,
    yes: YesOpt = False,
    lock_timeout: LockTimeoutOpt = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Reset state: --failed, --table T, --validation, or (none) forget the run's state.

    Refused (exit 1, naming the holder) while a run, extraction or load of the pipeline
    holds its locks, unless they are released within --lock-timeout seconds."""
    if failed and (table or validation):
        raise ConfigError("give one of --failed, --table or --validation")
    if rule and not validation:
        raise ConfigError("--rule goes with --validation --table T")
    validator = rules_only_validator(config, state, pipeline_name)
    if validator is not None:
        result = _reset_rules_only(validator, config, validation, table, rule)
        if as_json:
            print_json(result)
        else:
            echo(reset_sentence(result))
        return
    pipeline = open_pipeline(config, state, pipeline_name)
    forget = not failed and not table and not validation
    if forget and run_id is not None and date is not None:
        _refuse_another_dates_run(pipeline, date, run_id)
    # answered no: nothing the command was asked to do failed (exit 0, as force-unlock's
    # "no"); no answer at all (stdin closed) is `aborted`, exit 1
    if (
        forget
        and not yes
        and not typer.confirm(
            "Forget this run's state? (files stay; they are re-verified next run)",
            err=as_json,  # stdout holds the JSON alone
        )
    ):
        if as_json:
            print_json({"action": "declined", "count": 0})
        else:
            echo("nothing forgotten (answered no)")
        return
    # seed 002's recovery from a corrupted store starts here: a store that cannot be read
    # cannot forget anything, so it is moved aside and a new one started
    damaged = pipeline.set_aside_damaged_store() if forget else None
    if damaged is None:
        result = pipeline.reset_state(
            date,
            run_id=run_id,
            failed=failed,
            table=table,
            validation=validation,
            rule=rule,
            lock_timeout=lock_timeout,
        )
    else:
        # the new store holds no run: the forget is done by the move (nothing to delete)
        result = {
            "action": "forget_run",
            "run_id": None,
            "count": 0,
            "load_files": 0,
            "moved_aside": dataclasses.asdict(damaged),
        }
    if as_json:
        print_json(result)
    else:
        echo(reset_sentence(result))


def _refuse_another_dates_run(pipeline: Pipeline, date: str, run_id: str) -> None:
    """`reset-state --run-id X --date D` (forget) is refused before its question when X is
    not D's run (or not stored). A store that cannot be opened is not judged: forgetting
    moves a damaged one aside, which is the way out of its damage."""
    try:
        pipeline.store.runs.get(run_id)
    except StateError:
        return
    find_run(pipeline.config, pipeline.store, date, run_id)


def _reset_rules_only(
    validator: Validator,
    config: Path | None,
    validation: bool,
    table: str | None,
    rule: str | None,
) -> dict[str, Any]:
    """`reset-state --validation [--table T] [--rule R]` of a rules-only config: the
    Validator's reset_state, reset_table_state or reset_rule_state."""
    if not validation:
        raise ConfigError(
            f"{config or 'onceflow.yml'} gives rules only (the seed validator's config): "
            "it has no runs or loads to reset; forget its stored rule results with "
            "--validation [--table T] [--rule R]"
        )
    if rule is not None and table is None:
        raise ConfigError("--rule needs --table (rule names are unique per table)")
    if table is None:
        return {"action": "reset_validation", "count": validator.reset_state()}
    # a rules-only config names its tables by `name:` alone: the name is the key
    if rule is None:
        count = validator.reset_table_state(table)
        return {"action": "reset_validation", "table": table, "count": count}
    count = validator.reset_rule_state(table, rule)
    return {"action": "reset_validation", "table": table, "rule": rule, "count": count}
