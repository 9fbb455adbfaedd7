"""The CLI's text output fits the terminal it is printed on, and keeps whole lines where
it is not (a file, a pipe, `--log-format json`): a table laid out to the width as a
person would lay it out (a header wrapped only at its spaces, a name, a date or a
threshold never wrapped, the least useful columns left out and said to be), nothing cut
off but a fingerprint (whole in --json)."""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from onceflow.cli.app import MIN_WIDTH, echo, say_problem, settings, terminal_width
from onceflow.cli.layout import FittedTable, Kind
from onceflow.cli.render import (
    LOAD_COLUMNS,
    OUTCOME_COLUMNS,
    OUTCOME_HIDDEN_FIRST,
    RUN_COLUMNS,
    VALIDATION_COLUMNS,
    print_rows,
    print_status,
    print_validation,
)

ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: The line under a table naming the columns left out to fit.
NOTE = re.compile(r"^\s*\((.+?) hidden(?: to fit (\d+) columns)?; --json has (?:every field|all)\)")
COUNTED = re.compile(r"^\s*\((\d+) columns hidden;")
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


def _hidden(lines: list[str]) -> list[str]:
    """The columns the notes under the tables name as left out (`-` for a note that
    counts them only: too many to name in one line)."""
    names: list[str] = []
    for line in lines:
        if COUNTED.match(line):
            names.append("-")
        elif m := NOTE.match(line):
            *first, last = m.group(1).split(" and ")
            names += [n for part in first for n in part.split(", ")] + [last]
    return names


def _headers_whole(lines: list[str], headers: list[str]) -> None:
    """Every word of every header is a word of the output, or its column is one the notes
    say was left out (or it was empty): no header split inside a word (`outco` over
    `me`)."""
    words = _words(lines)
    hidden = _hidden(lines)
    for header in headers:
        if header in hidden or "-" in hidden:
            continue
        assert set(header.split()) <= words, (header, "\n".join(lines))


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
def test_status_fits_the_terminal_with_names_headers_and_dates_whole(
    width: int, terminal: Callable[[int], None], capsys: pytest.CaptureFixture[str]
) -> None:
    """At 80 columns rich folded `shop.customers` over two lines for want of one column,
    and cut the validation table's names short (`warehouse.cust…`); then its headers
    folded inside words (`attem` over `pts`) and a date over two lines."""
    terminal(width)
    print_status(_status_report())
    lines = _out(capsys)
    _fits(lines, width)
    words = _words(lines)
    assert {"shop.customers", LONG_TABLE} <= words  # a table's name is never folded
    empty = {"lock"}  # no row has a lock: left out, unsaid
    _headers_whole(
        lines,
        [h for h, _ in RUN_COLUMNS + LOAD_COLUMNS + VALIDATION_COLUMNS if h not in empty],
    )
    text = "\n".join(lines)
    if "when" in _words(lines):
        assert "2026-12-01 07:05:17" in text  # when, in UTC, to the second
    if "strategy" in _words(lines):
        assert "scd2 (customer_id)" in text
    _folded_in(lines, "300 late row(s) skipped")  # a load's problems: never left out first
    if width >= 80:  # the error wraps at its words, every word whole
        assert set(MESSAGE.split()) <= words
        assert "failed" in words and "completed" in words
    # the one cell ever cut short (…) on a terminal: `status --json` has it whole
    assert FINGERPRINT not in "\n".join(lines)
    # three tables in one look: boxed, or all three bare when one needs it to fit
    boxed = [line for line in lines if line.startswith(("┏", "┃"))]
    assert not boxed or width >= 120


def test_status_leaves_out_the_least_useful_columns_first_and_says_so(
    terminal: Callable[[int], None], capsys: pytest.CaptureFixture[str]
) -> None:
    terminal(80)
    print_status(_status_report())
    lines = _out(capsys)
    notes = [line for line in lines if NOTE.match(line)]
    assert notes == [
        "(attempts, size and duration hidden to fit 80 columns; --json has every field)",
        "(strategy and delta version hidden to fit 80 columns; --json has every field)",
        "(fingerprint hidden to fit 80 columns; --json has every field)",
    ]
    # the load table's lock column was empty: left out first, and not said to be
    assert "lock" not in _words(lines)


