"""How command results are shown: JSON, one-line summaries, tables and reports."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

from onceflow.cli.app import echo, say_problem, terminal_width
from onceflow.errors import named_once, printable, typed_error

if TYPE_CHECKING:  # the commands import them when they run: `--help` imports none
    from rich.console import Console
    from rich.progress import Progress

    from onceflow.cli.layout import FittedTable, Kind
    from onceflow.extract import ExtractSummary
    from onceflow.load import LoadSummary
    from onceflow.pipeline import RunSummary
    from onceflow.validate import RuleResult, TableReport, ValidationReport


def print_json(data: object) -> None:
    """Pretty JSON on stdout (dates and paths as strings)."""
    typer.echo(json.dumps(data, indent=2, default=str))


def progress_bar(total: int) -> Progress | None:
    """A rich progress bar on a terminal; None otherwise (log lines are printed instead)."""
    if not sys.stderr.isatty() or total == 0:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn("[bold]extract"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}", markup=False),  # table names are not markup
        transient=True,
    )


def load_counts(counts: dict[str, int]) -> str:
    """`3 loaded, 1 replaced, 2 skipped, 0 failed`: every action that happened, and failed."""
    shown = [
        f"{n} {action}"
        for action, n in counts.items()
        if n or action in ("loaded", "skipped", "failed")
    ]
    return ", ".join(shown)


def summarise_run(summary: ExtractSummary | RunSummary, as_json: bool) -> None:
    """An extract or run summary; exit 1 unless every table committed (and loaded)."""
    if as_json:
        print_json(summary.as_dict())
    else:
        counts = summary.counts()
        run = summary.run
        echo(
            f"run {run.run_id}: {run.status} — {counts['extracted']} extracted, "
            f"{counts['skipped']} skipped, {counts['failed']} failed "
            f"({run.completed_tables}/{run.total_tables} tables complete, "
            f"restart {run.restart_count})"
        )
        mine = {r.table_key for r in summary.results}
        if run.completed_tables < run.total_tables and len(mine) < run.total_tables:
            # single-table extracts of one date share its run, as do --tables subsets: a
            # run that failed because of tables this command did not touch says so
            others = run.total_tables - len(mine)
            echo(
                f"  the run also counts {others} table(s) this command did not touch; "
                f"`onceflow status --run-id {run.run_id}` shows each"
            )
        for result in summary.results:
            if result.action == "failed":
                say_problem(f"  failed: {result.error}")
            elif result.null_cursor_rows:
                from onceflow.extract.api import null_cursor_note

                note = null_cursor_note(result.null_cursor_rows)
                say_problem(f"  {result.table_key}: {note}")
        partial = [r.table_key for r in summary.results if r.partial]
        if partial:  # `completed` alone would overstate them (status: `completed (partial)`)
            echo(
                f"  partial: {', '.join(partial)}: the window {run.window_start} .. "
                f"{run.window_end} has not ended (or not settled, `settle`); every run "
                "extracts it again until it has"
            )
        # an ExtractSummary has neither a load nor a validation
        load: LoadSummary | None = getattr(summary, "load", None)
        if load is not None:
            _say_load(load)
        validation: ValidationReport | None = getattr(summary, "validation", None)
        if validation is not None:
            _say_validation(validation)
    if not summary.ok:
        raise typer.Exit(1)


def _say_load(load: LoadSummary) -> None:
    """A run's load: the counts, then each table's skipped rows and problems."""
    echo(f"load: {load_counts(load.counts())} ({load.rows_note()})")
    for r in load.results:
        if r.rows_skipped:
            echo(f"  load: {r.key}: {_late_rows(r.rows_skipped)}")
        if r.error:
            say_problem(f"  load failed: {r.key}: {r.error}")
        if r.waiting:
            say_problem(f"  load waits: {r.key}: {r.waiting}")
        if r.uncommitted:
            say_problem(f"  load not complete: {r.key}: {r.uncommitted}")
        for warning in r.warnings:
            say_problem(f"  load warning: {r.key}: {warning}")


def _say_validation(validation: ValidationReport) -> None:
    """A run's validation: the counts, then each rule that failed and each table's note."""
    c = validation.counts()
    echo("validate: " + ", ".join(f"{v} {k}" for k, v in c.items() if v or k == "fail"))
    for r in validation.results:
        if r.outcome in ("fail", "error"):
            say_problem(_rule_problem(r))
    for t in validation.tables:
        if t.quarantine_error:  # the rules stand; their failing rows are not kept
            say_problem(f"  {t.table}: {t.quarantine_error}")
        if _table_note(t):
            echo(f"  validate note: {t.table}: {t.message}")


def _rule_problem(result: RuleResult) -> str:
    """`  rule fail: shop.orders/amount_pos: 3 failing rows`: a rule that failed or could
    not run, on one line."""
    detail = result.message or (
        f"{result.failing_rows:,} failing rows"
        if result.failing_rows is not None
        else f"observed {_short(result.observed)}, threshold {_short(result.threshold)}"
    )
    return f"  rule {result.outcome}: {result.table}/{result.rule}: {detail}"


def _late_rows(n: int) -> str:
    return f"{n:,} late row(s) skipped (late_rows: skip)"


def print_load(summary: LoadSummary, as_json: bool) -> None:
    """A load summary: a line per table and its problems; exit 1 unless every table loaded."""
    if as_json:
        print_json(summary.as_dict())
    else:
        for r in summary.results:
            echo(f"{r.key}: {load_counts(r.counts())} ({r.rows_note()}) -> {r.uri}")
            if r.settings_note:
                echo(f"  {r.settings_note}")
            if r.rewound:
                echo(f"  rewound to apply {len(r.rewound)} file(s) again in window order")
            if r.rows_skipped:
                echo(f"  {_late_rows(r.rows_skipped)}")
            if r.waiting:
                say_problem(f"  waiting: {r.waiting}")
            if r.uncommitted:
                say_problem(f"  not committed: {r.uncommitted}")
            for warning in r.warnings:
                say_problem(f"  warning: {warning}")
            if r.error:
                say_problem(f"  error: {r.error}")
    if not summary.ok:
        raise typer.Exit(1)


def _marks() -> tuple[str, str]:
    """✓/✗ where stdout can print them; a terminal or pipe without UTF-8 gets ASCII."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "✓✗".encode(encoding)
    except (LookupError, UnicodeEncodeError):
        return "OK", "X"
    return "✓", "✗"


