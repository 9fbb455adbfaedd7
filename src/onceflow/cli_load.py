"""CLI commands of the load capability: load, validate-consistency, fix-inconsistencies,
force-unlock, optimize. Each is a thin call of onceflow.pipeline_load / onceflow.recovery."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from onceflow.cli_common import split_list
from onceflow.errors import ConfigError

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Path to onceflow.yml (default ./onceflow.yml)."),
]
DateOpt = Annotated[
    str | None, typer.Option("--date", "-d", help="Load files up to this run date's window.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
SafeAgeOpt = Annotated[
    float,
    typer.Option("--safe-age", help="Only touch temp/uncommitted files older than this (s)."),
]


def _print_load(summary: Any, as_json: bool) -> None:
    from onceflow.cli import _print_json

    if as_json:
        _print_json(summary.as_dict())
    else:
        for r in summary.results:
            c = r.counts()
            typer.echo(
                f"{r.key}: {c['loaded']} loaded, {c['skipped']} skipped, "
                f"{c['unchanged']} unchanged, {c['failed']} failed ({r.rows} rows) -> {r.uri}"
            )
            if r.error:
                typer.echo(f"  error: {r.error}", err=True)
    if not summary.ok:
        raise typer.Exit(1)


def _print_report(report: dict[str, Any], as_json: bool) -> None:
    from onceflow.cli import _print_json

    if as_json:
        _print_json(report)
        return
    typer.echo(f"Overall status: {'CONSISTENT' if report['consistent'] else 'INCONSISTENT'}")
    checked = report["checked"]
    typer.echo(
        f"checked {checked['tables']} tables, {checked['tracked_files']} tracked files, "
        f"{checked['locks']} locks; {len(report['issues'])} inconsistencies"
    )
    for issue in report["issues"]:
        typer.echo(f"  - {issue['kind']}: {issue['subject']}: {issue['detail']}")


def _print_fixes(result: dict[str, Any], as_json: bool) -> None:
    from onceflow.cli import _print_json

    if as_json:
        _print_json(result)
    else:
        typer.echo(
            f"Fixes applied: {result['fixes_applied']}  Fixes failed: {result['fixes_failed']}"
        )
        for action in result["actions"]:
            typer.echo(f"  - {action}")
        for failure in result["failures"]:
            typer.echo(f"  ! {failure}", err=True)
        for issue in result["remaining"]:
            typer.echo(f"  still: {issue['kind']}: {issue['subject']}: {issue['detail']}")
    if not result["consistent"]:
        raise typer.Exit(1)


def _config(path: Path | None) -> Any:
    from onceflow.config import load_config

    return load_config(path)


def register(app: typer.Typer) -> None:
    """Add the load commands to the `onceflow` Typer app."""

    @app.command("load")
    def load_cmd(
        config: ConfigOpt = None,
        date: DateOpt = None,
        tables: Annotated[
            list[str] | None, typer.Option("--tables", "-t", help="Table keys or names.")
        ] = None,
        lock_timeout: Annotated[
            float, typer.Option("--lock-timeout", help="Wait this long (s) for a table's lock.")
        ] = 0.0,
        force_unlock: Annotated[
            bool,
            typer.Option(
                "--force-unlock", help="First release the tables' locks, whoever holds them."
            ),
        ] = False,
        path: Annotated[
            str | None, typer.Option("--path", help="Standalone: a folder or glob of Parquet.")
        ] = None,
        target: Annotated[
            str | None, typer.Option("--target", help="Standalone: the Delta table to load.")
        ] = None,
        strategy: Annotated[
            str | None, typer.Option("--strategy", help="Standalone: append|overwrite|merge|scd2")
        ] = None,
        primary_key: Annotated[
            list[str] | None, typer.Option("--primary-key", help="Standalone: key column(s).")
        ] = None,
        warehouse: Annotated[
            str | None, typer.Option("--warehouse", help="Standalone without a config file.")
        ] = None,
        state: Annotated[
            str | None, typer.Option("--state", help="Standalone without a config file.")
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Load committed extracted files into Delta tables, each file exactly once."""
        from onceflow.config import config_from_dict
        from onceflow.pipeline_load import load

        if path and config is None and not Path("onceflow.yml").exists():
            cfg = config_from_dict(
                {
                    "state": state or "sqlite:///.onceflow/state.db",
                    "warehouse": warehouse or "./warehouse",
                },
                base_dir=str(Path.cwd()),
                origin="command line",
            )
        else:
            if warehouse or state:
                raise ConfigError("--warehouse and --state are for --path without a config file")
            cfg = _config(config)
        selected = split_list(tables)
        keys = split_list(primary_key)
        summary = load(
            cfg,
            date,
            tables=selected or None,
            lock_timeout=lock_timeout,
            force_unlock=force_unlock,
            path=path,
            target=target,
            strategy=strategy,
            primary_key=keys or None,
        )
        _print_load(summary, as_json)

    @app.command("validate-consistency")
    def validate_consistency_cmd(
        config: ConfigOpt = None,
        fix: Annotated[bool, typer.Option("--fix", help="Apply the fixes too.")] = False,
        safe_age: SafeAgeOpt = 3600.0,
        as_json: JsonOpt = False,
    ) -> None:
        """Compare state with sidecars, Delta logs and files; exit 1 when inconsistent."""
        from onceflow.recovery import fix_inconsistencies, validate_consistency

        cfg = _config(config)
        if fix:
            _print_fixes(fix_inconsistencies(cfg, safe_age_seconds=safe_age), as_json)
            return
        report = validate_consistency(cfg, safe_age_seconds=safe_age)
        _print_report(report, as_json)
        if not report["consistent"]:
            raise typer.Exit(1)

    @app.command("fix-inconsistencies")
    def fix_inconsistencies_cmd(
        config: ConfigOpt = None, safe_age: SafeAgeOpt = 3600.0, as_json: JsonOpt = False
    ) -> None:
        """Repair the state from the data, remove old garbage, and say what was done."""
        from onceflow.recovery import fix_inconsistencies

        _print_fixes(fix_inconsistencies(_config(config), safe_age_seconds=safe_age), as_json)

    @app.command("force-unlock")
    def force_unlock_cmd(
        config: ConfigOpt = None,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
        name: Annotated[str | None, typer.Option("--name", help="Only this lock.")] = None,
    ) -> None:
        """Show who holds the pipeline's locks and release them (asks unless --yes)."""
        from onceflow.pipeline_load import force_unlock, list_locks

        cfg = _config(config)
        if not list_locks(cfg):
            typer.echo("no locks held")
            return

        def ask(description: str) -> bool:
            typer.echo(f"Current lock: {description}")
            return bool(typer.confirm("Are you sure you want to force release the lock?"))

        released = force_unlock(cfg, yes, name=name, confirm=ask)
        for lock in released:
            typer.echo(f"released {lock.name} (was {lock.describe()})")
        if not released:
            typer.echo("nothing released")

    @app.command("optimize")
    def optimize_cmd(
        config: ConfigOpt = None,
        tables: Annotated[list[str] | None, typer.Option("--tables", "-t")] = None,
        retention_hours: Annotated[
            int | None,
            typer.Option("--retention-hours", help="Vacuum retention (default: the table's, 7d)."),
        ] = None,
        no_vacuum: Annotated[bool, typer.Option("--no-vacuum", help="Compact only.")] = False,
        allow_short_retention: Annotated[bool, typer.Option("--allow-short-retention")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Compact the small files one-commit-per-file leaves, then vacuum safely."""
        from onceflow.cli import _print_json
        from onceflow.pipeline_load import optimize

        selected = split_list(tables)
        out = optimize(
            _config(config),
            selected or None,
            retention_hours=retention_hours,
            vacuum=not no_vacuum,
            allow_short_retention=allow_short_retention,
        )
        if as_json:
            _print_json(out)
            return
        for row in out:
            if "skipped" in row:
                typer.echo(f"{row['table']}: skipped ({row['skipped']})")
            else:
                typer.echo(
                    f"{row['table']}: version {row['version']}, {row['files_removed']} files "
                    f"compacted into {row['files_added']}, {row['vacuumed']} vacuumed"
                )
