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


def _marks() -> tuple[str, str]:
    """✓/✗ where stdout can print them; a terminal or pipe without UTF-8 gets ASCII."""
    import sys

    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "✓✗".encode(encoding)
    except (LookupError, UnicodeEncodeError):
        return "OK", "X"
    return "✓", "✗"


def _print_issue(issue: dict[str, Any], indent: str) -> None:
    summary = issue.get("summary") or f"{issue['kind']}: {issue['subject']}"
    typer.echo(f"{indent}- {summary}")
    if issue.get("detail"):
        typer.echo(f"{indent}    {issue['detail']}")


def _print_report(report: dict[str, Any], as_json: bool) -> None:
    """The validate-consistency report: overall, file tracker, tables, locks, lake."""
    from onceflow.cli import _print_json
    from onceflow.recovery import FILE_TRACKER_KINDS

    if as_json:
        _print_json(report)
        return
    issues: list[dict[str, Any]] = report["issues"]
    checked = report["checked"]
    tracker = [i for i in issues if i["kind"] in FILE_TRACKER_KINDS]
    typer.echo("=== PIPELINE CONSISTENCY VALIDATION ===")
    typer.echo(f"Overall Status: {'CONSISTENT' if report['consistent'] else 'INCONSISTENT'}")
    typer.echo(f"File Tracker Status: {'inconsistent' if tracker else 'consistent'}")
    typer.echo(f"Total Files Checked: {checked['tracked_files']}")
    typer.echo(f"Inconsistencies Found: {len(tracker)}")
    for issue in tracker:
        _print_issue(issue, "  ")
    good, bad = _marks()
    typer.echo("Table Consistency:")
    tables = report.get("tables") or []
    if not tables:
        typer.echo("  (no tables)")
    for table in tables:
        name = table["table"]
        typer.echo(f"  {good if table['consistent'] else bad} {name}")
        # Tracker issues of the table are listed above; here they are only counted, so
        # the table's mark is explained without repeating them.
        mine = [i for i in issues if i.get("table") == name]
        for issue in mine:
            if issue["kind"] not in FILE_TRACKER_KINDS and issue["kind"] != "stale_lock":
                _print_issue(issue, "    ")
        in_tracker = sum(1 for i in mine if i["kind"] in FILE_TRACKER_KINDS)
        if in_tracker:
            plural = "inconsistency" if in_tracker == 1 else "inconsistencies"
            typer.echo(f"    - {in_tracker} file tracker {plural} (listed above)")
    locks = [i for i in issues if i["kind"] == "stale_lock"]
    typer.echo(f"Locks Checked: {checked['locks']}, stale: {len(locks)}")
    for issue in locks:
        _print_issue(issue, "  ")
    temps = [i for i in issues if i["kind"] == "temp_file"]
    safe_age = report.get("safe_age_seconds")
    age = f" (older than {safe_age:g} s)" if isinstance(safe_age, (int, float)) else ""
    typer.echo(f"Temp Files In The Lake{age}: {len(temps)}")
    for issue in temps:
        typer.echo(f"  - {issue['subject']}")
    listed = {id(i) for i in [*tracker, *locks, *temps]}
    names = {t["table"] for t in tables}
    others = [i for i in issues if id(i) not in listed and i.get("table") not in names]
    if others:  # any kind not grouped above still shows
        typer.echo("Other Inconsistencies:")
        for issue in others:
            _print_issue(issue, "  ")
    typer.echo(f"Total Inconsistencies: {len(issues)}")


def _print_fixes(result: dict[str, Any], as_json: bool) -> None:
    """What fix-inconsistencies did, what failed, and what is still inconsistent."""
    from onceflow.cli import _print_json

    if as_json:
        _print_json(result)
    else:
        typer.echo("=== FIXING PIPELINE INCONSISTENCIES ===")
        typer.echo(f"Fixes Applied: {result['fixes_applied']}")
        typer.echo(f"Fixes Failed: {result['fixes_failed']}")
        typer.echo("Actions taken:")
        for action in result["actions"]:
            typer.echo(f"  - {action}")
        if not result["actions"]:
            typer.echo("  (none: nothing to fix)")
        if result["failures"]:
            typer.echo("Failed fixes:")
            for failure in result["failures"]:
                typer.echo(f"  ! {failure}")
        state = "CONSISTENT" if result["consistent"] else "INCONSISTENT"
        typer.echo(f"Overall Status After Fixes: {state}")
        for issue in result["remaining"]:
            _print_issue(issue, "  ")
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