def _print_issue(issue: dict[str, Any], indent: str) -> None:
    summary = issue.get("summary") or f"{issue['kind']}: {issue['subject']}"
    echo(f"{indent}- {summary}")
    if issue.get("detail"):
        echo(f"{indent}    {issue['detail']}")


def print_report(report: dict[str, Any], as_json: bool) -> None:
    """The validate-consistency report: overall, file tracker, tables, locks, lake."""
    from onceflow.consistency import FILE_TRACKER_KINDS

    if as_json:
        print_json(report)
        return
    issues: list[dict[str, Any]] = report["issues"]
    checked = report["checked"]
    tracker = [i for i in issues if i["kind"] in FILE_TRACKER_KINDS]
    echo("=== PIPELINE CONSISTENCY VALIDATION ===")
    echo(f"Overall Status: {'CONSISTENT' if report['consistent'] else 'INCONSISTENT'}")
    echo(f"File Tracker Status: {'inconsistent' if tracker else 'consistent'}")
    echo(f"Total Files Checked: {checked['tracked_files']}")
    # every inconsistency, as `Total Inconsistencies` at the end (the seed's report counts
    # them all here); the file tracker's own are listed below it, the others per table
    elsewhere = len(issues) - len(tracker)
    where = f" ({len(tracker)} in the file tracker, {elsewhere} listed below)" if elsewhere else ""
    echo(f"Inconsistencies Found: {len(issues)}{where}")
    for issue in tracker:
        _print_issue(issue, "  ")
    progress = report.get("in_progress") or []
    if progress:  # a live loader mid-step: shown, not counted
        echo(f"In Progress (a live load, not an inconsistency): {len(progress)}")
        for issue in progress:
            _print_issue(issue, "  ")
    good, bad = _marks()
    echo("Table Consistency:")
    tables = report.get("tables") or []
    if not tables:
        echo("  (no tables)")
    for table in tables:
        name = table["table"]
        echo(f"  {good if table['consistent'] else bad} {name}")
        # Tracker issues of the table are listed above; here they are only counted, so
        # the table's mark is explained without repeating them.
        mine = [i for i in issues if i.get("table") == name]
        for issue in mine:
            if issue["kind"] not in FILE_TRACKER_KINDS and issue["kind"] != "stale_lock":
                _print_issue(issue, "    ")
        in_tracker = sum(1 for i in mine if i["kind"] in FILE_TRACKER_KINDS)
        if in_tracker:
            plural = "inconsistency" if in_tracker == 1 else "inconsistencies"
            echo(f"    - {in_tracker} file tracker {plural} (listed above)")
    locks = [i for i in issues if i["kind"] == "stale_lock"]
    echo(f"Locks Checked: {checked['locks']}, stale: {len(locks)}")
    for issue in locks:
        _print_issue(issue, "  ")
    temps = [i for i in issues if i["kind"] == "temp_file"]
    safe_age = report.get("safe_age_seconds")
    age = f" (older than {safe_age:g} s)" if isinstance(safe_age, (int, float)) else ""
    echo(f"Temp Files In The Lake{age}: {len(temps)}")
    for issue in temps:
        echo(f"  - {issue['subject']}")
    listed = {id(i) for i in [*tracker, *locks, *temps]}
    names = {t["table"] for t in tables}
    others = [i for i in issues if id(i) not in listed and i.get("table") not in names]
    if others:  # any kind not grouped above still shows
        echo("Other Inconsistencies:")
        for issue in others:
            _print_issue(issue, "  ")
    echo(f"Total Inconsistencies: {len(issues)}")


