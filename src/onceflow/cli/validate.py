"""`onceflow validate`: run the configured tables' data-quality rules, report the outcomes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from onceflow.cli.app import app, examples
from onceflow.cli.options import ConfigOpt, JsonOpt, TablesOpt, split_list
from onceflow.cli.render import print_json, print_validation

if TYPE_CHECKING:
    from onceflow.validate import ValidationReport


@app.command(
    "validate",
    rich_help_panel="Running",
    epilog=examples(
        "onceflow validate                 # every table with rules",
        "onceflow validate -t shop.orders --date 2025-01-23",
        "onceflow validate --output report.json --html report.html",
        "onceflow validate --no-resume     # ignore stored results: every rule again",
        "onceflow validate --sources sources.yaml   # these tables on this data",
    ),
)
def validate_cmd(
    config: ConfigOpt = None,
    tables: TablesOpt = None,
    date: Annotated[
        str | None,
        typer.Option(
            "--date",
            "-d",
            help="Run date: freshness is measured from its window end, scope run checks "
            "its batches (default: now, the latest run).",
        ),
    ] = None,
    sources: Annotated[
        Path | None,
        typer.Option(
            "--sources",
            help="A YAML file of `table: path` lines: check those tables on that data (a "
            "Delta table, a Parquet file or folder) instead of their Delta tables.",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the JSON report here.")
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the HTML report (one file) here.")
    ] = None,
    no_resume: Annotated[
        bool,
        typer.Option("--no-resume", help="Ignore stored results: run every rule again."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the data-quality rules of the configured tables; exit 0 ok, 1 failed, 2 error."""
    # The step function Pipeline.validate is, called without importing the pipeline: that
    # brings every step (1.5 s of imports), where a rerun answered from the cache should
    # take well under a second as a whole command.
    from onceflow.errors import OnceflowError, ReportError, ValidateError
    from onceflow.validate import load_validation_config, validate

    try:
        cfg, rules = load_validation_config(config)
        report = validate(
            cfg,
            date,
            tables=split_list(tables) or None,
            sources=sources,
            output=output,
            html=html,
            resume=not no_resume,
            rules=rules,
        )
    except ReportError as error:  # the results first, then the one line about the file
        _show(error.report, as_json, failed_to_write="report file")
        raise
    except Exception as error:
        # Exit 1 says the data failed a rule: a gate in CI would blame the data for a
        # check that never ran (an unreachable state store, say), which is exit 2.
        said = (
            error
            if isinstance(error, OnceflowError)
            else ValidateError(
                f"unexpected {type(error).__name__}: {error} (rerun with --debug for a traceback)"
            )
        )
        said.exit_code = max(said.exit_code, 2)
        if said is error:
            raise
        raise said from error
    _show(report, as_json)
    raise typer.Exit(report.exit_code)


def _show(report: ValidationReport, as_json: bool, failed_to_write: str | None = None) -> None:
    """The report as JSON or as `print_validation`'s table."""
    if as_json:
        print_json(report.as_dict())
    else:
        print_validation(report, failed_to_write)
