"""The commands that print tables, run at a terminal 60, 80 and 200 columns wide (a real
pseudo-terminal): every line fits, no header is split inside a word, a column left out
is named under its table, names are whole where there is room; piped, or with JSON logs,
every line is whole whatever COLUMNS says; --json has every field at any width."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from onceflow.cli.render import (
    LOAD_COLUMNS,
    OUTCOME_COLUMNS,
    RUN_COLUMNS,
    VALIDATION_COLUMNS,
)
from onceflow.cli.runs import RUN_COLUMNS as RUNS_LIST_COLUMNS
from onceflow.cli.schedule import PREVIEW_COLUMNS, SCHEDULE_COLUMNS
from tests.helpers.cli import run_cli, run_in_terminal

#: Longer than the 24 characters `runs list` and `schedule list` used to cut it to.
PIPELINE = "demo_shop_pipeline_with_a_long_name"
#: Each command that prints a table: the names it shows, each under the header of its
#: column (left out on a narrow terminal, it is named under the table instead), and its
#: headers (those of columns empty in this project are left out unsaid: `error`, `lock`,
#: `problems`).
COMMANDS: dict[tuple[str, ...], tuple[tuple[tuple[str, str], ...], tuple[str, ...]]] = {
    ("status",): (
        (("table", "shop.orders"), ("table", "shop.customers"), ("strategy", "scd2(customer_id)")),
        tuple(
            h
            for h, _ in RUN_COLUMNS + LOAD_COLUMNS + VALIDATION_COLUMNS
            if h not in ("error", "lock", "problems")
        ),
    ),
    ("validate",): (
        (
            ("", "shop.customers"),
            ("rule", "order_id_unique"),
            ("rule", "email_present"),
            ("threshold", "max_failing0"),
        ),
        tuple(h for h, _ in OUTCOME_COLUMNS if h),
    ),
    ("runs", "list"): (
        (("pipeline/schedule", f"{PIPELINE}/backfill"), ("state", "PENDING")),
        tuple(h for h, _ in RUNS_LIST_COLUMNS if h not in ("ended (UTC)", "error")),
    ),
    ("schedule", "list"): (
        (("pipeline/schedule", f"{PIPELINE}/nightly"), ("cron", "0 2 * * *".replace(" ", ""))),
        tuple(h for h, _ in SCHEDULE_COLUMNS),
    ),
    ("schedule", "preview", "nightly", "--count", "3"): (
        (("window (run date)", "window(rundate)"),),
        tuple(h for h, _ in PREVIEW_COLUMNS),
    ),
}
#: The line under a table naming the columns left out to fit.
NOTE = re.compile(r"^\s*\((.+?) hidden(?: to fit \d+ columns)?; --json has (?:every field|all)\)")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo with a long pipeline name: one run (extract, load, rules), two queued
    backfill runs."""
    from datetime import date

    from onceflow.demo import create_demo_database, init_project

    root = tmp_path_factory.mktemp("terminal") / "demo"
    init_project(root)
    (root / "shop.db").unlink()
    create_demo_database(root / "shop.db", end=date(2025, 1, 23))
    config = root / "onceflow.yml"
    config.write_text(config.read_text().replace("pipeline: demo", f"pipeline: {PIPELINE}"))
    for args in (
        ("run", "--date", "2025-01-23"),
        ("backfill", "--from", "2025-01-21", "--to", "2025-01-22"),
    ):
        done = run_cli(*args, cwd=root)
        assert done.returncode == 0, done.stderr
    return root


def _flat(text: str) -> str:
    """The output read left to right, line by line, without spaces and table rules: a
    folded name's pieces follow each other in it (other cells' pieces between them)."""
    return re.sub(r"[\s│┃─━┏┓┗┛┡┩╇┳┻]+", "", text)


def _folded_in(text: str, name: str) -> bool:
    return re.search(".*?".join(re.escape(c) for c in name), _flat(text), re.DOTALL) is not None


def _hidden(text: str) -> list[str]:
    """The columns the notes under the tables name as left out (`-`: a note that only
    counts them)."""
    names: list[str] = []
    for line in text.splitlines():
        if re.match(r"^\s*\(\d+ columns hidden;", line):
            names.append("-")
        elif m := NOTE.match(line):
            *first, last = m.group(1).split(" and ")
            names += [n for part in first for n in part.split(", ")] + [last]
    return names