def print_fixes(result: dict[str, Any], as_json: bool) -> None:
    """What fix-inconsistencies did, what failed, and what is still inconsistent."""
    if as_json:
        print_json(result)
    else:
        echo("=== FIXING PIPELINE INCONSISTENCIES ===")
        echo(f"Fixes Applied: {result['fixes_applied']}")
        echo(f"Fixes Failed: {result['fixes_failed']}")
        echo("Actions taken:")
        for action in result["actions"]:
            echo(f"  - {action}")
        if not result["actions"]:
            echo("  (none: nothing to fix)")
        if result["failures"]:
            echo("Failed fixes:")
            for failure in result["failures"]:
                echo(f"  ! {failure}")
        echo(f"Overall Status After Fixes: {_after_fixes(result)}")
        for issue in result["remaining"]:
            _print_issue(issue, "  ")
    # what was skipped or kept was not fixed: it fails the command as an inconsistency does
    if not (result["consistent"] and result.get("complete", True)):
        raise typer.Exit(1)


def _after_fixes(result: dict[str, Any]) -> str:
    """The verdict after fix-inconsistencies: INCONSISTENT while the re-check finds an
    issue; INCOMPLETE when it finds none but a fix was not made (a table skipped, a file
    kept): that part was not fixed, so it is not called consistent."""
    if not result["consistent"]:
        return "INCONSISTENT"
    if result.get("complete", True):
        return "CONSISTENT"
    skipped = result.get("skipped") or []
    tables = f"; tables skipped: {', '.join(skipped)}" if skipped else ""
    return (
        f"INCOMPLETE - {result['fixes_failed']} not fixed (see Failed fixes){tables}; "
        "run fix-inconsistencies again once the commands holding their locks have finished"
    )


def console() -> Console:
    """A rich console: on a terminal, its width (`app.terminal_width`: COLUMNS when set),
    which the tables fit (`cli.layout`); piped or with `--log-format json`, never
    truncated or wrapped at 80 columns (a report in a file or another program keeps
    whole lines)."""
    from rich.console import Console

    width = terminal_width()
    if width is None:
        return Console(width=100_000, soft_wrap=True)
    return Console(width=width)


def fitted_table(
    columns: Sequence[tuple[str, Kind]], hide: Sequence[str], title: str | None = None
) -> FittedTable:
    """A boxed rich table whose columns fit the terminal (`cli.layout`); `hide`: the
    headers of the columns it may leave out to fit, the least useful first."""
    from onceflow.cli.layout import FittedTable

    table = FittedTable(title=title, hide=hide)
    for header, kind in columns:
        table.column(header, kind)
    return table


