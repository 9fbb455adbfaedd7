"""The commands that print tables, run at a terminal 60 and 200 columns wide (a real
pseudo-terminal): every line fits, names are whole where there is room; piped, or with
JSON logs, every line is whole whatever COLUMNS says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli, run_in_terminal

#: Longer than the 24 characters `runs list` and `schedule list` used to cut it to.
PIPELINE = "demo_shop_pipeline_with_a_long_name"
#: Each command that prints a table, and the names it shows.
COMMANDS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("status",): ("shop.orders", "shop.customers", "scd2(customer_id)"),
    ("validate",): ("shop.customers", "order_id_unique", "email_present", "max_failing0"),
    ("runs", "list"): (f"{PIPELINE}/backfill", "PENDING"),
    ("schedule", "list"): (f"{PIPELINE}/nightly", "0 2 * * *".replace(" ", "")),
    ("schedule", "preview", "nightly", "--count", "3"): ("window(rundate)",),
}


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


@pytest.mark.parametrize("width", [60, 200])
def test_every_table_command_fits_the_terminal_it_runs_in(project: Path, width: int) -> None:
    """validate's rows were 103 columns wide, runs list's 119, schedule list's 139: the
    terminal wrapped each row out of its columns. At 200 columns every name is whole
    on one line; at 60 a long one folds, every character of it kept."""
    for args, names in COMMANDS.items():
        done = run_in_terminal(*args, columns=width, cwd=project)
        assert done.returncode == 0, done.stderr
        too_wide = [line for line in done.stdout.splitlines() if len(line) > width]
        assert not too_wide, (args, too_wide)
        for name in names:
            assert _folded_in(done.stdout, name), (args, name)
            if width == 200:
                assert any(name in line for line in _flat_lines(done.stdout)), (args, name)
    # the short names stay whole at 60 too: what gives way first is the headers and text
    status = run_in_terminal("status", columns=width, cwd=project).stdout
    assert {"shop.orders", "shop.customers"} <= set(status.split())


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