@pytest.mark.parametrize("width", [60, 80, 200])
def test_every_table_command_fits_the_terminal_it_runs_in(project: Path, width: int) -> None:
    """validate's rows were 103 columns wide, runs list's 119, schedule list's 139: the
    terminal wrapped each row out of its columns; then they fit, their headers folded
    inside words (`outco` over `me`) and their dates over two lines. At 200 columns every
    name is whole on one line and no column is left out; narrower, a column left out is
    said to be, and every header word is whole."""
    for args, (names, headers) in COMMANDS.items():
        done = run_in_terminal(*args, columns=width, cwd=project)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        too_wide = [line for line in lines if len(line) > width]
        assert not too_wide, (args, too_wide)
        words = set(done.stdout.split())
        hidden = _hidden(done.stdout)
        for header in headers:
            assert set(header.split()) <= words or header in hidden or "-" in hidden, (
                args,
                header,
                done.stdout,
            )
        for header, name in names:
            if header and not set(header.split()) <= words:
                continue  # its column was left out
            assert _folded_in(done.stdout, name), (args, name)
            if width >= 80:
                assert any(name in line for line in _flat_lines(done.stdout)), (args, name)
        if width == 200:
            assert not hidden, (args, done.stdout)
    # the short names stay whole at 60 too: what gives way first is the headers and text
    status = run_in_terminal("status", columns=width, cwd=project).stdout
    assert {"shop.orders", "shop.customers"} <= set(status.split())


def test_validate_at_80_columns_is_a_line_per_rule_without_its_type(project: Path) -> None:
    """Its headers folded inside words (`outco` over `me`, `failin` over `g`) and each
    `max_failing 0` over two lines, every row two lines high."""
    done = run_in_terminal("validate", columns=80, cwd=project)
    lines = done.stdout.splitlines()
    rows = [line for line in lines if "max_failing 0" in line]
    assert len(rows) == 5 and all(line.split()[1] in ("pass", "warn") for line in rows)
    for rule in ("order_id_unique", "email_present"):
        (row,) = [line for line in lines if rule in line.split()]
        assert "max_failing 0" in row and row.rstrip().endswith("cached")
    assert "uniqueness" not in done.stdout
    notes = [line.strip() for line in lines if NOTE.match(line)]
    assert notes == ["(type hidden to fit 80 columns; --json has every field)"]


@pytest.mark.parametrize(
    "args", [("validate",), ("status",), ("runs", "list"), ("schedule", "list")]
)
def test_json_at_a_narrow_terminal_has_every_field(project: Path, args: tuple[str, ...]) -> None:
    """What a narrow terminal leaves out of a table (a rule's type, a run's end) is in
    --json, whole, as it is piped."""
    narrow = json.loads(run_in_terminal(*args, "--json", columns=60, cwd=project).stdout)
    piped = json.loads(run_cli(*args, "--json", cwd=project, env={"COLUMNS": "60"}).stdout)

    def shape(data: object) -> object:
        if isinstance(data, dict):
            return {k: shape(v) for k, v in data.items()}
        if isinstance(data, list):
            return [shape(v) for v in data]
        return type(data).__name__

    assert shape(narrow) == shape(piped)
    if args == ("validate",):
        results = [r for t in narrow["tables"] for r in t["results"]]
        assert {r["type"] for r in results} >= {"uniqueness", "completeness"}


def _flat_lines(text: str) -> list[str]:
    return [_flat(line) for line in text.splitlines()]


def test_the_terminals_own_width_counts_without_columns(project: Path) -> None:
    done = run_in_terminal("validate", columns=60, cwd=project, set_columns=False)
    assert done.returncode == 0, done.stderr
    assert max(len(line) for line in done.stdout.splitlines()) <= 60
    assert "order_id_unique" in done.stdout.replace("\n", "") or _folded_in(
        done.stdout, "order_id_unique"
    )


def test_piped_output_keeps_whole_rows_whatever_columns_says(project: Path) -> None:
    """A script or grep reads a row as one line: `runs list` cut the pipeline's name at
    24 characters without a mark."""
    listed = run_cli("runs", "list", cwd=project, env={"COLUMNS": "60"})
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if "PENDING" in line]
    assert len(rows) == 2 and all(f"{PIPELINE}/backfill  2025-01-2" in row for row in rows)
    checked = run_cli("validate", cwd=project, env={"COLUMNS": "60"})
    (row,) = [line for line in checked.stdout.splitlines() if "order_id_unique" in line]
    assert row.split()[:3] == ["order_id_unique", "uniqueness", "pass"] and len(row) > 60


def test_json_logs_keep_whole_lines_at_a_terminal(project: Path) -> None:
    """A log collector reads them, through the terminal `docker run -t` gives it too."""
    done = run_in_terminal("--log-format", "json", "status", columns=60, cwd=project)
    assert done.returncode == 0, done.stderr
    assert any(len(line) > 60 for line in done.stdout.splitlines())
    lines = done.stdout.splitlines()
    assert any("shop.customers" in x and "scd2 (customer_id)" in x for x in lines)
