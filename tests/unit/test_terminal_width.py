"""The CLI's text output fits the terminal it is printed on, and keeps whole lines where
it is not (a file, a pipe, `--log-format json`): a table laid out to the width, long
names kept whole while they fit, nothing cut off but a fingerprint (whole in --json)."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from onceflow.cli.app import MIN_WIDTH, echo, say_problem, settings, terminal_width
from onceflow.cli.layout import FittedTable, Kind
from onceflow.cli.render import print_rows, print_status, print_validation

ANSI = re.compile(r"\x1b\[[0-9;]*m")
LONG_TABLE = "warehouse.customer_addresses_history"
LONG_RULE = "shipping_address_matches_the_postcode_register"
MESSAGE = (
    "could not run: Binder Error: Referenced column postcode_v2 not found in FROM clause "
    "(did you mean postcode?)"
)
FINGERPRINT = "delta:8646b5b9-e65e-4379-bfc8-84b6f1ebae64@7#2f72e886d9b7e54ec7da7573cdece43b"

pytestmark = pytest.mark.usefixtures("cli_globals_restored")


@pytest.fixture
def terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[[int], None]:
    """stdout a terminal of a width (COLUMNS, as a shell sets it); colours off."""

    def at(width: int) -> None:
        monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
        monkeypatch.setenv("COLUMNS", str(width))
        monkeypatch.setenv("NO_COLOR", "1")

    return at


def _out(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return ANSI.sub("", capsys.readouterr().out).splitlines()


def _fits(lines: list[str], width: int) -> None:
    """No line wider than `width`, but a word of text longer than it: the line of prose
    leaves it whole, for the terminal to wrap and copy (`app.echo`)."""
    too_wide = [line for line in lines if len(line) > width and " " in line.strip()]
    assert not too_wide, "\n".join(too_wide)


def _words(lines: list[str]) -> set[str]:
    return {w for line in lines for w in re.split(r"[\s│┃]+", line) if w}


def _folded_in(lines: list[str], text: str) -> None:
    """`text` is in the table, every character in order, however its cell wrapped or
    folded it (the table read left to right, line by line, without its spaces and rules,
    and one line at a time of the cell's column: what lies between is other cells)."""
    flat = "".join(re.sub(r"[\s│┃─━┏┓┗┛┡┩╇┳┻…]+", "", line) for line in lines)
    pattern = ".*?".join(re.escape(c) for c in text.replace(" ", ""))
    assert re.search(pattern, flat, re.DOTALL), text


def _status_report() -> dict[str, Any]:
    row = {"attempts": 1, "record_count": 300, "file_size": 7475, "duration_seconds": 0.27}
    return {
        "pipeline": "demo",
        "run_id": "demo_20261130",
        "status": "failed",
        "completion_rate": 50.0,
        "restart_count": 0,
        "window_start": "2026-11-30T00:00:00+00:00",
        "window_end": "2026-12-01T00:00:00+00:00",
        "run_date": "2026-11-30",
        "tables": [
            {**row, "table_key": "shop.customers", "status": "completed", "error": None},
            {**row, "table_key": LONG_TABLE, "status": "failed", "error": MESSAGE},
        ],
        "status_counts": {"completed": 1, "failed": 1},
        "load": [
            {
                "table": LONG_TABLE,
                "strategy": "scd2",
                "primary_key": ["customer_id"],
                "files": {"completed": 3},
                "delta_version": 7,
                "failed_files": [],
                "damaged_files": [],
                "uncommitted_files": [],
                "waiting": None,
                "rows_skipped": 300,
                "lock": None,
                "error": None,
            }
        ],
        "validation": [
            {
                "table": LONG_TABLE,
                "status": "warn",
                "counts": {"pass": 1, "warn": 1},
                "data_queries": 0,
                "ended_at": "2026-12-01T07:05:17.720918+00:00",
                "started_at": None,
                "fingerprint": FINGERPRINT,
            }
        ],
        "locks": [],
        "window_consistency": {"consistent": True, "inconsistent": []},
    }


@pytest.mark.parametrize("width", [60, 80, 120])
def test_status_fits_the_terminal_and_keeps_table_names_whole(
    width: int, terminal: Callable[[int], None], capsys: pytest.CaptureFixture[str]
) -> None:
    """At 80 columns rich folded `shop.customers` over two lines for want of one column,
    and cut the validation table's names short (`warehouse.cust…`)."""
    terminal(width)
    print_status(_status_report())
    lines = _out(capsys)
    _fits(lines, width)
    assert "shop.customers" in _words(lines)
    for text in (LONG_TABLE, MESSAGE, "scd2 (customer_id)", "300 late row(s) skipped"):
        _folded_in(lines, text)
    if width >= 120:  # room for all of it: the long name whole, the message's words
        assert {LONG_TABLE, "completed", "failed"} <= _words(lines)
        assert set(MESSAGE.split()) <= _words(lines)
        assert "2026-12-01 07:05:17" in "\n".join(lines)  # when, in UTC, to the second
    # the one cell ever cut short (…) on a terminal: `status --json` has it whole
    assert FINGERPRINT not in "\n".join(lines) and "delta:" in "\n".join(lines)


def _report(message: str | None = MESSAGE) -> Any:
    results = [
        SimpleNamespace(
            rule=LONG_RULE,
            type="allowed_values",
            outcome="error",
            observed=None,
            threshold={},
            failing_rows=None,
            failing_percent=None,
            failing_percent_non_null=None,
            message=message,
            cached=False,
            incremental=False,
        ),
        SimpleNamespace(
            rule="order_id_unique",
            type="uniqueness",
            outcome="pass",
            observed=0,
            threshold={"max_failing": 0},
            failing_rows=0,
            failing_percent=0.0,
            failing_percent_non_null=0.0,
            message=None,
            cached=True,
            incremental=False,
        ),
    ]
    table = SimpleNamespace(
        table=LONG_TABLE,
        status="error",
        stage="post_load",
        scope="table",
        results=results,
        data_queries=1,
        duration_seconds=0.01,
        quarantined=None,
        quarantine_error=None,
        message=None,
    )
    counts = {"pass": 1, "warn": 0, "fail": 0, "error": 1, "skipped": 0}
    return SimpleNamespace(tables=[table], counts=lambda: counts, exit_code=2)


@pytest.mark.parametrize("width", [MIN_WIDTH, 40, 60, 80, 100, 150])
def test_the_validate_table_fits_a_narrow_terminal_with_every_word_of_its_message(
    width: int, terminal: Callable[[int], None], capsys: pytest.CaptureFixture[str]
) -> None:
    """Its plain rows were 150 columns wide: the terminal wrapped each one, out of its
    columns."""
    terminal(width)
    print_validation(_report())
    lines = _out(capsys)
    _fits(lines, width)
    for text in (LONG_RULE, "order_id_unique", MESSAGE, "max_failing 0", "cached"):
        _folded_in(lines, text)
    if width >= 80:
        assert "error" in _words(lines) and "pass" in _words(lines)
    if width >= 150:  # room for the names whole, and the message's words
        assert {LONG_RULE, "order_id_unique"} <= _words(lines)
        assert set(MESSAGE.split()) <= _words(lines)
    terminal(250)  # wide enough for the plain rows: one line each, as they always were
    print_validation(_report())
    (row,) = [line for line in _out(capsys) if LONG_RULE in line]
    assert row.startswith(f"  {LONG_RULE}  allowed_values  error") and row.endswith(MESSAGE)


def test_whole_lines_where_no_one_reads_a_terminal_whatever_columns_says(
    terminal: Callable[[int], None],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Piped (a file, grep, a script) every row is one line; with JSON logs too, even on
    a terminal: a collector reads them, through the terminal `docker run -t` gives it."""
    for json_logs in (False, True):
        settings["json_logs"] = json_logs
        if json_logs:
            terminal(40)
            assert terminal_width() is None
        else:
            monkeypatch.setenv("COLUMNS", "40")  # an rc file exported it: no terminal still
        print_validation(_report())
        print_status(_status_report())
        lines = ANSI.sub("", capsys.readouterr().out).splitlines()
        (row,) = [line for line in lines if LONG_RULE in line]
        assert row.endswith(MESSAGE)
        (run_row,) = [line for line in lines if MESSAGE in line and "│" in line]
        assert LONG_TABLE in run_row
        assert any("scd2 (customer_id)" in x and "300 late row(s) skipped" in x for x in lines)
        assert any(FINGERPRINT in line for line in lines)


def test_the_width_is_columns_on_a_terminal_at_least_the_minimum(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    assert terminal_width() is None  # pytest's stdout: no terminal
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert terminal_width() == 60
    monkeypatch.setenv("COLUMNS", "7")
    assert terminal_width() == MIN_WIDTH


def test_a_long_line_wraps_under_its_indent_on_a_terminal_and_a_path_stays_whole(
    terminal: Callable[[int], None], capsys: pytest.CaptureFixture[str]
) -> None:
    path = "/var/lib/onceflow/warehouse/" + "x" * 60
    line = f"  load: {LONG_TABLE}: 300 late row(s) skipped (late_rows: skip) -> {path}"
    echo(line)
    assert capsys.readouterr().out == line + "\n"  # no terminal: as it is
    terminal(50)
    echo(line)
    say_problem(f"  error: {line}")  # stderr: one line a problem, as its log lines
    out = capsys.readouterr()
    assert out.out.splitlines() == [
        f"  load: {LONG_TABLE}: 300",
        "    late row(s) skipped (late_rows: skip) ->",
        f"    {path}",  # longer than the width: whole, for the terminal to wrap and copy
    ]
    assert out.err == f"  error: {line}\n"


def _table(columns: list[tuple[str, Kind]], rows: list[list[str]], **options: Any) -> FittedTable:
    table = FittedTable(**options)
    for header, kind in columns:
        table.column(header, kind)
    for row in rows:
        table.add_row(*row)
    return table


def _render(table: FittedTable, width: int) -> list[str]:
    console = Console(width=width, color_system=None, force_terminal=True)
    with console.capture() as captured:
        console.print(table)
    return captured.get().splitlines()


COLUMNS: list[tuple[str, Kind]] = [
    ("run id", "id"),
    ("pipeline/schedule", "id"),
    ("date", "value"),
    ("state", "value"),
    ("starts", "value"),
    ("ended (UTC)", "value"),
    ("error", "text"),
]
ROW = [
    "798410dbb75d4da6ab35cf21fe810f38",
    "demo/nightly",
    "2026-11-30",
    "COMPLETED",
    "1",
    "2026-12-01 07:05:14",
    "BlockedRunError: blocked: the earlier window 2026-11-29 failed",
]


@pytest.mark.parametrize("plain", [False, True])
def test_a_fitted_table_never_exceeds_its_width_nor_loses_a_character(plain: bool) -> None:
    """rich's own last resort narrowed every column alike and cut what it could not
    wrap: a run id lost its end."""
    for width in range(MIN_WIDTH, 161, 7):
        lines = _render(_table(COLUMNS, [ROW], plain=plain), width)
        _fits(lines, width)
        for cell in ROW:
            _folded_in(lines, cell)


def test_the_header_and_the_message_give_way_before_a_name_or_a_value() -> None:
    lines = _render(_table(COLUMNS, [ROW], plain=True), 100)
    _fits(lines, 100)
    words = _words(lines)
    assert {ROW[0], ROW[1], ROW[2], ROW[3]} <= words  # ids and values whole
    assert ROW[6] not in "\n".join(lines)  # the error wrapped at its spaces instead
    assert set(ROW[6].split()) <= words


def test_a_table_that_fits_is_drawn_as_rich_draws_it() -> None:
    from rich.table import Table

    ours = _table(COLUMNS, [ROW])
    theirs = Table()
    for header, _ in COLUMNS:
        theirs.add_column(header)
    theirs.add_row(*ROW)
    console = Console(width=200, color_system=None)
    with console.capture() as captured:
        console.print(theirs)
    assert _render(ours, 200) == captured.get().splitlines()


def test_print_rows_is_plain_text_until_the_terminal_is_too_narrow(
    terminal: Callable[[int], None], capsys: pytest.CaptureFixture[str]
) -> None:
    print_rows(COLUMNS, [ROW], right=(4,))
    piped = capsys.readouterr().out.splitlines()
    assert piped[1].split("  ")[0] == ROW[0] and piped[1].endswith(ROW[6])
    assert piped[0].rstrip() == piped[0]  # no trailing spaces
    terminal(200)
    print_rows(COLUMNS, [ROW], right=(4,))
    assert _out(capsys) == piped
    terminal(100)
    print_rows(COLUMNS, [ROW], right=(4,))
    lines = _out(capsys)
    _fits(lines, 100)
    assert ROW[0] in lines[-2] or ROW[0] in lines[-1] or any(ROW[0] in x for x in lines)
