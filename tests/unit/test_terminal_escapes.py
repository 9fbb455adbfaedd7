"""Values of the data reach the terminal escaped: a cell, a column name or a library's
message quoting them may hold ESC sequences (`\x1b]0;...\x07` sets the window title,
`\x1b[2J` clears the screen) or a `\r\n` that forges a line of its own. The CLI prints
them as visible text (`\x1b`); JSON output keeps them as data (JSON escapes them)."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from onceflow.cli import main
from onceflow.cli.app import say_problem
from onceflow.cli.render import plain, print_load
from onceflow.errors import printable
from onceflow.load import LoadSummary, TableLoadResult
from onceflow.logs import setup_logging

EVIL = "\x1b]0;PWNED\x07\x1b[2J\x1b[31mEVIL\r\nfake line: 0 fail -- exit 0: ok"


def _no_control(text: str) -> None:
    """No character a terminal acts on, but the line ends."""
    bad = [c for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0]
    assert not bad, repr(text)


pytestmark = pytest.mark.usefixtures("cli_globals_restored")


def test_printable_names_each_control_character() -> None:
    assert printable(EVIL) == (
        "\\x1b]0;PWNED\\x07\\x1b[2J\\x1b[31mEVIL\\r\\nfake line: 0 fail -- exit 0: ok"
    )
    assert printable("a\tb\x9b\x7f") == "a\tb\\x9b\\x7f"  # a tab is kept; C1 and DEL not
    # bidi overrides reorder what follows; a line separator starts a line
    assert printable("x\u202ey\u2028z\u2066") == "x\\u202ey\\u2028z\\u2066"
    assert printable("é ü 名前 ✓") == "é ü 名前 ✓"
    assert printable("one\ntwo\rthree", lines=True) == "one\ntwo\\rthree"


def test_printable_is_idempotent() -> None:
    assert printable(printable(EVIL)) == printable(EVIL)


def test_a_problem_line_shows_the_escape_instead_of_acting_on_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    say_problem(f"error: {EVIL}")
    err = capsys.readouterr().err
    _no_control(err)
    assert err.count("\n") == 1 and "\\x1b]0;PWNED\\x07" in err


def test_a_load_error_with_a_value_of_the_data_is_printed_escaped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = TableLoadResult("s.t", "s/t", "/wh/s/t", "append")
    result.error = f"a.parquet: NULL key in row {EVIL}"
    with pytest.raises(Exception):  # noqa: B017 - typer.Exit(1): the load failed
        print_load(LoadSummary([result]), as_json=False)
    out = capsys.readouterr()
    _no_control(out.out + out.err)
    assert "\\x1b[2J" in out.err


def test_rich_cells_are_escaped_and_their_brackets_kept() -> None:
    """rich passes ESC through to the terminal; `plain` is every cell's and title's."""
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=400, color_system=None).print(plain(f"[libpq] {EVIL}"))
    _no_control(out.getvalue())
    assert out.getvalue() == f"[libpq] {printable(EVIL)}\n"


def test_a_log_line_is_escaped_and_a_json_one_keeps_the_value(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging("INFO", "text")
    logging.getLogger("onceflow.test").error("s.t: %s", EVIL)
    err = capsys.readouterr().err
    _no_control(err)
    assert err.count("\n") == 1 and "\\x1b]0;PWNED" in err
    setup_logging("INFO", "json")
    logging.getLogger("onceflow.test").error("s.t: %s", EVIL)
    record = json.loads(capsys.readouterr().err)
    assert record["message"] == f"s.t: {EVIL}"


def test_validate_prints_a_duckdb_message_quoting_a_value_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """DuckDB's conversion error quotes the value; a column name is the data's too."""
    monkeypatch.chdir(tmp_path)
    pq.write_table(pa.table({"v": ["1", EVIL], "col\x1b[7m": [1, 2]}), "d.parquet")
    (tmp_path / "config.yaml").write_text(
        'version: "1.0"\ntables:\n  - name: t\n    rules:\n'
        '      - {name: cast, type: sql_predicate, expression: "CAST(v AS INTEGER) > 0"}\n'
        "      - {name: miss, type: completeness, column: nope}\n",
        encoding="utf-8",
    )
    (tmp_path / "sources.yaml").write_text("t: d.parquet\n", encoding="utf-8")
    code = main(["validate", "--config", "config.yaml", "--sources", "sources.yaml"])
    assert code == 2
    out = capsys.readouterr().out
    _no_control(out)
    assert "\\x1b]0;PWNED\\x07\\x1b[2J" in out and "col\\x1b[7m" in out
    assert not any(line.startswith("fake line") for line in out.splitlines())