def print_rows(
    columns: Sequence[tuple[str, Kind]],
    rows: Sequence[Sequence[str]],
    *,
    indent: int = 0,
    right: Sequence[int] = (),
    colours: dict[int, dict[str, tuple[str | None, bool]]] | None = None,
    hide: Sequence[str] = (),
    said: set[str] | None = None,
) -> None:
    """A table in plain text: aligned columns two spaces apart under a header line, each
    row one line where stdout is no terminal (a file, a pipe: scripts and grep read whole
    rows), and on a terminal wide enough for them. On a narrower terminal the same table
    in the same look, fitted to the width (`layout.print_rows`): a row the terminal
    wrapped lost its columns. rich is left out when it is not needed: its layout took
    ~0.1 s for 100 rules. `right`: the columns aligned right; `colours`: a column's
    values' (colour, bold), shown on a terminal; `hide`: the headers of the columns that
    may be left out on a narrow terminal, the least useful first; `said`: the notes of
    hidden columns printed already by this command (each is said once)."""
    headers = [h for h, _ in columns]
    cells = [[printable(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    pad = " " * indent

    def line(row: Sequence[str], colour: bool) -> str:
        out = []
        for i, (cell, w) in enumerate(zip(row, widths, strict=True)):
            text = cell.rjust(w) if i in right else cell.ljust(w)
            fg, bold = (colours or {}).get(i, {}).get(cell, (None, False))
            out.append(typer.style(text, fg=fg, bold=bold) if colour and (fg or bold) else text)
        return (pad + "  ".join(out)).rstrip()

    plain_lines = [line(headers, False)] + [line(r, False) for r in cells]
    width = terminal_width()
    if width is not None and any(len(x) > width for x in plain_lines):
        from onceflow.cli.layout import print_rows as fitted

        fitted(
            console(),
            columns,
            cells,
            indent=indent,
            right=right,
            colours=colours,
            hide=hide,
            said=said,
        )
        return
    colour = sys.stdout.isatty() and bool(colours)
    for i, text in enumerate(plain_lines):
        typer.echo(line(cells[i - 1], True) if colour and i else text)  # escaped above


def human_size(size: int | None) -> str:
    """Bytes for people: 14.7 KiB, 3.2 MiB."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover - the loop always returns


def plain(text: object) -> str:
    """Text for a rich table cell, title or line, its `[...]` shown as written: rich takes
    `[libpq]` in an error for a style tag and drops it (`IO:  Failed to connect`); its
    control characters escaped (`errors.printable`): rich passes ESC through."""
    from rich.markup import escape

    return escape(printable(str(text)))


def _lock_cell(row: dict[str, Any]) -> str:
    """A table's lock holder, marked stale as the locks below it are (a dead pid's lock
    protects nothing: the next load takes it over)."""
    if not row["lock"]:
        return ""
    if row.get("lock_stale"):
        return f"[red]stale[/red], held by {plain(row['lock'])} ({plain(row['lock_stale'])})"
    return plain(row["lock"])


def print_status(report: dict[str, Any]) -> None:
    """The status report: the run's tables, each table's load, each table's validation
    (each section closed by a line of counts over all its tables), the locks, window
    drift. With `problems_only` (`status --problems`) the sections list only the tables
    with a problem."""
    out = console()
    only = bool(report.get("problems_only"))
    tables = []
    after: dict[int, str] = {}  # a table's closing line of counts, by id
    if report["run_id"] is None:  # standalone loads only: no run to show
        out.print(f"pipeline {plain(report['pipeline'])}: no extraction runs")
    elif only and not report["tables"]:  # the counts say it all
        out.print(plain(_run_title(report)))
        out.print("  ".join(f"{k}: {v}" for k, v in report["status_counts"].items()))
    else:
        run = _run_table(report)
        after[id(run)] = "  ".join(f"{k}: {v}" for k, v in report["status_counts"].items())
        tables.append(run)
    summary = report.get("load_summary")
    load_line = ""
    if summary and summary["tables"]:
        files = ", ".join(f"{n:,} {state}" for state, n in summary["files"].items())
        load_line = (
            f"load: {summary['tables']:,} table(s), {summary['with_problems']:,} with a "
            f"problem; files: {files or 'none tracked'}"
        )
    if report["load"]:
        loads = fitted_table(
            LOAD_COLUMNS, LOAD_HIDDEN_FIRST, "load (tables with a problem)" if only else "load"
        )
        for row in report["load"]:
            files = ", ".join(f"{k} {v}" for k, v in row["files"].items() if v)
            problems = [named_once(f["file"], f["error"]) for f in row["failed_files"]]
            problems += [f"{f['file']}: damaged: {f['problem']}" for f in row["damaged_files"]]
            problems += [
                f"{f['file']}: not committed: {f['reason']}" for f in row["uncommitted_files"]
            ]
            if row.get("settings_conflict"):
                problems.append(row["settings_conflict"])
            if row["waiting"]:
                problems.append(row["waiting"])
            if row["rows_skipped"]:
                problems.append(f"{row['rows_skipped']:,} late row(s) skipped")
            problems = [plain(p) for p in problems]
            if row["error"]:
                problems.append(f"[red]{plain(row['error'])}[/red]")
            version = "" if row["delta_version"] is None else str(row["delta_version"])
            loads.add_row(
                plain(row["table"]),
                plain(_strategy_cell(row)),
                version,
                files,
                _lock_cell(row),
                "; ".join(problems),
            )
        after[id(loads)] = load_line
        tables.append(loads)
    elif load_line:
        out.print(load_line)
    counts = report.get("validation_summary") or {}
    if report.get("validation"):
        title = "validation (last per table, tables with a problem)" if only else None
        checks = _validation_table(report["validation"], title)
        after[id(checks)] = _validation_counts(counts) if any(counts.values()) else ""
        tables.append(checks)
    # one look for the three: where one needs the compact look to fit, all take it
    compact = terminal_width() is not None and any(t.wants_compact(out) for t in tables)
    for t in tables:
        t.compact = compact
        out.print(t)
        if after.get(id(t)):
            out.print(after[id(t)])
    if not report.get("validation") and any(counts.values()):
        out.print(_validation_counts(counts))
    if report["locks"]:
        for lock in report["locks"]:
            holder = plain(lock["holder"])
            if lock["stale"]:
                out.print(
                    f"lock {plain(lock['name'])}: [red]stale[/red], held by {holder} "
                    f"({plain(lock['stale'])})"
                )
            else:
                out.print(f"lock {plain(lock['name'])}: held by {holder}")
    else:
        out.print("locks: none held")
    if not report["window_consistency"]["consistent"]:
        out.print(
            "[red]window drift:[/red] "
            + ", ".join(plain(d["table_key"]) for d in report["window_consistency"]["inconsistent"])
        )


#: The columns of `status`'s tables and what each holds (`cli.layout`: what gives way
#: first on a narrow terminal): the run's extractions, each table's load, each table's
#: last validation; and the columns each leaves out first when it does not fit even
#: then (docs/commands.md#output-width): what an operator reads first stays longest.
RUN_COLUMNS: tuple[tuple[str, Kind], ...] = (
    ("table", "key"),
    ("status", "value"),  # a status, with what a partial or NULL-cursor window left out
    ("attempts", "value"),
    ("records", "value"),
    ("size", "value"),
    ("duration", "value"),
    ("error", "text"),
)
RUN_HIDDEN_FIRST = ("size", "attempts", "duration", "records", "error")
LOAD_COLUMNS: tuple[tuple[str, Kind], ...] = (
    ("table", "key"),
    ("strategy", "value"),
    ("delta version", "value"),
    ("files", "list"),
    ("lock", "text"),
    ("problems", "text"),
)
LOAD_HIDDEN_FIRST = ("delta version", "strategy", "files", "lock", "problems")
VALIDATION_COLUMNS: tuple[tuple[str, Kind], ...] = (
    ("table", "key"),
    ("status", "value"),
    ("rules", "list"),
    ("data queries", "value"),
    ("when (UTC)", "value"),
    ("fingerprint", "detail"),  # cut on a narrow terminal: `status --json` has it whole
)
VALIDATION_HIDDEN_FIRST = ("fingerprint", "data queries", "when (UTC)", "rules")


def _strategy_cell(row: dict[str, Any]) -> str:
    """`merge (id)`: the strategy and key a table records; `unknown` for a standalone
    table that records none (created by an older onceflow)."""
    keys = row.get("primary_key") or []
    return str(row["strategy"]) + (f" ({', '.join(keys)})" if keys else "")


def print_validation_status(report: dict[str, Any]) -> None:
    """`status` of a rules-only config (the seed validator's): each table's latest
    validation; it has no runs, loads or locks."""
    out = console()
    out.print(f"pipeline {plain(report['pipeline'])}: rules only (no runs, loads or locks)")
    if report["validation"] or not report.get("problems_only"):
        title = "validation (last per table, tables with a problem)"
        out.print(
            _validation_table(report["validation"], title if report.get("problems_only") else None)
        )
    counts = report.get("validation_summary") or {}
    if any(counts.values()):
        out.print(_validation_counts(counts))


def _validation_counts(counts: dict[str, int]) -> str:
    """`validation: 1,000 table(s); 990 passed, 0 warn, 5 failed, 3 error, 2 skipped`:
    tables by the status of their last validation."""
    each = ", ".join(f"{n:,} {plain(state)}" for state, n in counts.items())
    return f"validation: {sum(counts.values()):,} table(s); {each}"


def _validation_table(rows: list[dict[str, Any]], title: str | None = None) -> FittedTable:
    """Each table's last validation, as a rich table."""
    checks = fitted_table(
        VALIDATION_COLUMNS, VALIDATION_HIDDEN_FIRST, title or "validation (last per table)"
    )
    for row in rows:
        counts = ", ".join(f"{v} {k}" for k, v in row["counts"].items() if v)
        queries = row["data_queries"]
        checks.add_row(
            plain(row["table"]),
            plain(row["status"]),
            counts,
            "" if queries is None else str(queries),
            _utc_seconds(row["ended_at"] or row["started_at"]),
            plain(row["fingerprint"] or ""),
        )
    return checks


def _utc_seconds(instant: str | None) -> str:
    """`2025-01-23 02:00:07`: an ISO instant in UTC, to the second, as `runs list` shows
    its times (`status --json` keeps the microseconds)."""
    if not instant:
        return ""
    try:
        moment = datetime.fromisoformat(instant)
    except ValueError:  # not an instant onceflow wrote: shown as it is
        return str(instant)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _run_title(report: dict[str, Any]) -> str:
    """The run's line: its status, how complete, restarts and window."""
    title = (
        f"{report['run_id']} — {report['status']}, {_completion(report)}, "
        f"restarts {report['restart_count']}, window {report['window_start']} → "
        f"{report['window_end']}"
    )
    if report["status"] == "loading":  # extracted; its load or rules have not ended
        title += (
            f" (extracted; its load and validation have not finished: `onceflow run --date "
            f"{report.get('run_date')}` finishes them)"
        )
    return title


def _completion(report: dict[str, Any]) -> str:
    """`99.7% complete (997/1,000 tables)`: from the counts, never rounded to 0 % or 100 %
    unless exact (`:.0f` said 100 % with 3 of 1,000 tables failed)."""
    from onceflow.validate.figures import percent_text

    counts = report["status_counts"]
    done, total = counts.get("completed", 0), report.get("total_tables", sum(counts.values()))
    if not total:
        return "no tables"
    return f"{percent_text(100 * done / total)} complete ({done:,}/{total:,} tables)"


def _run_table(report: dict[str, Any]) -> FittedTable:
    """The run part of the status report: its title, each table's extraction."""
    table = fitted_table(RUN_COLUMNS, RUN_HIDDEN_FIRST, plain(_run_title(report)))
    for row in report["tables"]:
        table.add_row(
            plain(row["table_key"]),
            row["status"]
            + (" (partial)" if row.get("partial") else "")
            + (
                f" ({row['null_cursor_rows']:,} row(s) in no window left out: cursor "
                "NULL, a zero date or infinite)"
                if row.get("null_cursor_rows")
                else ""
            ),
            str(row["attempts"]),
            "" if row["record_count"] is None else f"{row['record_count']:,}",
            human_size(row["file_size"]),
            "" if row["duration_seconds"] is None else f"{row['duration_seconds']:.2f}s",
            plain(row["error"] or ""),
        )
    return table


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def print_windows(result: dict[str, Any]) -> None:
    """validate-windows: the run's window, each table whose window differs, and each
    gap or overlap between the windows of consecutive run dates."""
    out = console()
    for seam in result.get("seams", []):
        low, high = sorted((seam["earlier_end"], seam["later_start"]), key=_instant)
        out.print(
            f"{seam['kind']} between run {seam['earlier_run']} (ends {seam['earlier_end']}) "
            f"and run {seam['later_run']} (starts {seam['later_start']}): rows from {low} "
            f"to {high} are in {'no window' if seam['kind'] == 'gap' else 'both windows'}",
            markup=False,
        )
    if result["run_id"] is None:
        out.print("no extraction runs: no windows to check")
        return
    start, end = result["expected_window"]
    if not result["inconsistent"]:
        out.print(f"run {result['run_id']}: every table's window is {start} → {end}", markup=False)
        return
    table = fitted_table(
        WINDOW_COLUMNS,
        WINDOW_HIDDEN_FIRST,
        plain(f"run {result['run_id']}: window {start} → {end}; tables that differ"),
    )
    for item in result["inconsistent"]:
        table.add_row(
            plain(item["table_key"]), item["window_start"] or "", item["window_end"] or ""
        )
    out.print(table)


#: validate-windows's tables that differ from the run's window (in the title); on a
#: narrow terminal the end stays longest: a window that ends wrong loses or repeats rows.
WINDOW_COLUMNS: tuple[tuple[str, Kind], ...] = (
    ("table", "key"),
    ("window start", "value"),
    ("window end", "value"),
)
WINDOW_HIDDEN_FIRST = ("window start", "window end")

OUTCOME_COLOUR = {"pass": "green", "warn": "yellow", "fail": "red", "error": "magenta"}
#: The outcome column's colours: a failure and an error in bold.
OUTCOME_COLOURS: dict[int, dict[str, tuple[str | None, bool]]] = {
    2: {k: (colour, k in ("fail", "error")) for k, colour in OUTCOME_COLOUR.items()}
}
#: `onceflow validate`'s table, a row per rule; the last column, unnamed, says why (an
#: error's message) or how the result was had (`cached`, `incremental`).
OUTCOME_COLUMNS: tuple[tuple[str, Kind], ...] = (
    ("rule", "key"),
    ("type", "value"),
    ("outcome", "value"),
    ("observed", "value"),
    ("threshold", "value"),
    ("failing", "value"),
    ("% all", "value"),
    ("% non-null", "value"),
    ("", "text"),
)
#: The columns of the table left out first on a narrow terminal (docs/commands.md#
#: output-width): the rule, its outcome and its message stay; what the threshold was
#: compared with (`observed`) stays longest, then the threshold itself.
OUTCOME_HIDDEN_FIRST = ("type", "% non-null", "failing", "% all", "threshold", "observed")


def _reset_failed_sentence(result: dict[str, Any]) -> str:
    """`reset-state --failed`: without --date/--run-id (`runs` given), each run whose
    failed extractions went back to pending, and how to retry them: a run of its date."""
    runs = result.get("runs")
    count, files = result["count"], result["load_files"]
    if not runs:
        scope = " (in no run)" if runs is not None else ""
        return (
            f"{count} failed extraction(s){scope} and {files} failed load file(s) back to "
            "pending: the next run retries them"
        )
    each = ", ".join(f"run {r['run_id']} of {r['run_date']}: {r['count']}" for r in runs)
    dates = " / ".join(f"onceflow run --date {r['run_date']}" for r in runs)
    return (
        f"{count} failed extraction(s) ({each}) and {files} failed load file(s) back to "
        f"pending: a run of each date retries its extractions ({dates}), the next run the "
        "load files"
    )


def reset_sentence(result: dict[str, Any]) -> str:
    """What `reset-state` did, as a sentence (`--json` prints `result` itself)."""
    action = result["action"]
    if action == "reset_failed":
        return _reset_failed_sentence(result)
    if action == "force_reprocess":
        if result["count"]:
            return f"{result['table']}: flagged; the next run of this date re-extracts it"
        if result.get("ran") is False:
            return (
                f"{result['table']}: run {result['run_id']} has not run yet: nothing to "
                "reprocess, nothing flagged; its first run extracts it"
            )
        return f"{result['table']}: not in this run; nothing flagged"
    if action == "reset_validation":
        scope = f" of {result['table']}" if result.get("table") else ""
        scope += f", rule {result['rule']}" if result.get("rule") else ""
        return (
            f"forgot {result['count']} stored rule result(s){scope}: those rules run again "
            "on the next validation"
        )
    run = (
        f"forgot run {result['run_id']} ({result['count']} record(s)) and"
        if result["run_id"]
        else "no extraction run to forget; forgot"
    )
    forgot = (
        f"{run} {result['load_files']} load tracker row(s): the next run re-derives "
        "them from the sidecars and Delta logs"
    )
    moved = result.get("moved_aside")
    if not moved:
        return forgot
    return (
        f"the state store {moved['path']} was damaged ({moved['damage']}): moved aside to "
        f"{moved['moved_to']} (nothing deleted) and a new one started; "
        "`onceflow validate-consistency --fix` now rebuilds the load tracker from the Delta "
        "logs, and the next run re-verifies the extractions from their sidecars"
    )


#: An observed value or a threshold in the outcome table is cut here (a schema rule's
#: differences name every column): the JSON report (`--output`, `--json`) has it whole.
SHORT_CHARS = 60


def _short(value: object) -> str:
    from onceflow.validate.figures import number_text  # printed after a validation ran

    text = number_text(value)
    return text if len(text) <= SHORT_CHARS else text[: SHORT_CHARS - 3] + "..."


def _table_note(table: TableReport) -> bool:
    """Whether a table's report has a message of its own to show (a scope-run table that
    holds none of the run's rows); an unreadable table's is each rule's, shown there."""
    return bool(table.message) and not any(r.message == table.message for r in table.results)


def print_validation(report: ValidationReport, failed_to_write: str | None = None) -> None:
    """A table of outcomes per table and rule, then the counts and the exit code's meaning.
    `failed_to_write` names a report file that could not be written: the exit code the
    line states is then the command's, 2, not the validation's.

    Plain aligned text (coloured on a terminal, `print_rows`): rich's table layout took
    1 s for 100 rules, more than the whole validation answered from the cache; it is
    used only on a terminal too narrow for the plain lines (0.1 s for 100 rules now).
    """
    from onceflow.validate.figures import percent_text

    if not report.tables:
        echo("no configured table has post-load rules: nothing to validate")
    said: set[str] = set()  # a table hiding what an earlier one hid does not say it again
    for t in report.tables:
        echo(
            f"{t.table}: {t.status} ({t.stage}, scope {t.scope}, {len(t.results)} rules, "
            f"{t.data_queries} data queries, {t.duration_seconds:.2f} s)"
        )
        rows = [
            (
                r.rule,
                r.type,
                r.outcome,
                _short(r.observed),
                _short(r.threshold),
                _short(r.failing_rows),
                percent_text(r.failing_percent),
                percent_text(r.failing_percent_non_null),
                r.message or ("cached" if r.cached else "incremental" if r.incremental else ""),
            )
            for r in t.results
        ]
        print_rows(
            OUTCOME_COLUMNS,
            rows,
            indent=2,
            colours=OUTCOME_COLOURS,
            hide=OUTCOME_HIDDEN_FIRST,
            said=said,
        )
        if t.quarantined:
            where = f" into {t.quarantine_table}" if t.quarantine_table else ""
            echo(f"  {t.quarantined:,} rows quarantined{where}")
        if t.quarantine_error:
            echo(f"  {t.quarantine_error}")
        if _table_note(t):
            echo(f"  note: {t.message}")
    counts = report.counts()
    meaning = {0: "ok", 1: "an error-severity rule failed", 2: "a rule could not run"}
    if not counts["error"] and report.exit_code == 2:
        skipped = counts["skipped"]
        meaning[2] = "rules were skipped" if skipped else "a quarantine pass could not run"
    code, why = report.exit_code, meaning[report.exit_code]
    if failed_to_write is not None:
        code, why = 2, f"the {failed_to_write} could not be written (validation: {why})"
    echo(", ".join(f"{v} {k}" for k, v in counts.items()) + f" -- exit {code}: {why}")
    for line in _validation_problems(report):
        echo(line)


def _validation_problems(report: ValidationReport) -> list[str]:
    """What made a validation fail, once more after its totals, one line each, as dbt
    ends a run: each rule that failed or could not run, each table whose rules were
    skipped (one line for all its rules: they share the reason) and each quarantine pass
    that could not run. With 1,000 tables they were somewhere in 3,500 lines above."""
    lines = []
    for t in report.tables:
        lines += [_rule_problem(r) for r in t.results if r.outcome in ("fail", "error")]
        skipped = [r for r in t.results if r.outcome == "skipped"]
        if skipped:
            why = skipped[0].message or t.message or "no reason given"
            lines.append(f"  skipped: {t.table}: {len(skipped)} rule(s): {why}")
        if t.quarantine_error:
            lines.append(f"  quarantine error: {t.table}: {t.quarantine_error}")
    return lines


def print_tenant_status(summary: dict[str, Any]) -> None:
    """`status --tenant`: the seed's per-customer summary."""
    counts = ", ".join(f"{n} {state}" for state, n in summary["counts"].items())
    echo(f"tenant {summary['tenant']}: {counts}")
    for label, key in (("last success", "last_success"), ("last failure", "last_failure")):
        run = summary[key]
        if run is None:
            echo(f"  {label}: none")
        else:
            error = typed_error(run["error_type"], run["error"])
            error = f" - {error}" if error else ""
            now_state = run.get("state_now")
            # a failure retried since: said, so that it does not read as still failed
            since = f" (retried; now {now_state})" if now_state not in (None, "FAILED") else ""
            echo(
                f"  {label}: {run['pipeline']}/{run['schedule']} {run['run_date']} "
                f"at {run['ended_at']}{since}{error}"
            )
    nxt = summary["next_run"]
    if nxt is None:
        echo("  next run: no schedule of this tenant")
    else:
        echo(
            f"  next run: {nxt['pipeline']}/{nxt['schedule']} at {nxt['local']} "
            f"({nxt['tick_utc']}), window {nxt['run_date']}"
        )
    for w in summary["waiting"]:
        echo(f"  waiting: {w['pipeline']} {w['run_date']}: {w['waiting_on']}")
    for r in summary.get("lease_expired", []):
        echo(
            f"  lease expired: {r['pipeline']} {r['run_date']} is RUNNING, but its worker's "
            f"lease ran out at {r['since'][:19].replace('T', ' ')} UTC (killed or cut off): "
            "the next scheduler or worker pass requeues it"
        )
    q = summary["queue"]
    # always a line: a tenant with no jobs shows zeros, not nothing
    echo(
        f"  queue: {q['queued']} queued ({q['due']} due), {q['running']} running, "
        f"{q['completed']} completed, {q['failed']} failed; "
        f"waiting now: {_waits(q['avg_wait_seconds'], q['max_wait_seconds'])}; "
        f"waited before start: "
        f"{_waits(q['avg_start_wait_seconds'], q['max_start_wait_seconds'])}"
    )


def _waits(avg: float | None, most: float | None) -> str:
    if avg is None or most is None:
        return "none"
    return f"avg {avg:.1f}s, max {most:.1f}s"