def _report(message: str | None = MESSAGE) -> Any:
    results = [
        SimpleNamespace(
            table=LONG_TABLE,
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
            table=LONG_TABLE,
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
    _headers_whole(lines, [h for h, _ in OUTCOME_COLUMNS if h])
    for text in (LONG_RULE, "order_id_unique", MESSAGE, "cached"):
        _folded_in(lines, text)
    if width >= 60:
        assert "order_id_unique" in _words(lines)
    if width >= 80:
        assert {"error", "pass", LONG_RULE} <= _words(lines)
        assert set(MESSAGE.split()) <= _words(lines)
    if "threshold" in _words(lines):  # a threshold never wraps
        assert "max_failing 0" in "\n".join(lines)
    if width < 150:
        assert _hidden(lines)  # said, under the table
    terminal(250)  # wide enough for the plain rows: one line each, as they always were
    print_validation(_report())
    # the table's row; the problem lines after the totals name the rule too ("  rule error:")
    (row,) = [line for line in _out(capsys) if LONG_RULE in line and "rule error" not in line]
    assert row.startswith(f"  {LONG_RULE}  allowed_values  error") and row.endswith(MESSAGE)


def _demo_report() -> Any:
    """The demo's orders table: three rules that passed, answered from the cache."""
    rules = (("order_id_unique", "uniqueness"), ("amount_positive", "range"))
    results = [
        SimpleNamespace(
            table=LONG_TABLE,
            rule=rule,
            type=kind,
            outcome="pass",
            observed=0,
            threshold={"max_failing": 0},
            failing_rows=0,
            failing_percent=0.0,
            failing_percent_non_null=0.0,
            message=None,
            cached=True,
            incremental=False,
        )
        for rule, kind in (*rules, ("status_known", "allowed_values"))
    ]
    table = SimpleNamespace(
        table="shop.orders",
        status="passed",
        stage="post_load",
        scope="run",
        results=results,
        data_queries=0,
        duration_seconds=0.01,
        quarantined=None,
        quarantine_error=None,
        message=None,
    )
    counts = {"pass": 3, "warn": 0, "fail": 0, "error": 0, "skipped": 0}
    return SimpleNamespace(tables=[table, table], counts=lambda: counts, exit_code=0)


def test_the_demos_validate_table_at_80_columns_is_a_line_per_rule_without_its_type(
    terminal: Callable[[int], None], capsys: pytest.CaptureFixture[str]
) -> None:
    """At 80 columns every header folded (`outco` over `me`, `failin` over `g`) and
    `max_failing 0` wrapped, each row two lines high."""
    terminal(80)
    print_validation(_demo_report())
    lines = _out(capsys)
    _fits(lines, 80)
    first = lines[1:6]
    assert first[0].split() == [
        "rule", "outcome", "observed", "threshold", "failing", "%", "all", "%", "non-null"
    ]  # fmt: skip
    assert [row.split()[:2] for row in first[1:4]] == [
        ["order_id_unique", "pass"],
        ["amount_positive", "pass"],
        ["status_known", "pass"],
    ]
    assert all("max_failing 0" in row and row.rstrip().endswith("cached") for row in first[1:4])
    assert first[4].strip() == "(type hidden to fit 80 columns; --json has every field)"
    # the second table hides the same column: said once
    assert sum(1 for line in lines if NOTE.match(line)) == 1
    assert lines[7].split()[0] == "rule" and len(lines) == 12


def test_validate_leaves_out_its_columns_in_the_documented_order(
    terminal: Callable[[int], None], capsys: pytest.CaptureFixture[str]
) -> None:
    """The narrower the terminal, the more of OUTCOME_HIDDEN_FIRST is gone, always from
    its start: `type` first."""
    seen = []
    for width in range(130, 45, -3):
        terminal(width)
        print_validation(_demo_report())
        lines = _out(capsys)
        head = _words(lines[1 : lines.index(next(x for x in lines if "order_id_unique" in x))])
        hidden = [h for h, _ in OUTCOME_COLUMNS if h and not set(h.split()) <= head]
        said = _hidden(lines)
        assert said == hidden or said == ["-"]  # in the table's order
        seen.append(set(hidden))
        assert set(hidden) == set(OUTCOME_HIDDEN_FIRST[: len(hidden)]), (width, hidden)
    assert seen[0] == set() and {"type"} in seen and len(seen[-1]) >= 3
    assert all(a <= b for a, b in itertools.pairwise(seen))


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
        (row,) = [line for line in lines if LONG_RULE in line and "rule error" not in line]
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
    ("run id", "key"),
    ("pipeline/schedule", "value"),
    ("date", "value"),
    ("state", "value"),
    ("starts", "value"),
    ("ended (UTC)", "value"),
    ("error", "text"),
]
HIDE = ("starts", "ended (UTC)", "error", "pipeline/schedule", "date", "state")
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
def test_a_fitted_table_never_exceeds_its_width_nor_loses_a_character_unsaid(
    plain: bool,
) -> None:
    """rich's own last resort narrowed every column alike and cut what it could not
    wrap: a run id lost its end. A column left out is named under the table."""
    for width in range(MIN_WIDTH, 161, 7):
        lines = _render(_table(COLUMNS, [ROW], plain=plain, hide=HIDE), width)
        _fits(lines, width)
        _headers_whole(lines, [h for h, _ in COLUMNS])
        hidden = _hidden(lines)
        for (header, _), cell in zip(COLUMNS, ROW, strict=True):
            if set(header.split()) <= _words(lines[:2]):  # shown: whole, or folded
                _folded_in(lines, cell)
            else:
                assert header in hidden or "-" in hidden, (width, header)
        if len(ROW[0]) + 4 <= width:  # the run id, the key, is whole where it fits
            assert ROW[0] in _words(lines)


@pytest.mark.parametrize("width", range(60, 161, 4))
def test_a_date_a_name_and_a_value_never_wrap_only_text_does(width: int) -> None:
    lines = _render(_table(COLUMNS, [ROW], plain=True, hide=HIDE), width)
    text = "\n".join(lines)
    for (header, kind), cell in zip(COLUMNS, ROW, strict=True):
        if kind != "text" and set(header.split()) <= _words(lines[:2]):
            assert cell in text, (width, header)


def test_the_header_and_the_message_give_way_before_a_name_or_a_value() -> None:
    lines = _render(_table(COLUMNS, [ROW], plain=True, hide=HIDE), 125)
    _fits(lines, 125)
    words = _words(lines)
    assert {ROW[0], ROW[1], ROW[2], ROW[3]} <= words  # ids and values whole
    assert ROW[5] in "\n".join(lines)
    assert ROW[6] not in "\n".join(lines)  # the error wrapped at its spaces instead
    assert set(ROW[6].split()) <= words
    assert not _hidden(lines)


def test_single_spaces_between_columns_before_any_column_is_left_out() -> None:
    """Nothing of these wraps (no text): two spaces between columns, 103 wide; one, 98."""
    columns, row = COLUMNS[:6], ROW[:6]
    assert len(_render(_table(columns, [row], plain=True), 200)[1].rstrip()) == 103
    lines = _render(_table(columns, [row], plain=True, hide=HIDE), 100)
    assert lines[1].rstrip() == " ".join([ROW[0], ROW[1].ljust(17), *ROW[2:4], "1     ", ROW[5]])
    assert len(lines) == 2  # no column left out, nothing to say


def test_an_empty_column_is_left_out_first_and_not_said_to_be() -> None:
    row = [*ROW[:6], ""]
    lines = _render(_table(COLUMNS, [row], plain=True, hide=HIDE), 100)
    assert lines[0].split()[-2:] == ["ended", "(UTC)"] and not _hidden(lines)
    _fits(lines, 100)


def test_a_list_wraps_between_its_items_never_inside_one() -> None:
    """rich wraps at any space: `1 pass, 1` over `warn`."""
    table = _table(
        [("table", "key"), ("rules", "list")], [["shop.customers", "1 pass, 12 warn"]], plain=True
    )
    lines = [line.rstrip() for line in _render(table, 26)]
    assert lines[1:] == ["shop.customers  1 pass,", "                12 warn"]


def test_a_table_that_fits_is_drawn_as_rich_draws_it() -> None:
    from rich.table import Table

    ours = _table(COLUMNS, [ROW], hide=HIDE)
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
    print_rows(COLUMNS, [ROW], right=(4,), hide=HIDE)
    piped = capsys.readouterr().out.splitlines()
    assert piped[1].split("  ")[0] == ROW[0] and piped[1].endswith(ROW[6])
    assert piped[0].rstrip() == piped[0]  # no trailing spaces
    terminal(200)
    print_rows(COLUMNS, [ROW], right=(4,), hide=HIDE)
    assert _out(capsys) == piped
    terminal(80)
    print_rows(COLUMNS, [ROW], right=(4,), hide=HIDE)
    lines = _out(capsys)
    _fits(lines, 80)
    assert lines[1].split() == [ROW[0], ROW[1], ROW[2], ROW[3]]
    assert (
        lines[2]
        == "(starts, ended (UTC) and error hidden to fit 80 columns; --json has every field)"
    )


def test_validate_windows_keeps_each_tables_end_longest(
    terminal: Callable[[int], None], capsys: pytest.CaptureFixture[str]
) -> None:
    """A window that ends wrong loses or repeats rows: its end goes last; the run's own
    window is in the title."""
    from onceflow.cli.render import print_windows

    start, end = "2026-11-30T00:00:00+00:00", "2026-12-01T00:00:00+00:00"
    result = {
        "run_id": "demo_20261130",
        "expected_window": [start, end],
        "seams": [],
        "inconsistent": [
            {
                "table_key": LONG_TABLE,
                "window_start": start,
                "window_end": "2026-12-01T02:00:00+00:00",
            }
        ],
    }
    terminal(80)
    print_windows(result)
    lines = _out(capsys)
    _fits(lines, 80)
    assert "2026-12-01T02:00:00+00:00" in _words(lines) and LONG_TABLE in _words(lines)
    assert _hidden(lines) == ["window start"]
    terminal(100)
    print_windows(result)
    assert not _hidden(_out(capsys))
