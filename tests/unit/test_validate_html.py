"""The HTML report's text: numbers, rates, wide samples, long values, rule times."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from onceflow.validate import Validator
from onceflow.validate.figures import number_text, percent_text
from onceflow.validate.html import SAMPLE_COLUMNS, _number, rate_label, render_html
from onceflow.validate.runner import SAMPLE_VALUE_BYTES, SAMPLE_VALUE_CHARS, SAMPLE_VALUE_ITEMS


def test_a_rate_just_under_one_never_reads_100_percent() -> None:
    assert rate_label(1.0) == "100%"
    assert rate_label(0.99995) == "99.995%"
    assert rate_label(0.5) == "50%"
    assert rate_label(0.0004) == "0.04%"  # not "0.0%": some rows pass
    assert _number(0.99995) == "0.99995"  # observed vs `mostly 0.99999`: both readable


def test_failing_percents_read_the_same_in_the_terminal_and_the_report() -> None:
    assert percent_text(99.96) == "99.96%"  # one row of 2,500 passes: not "100%"
    assert percent_text(1600.0) == "1,600%"  # a query whose join repeats rows
    assert percent_text(0.00203) == "0.00203%" and percent_text(0.5076) == "0.508%"
    assert percent_text(0.0) == "0%" and percent_text(100.0) == "100%"
    assert number_text(0.9999899497487437) == "0.9999899497"  # against mostly 0.99999


def test_huge_numbers_are_short() -> None:
    assert _number(1e308) == "1.000000e+308"
    assert _number(float("inf")) == "inf" and _number(float("nan")) == "nan"
    assert _number(1234567.0) == "1,234,567"
    assert _number(10**20) == "1.000000e+20"


def _wide(columns: int, text: str = "x") -> pa.Table:
    data = {f"c{i:02}": [text, text] for i in range(columns)}
    return pa.table({**data, "amount": [-5, 3]})


def test_wide_samples_show_the_checked_column_first_and_say_what_was_left_out() -> None:
    rule = {"name": "amount_positive", "type": "range", "column": "amount", "min": 0}
    report = Validator(rules_by_table={"t": [rule]}).validate_table(_wide(SAMPLE_COLUMNS + 5), "t")
    page = render_html(report)
    samples = page[page.index("failing row sample") :]
    assert samples.index("<th>amount</th>") < samples.index("<th>c00</th>")
    assert '<td title="-5">-5</td>' in samples
    assert "6 more column(s) in the JSON report" in samples


def test_samples_lead_with_the_rules_own_column_not_every_fused_rules_or_the_relation() -> None:
    # the fused query names every rule's columns, the FROM names the relation `rel`, and a
    # quoted name doubles its quotes: none of that may push the checked column out
    table = _wide(SAMPLE_COLUMNS + 5).append_column("rel", pa.array(["r", "r"]))
    odd = 'Spalte "150" Ω'
    table = table.append_column(odd, pa.array([None, "v"]))
    rules = [
        {"name": f"other_{i}", "type": "completeness", "column": f"c{i:02}"} for i in range(12)
    ] + [{"name": "odd", "type": "completeness", "column": odd}]
    report = Validator(rules_by_table={"t": rules}).validate_table(table, "t")
    page = render_html(report)
    samples = page[page.index("odd: 1 failing row sample") :]
    header = samples[: samples.index("</tr>")]
    first = header[header.index("<th>") :].split("</th>")[0]
    assert first == "<th>Spalte &quot;150&quot; Ω"


def test_long_sample_values_are_cut_saying_how_much() -> None:
    rule = {"name": "amount_positive", "type": "range", "column": "amount", "min": 0}
    long = "y" * (SAMPLE_VALUE_CHARS + 500)
    report = Validator(rules_by_table={"t": [rule]}).validate_table(_wide(1, long), "t")
    value = report.result("amount_positive").samples[0]["c00"]
    assert value == "y" * SAMPLE_VALUE_CHARS + "... (500 more characters)"


def test_sample_maps_keep_100_entries_and_cut_their_keys_saying_how_much() -> None:
    rule = {"name": "amount_positive", "type": "range", "column": "amount", "min": 0}
    entries = [(f"k{i}", i) for i in range(SAMPLE_VALUE_ITEMS + 400)]
    big = pa.array(
        [entries, [("k" * (SAMPLE_VALUE_CHARS + 7), 1)]], pa.map_(pa.string(), pa.int64())
    )
    table = _wide(1).append_column("m", big)
    report = Validator(rules_by_table={"t": [rule]}).validate_table(table, "t")
    (sample,) = report.result("amount_positive").samples  # the row with amount -5
    assert len(sample["m"]) == SAMPLE_VALUE_ITEMS + 1
    assert sample["m"]["..."] == "(400 more entries)"
    rule["max"] = 0  # now the second row fails too: its one key of 1,007 characters
    report = Validator(rules_by_table={"t": [rule]}).validate_table(table, "t")
    keys = [key for s in report.result("amount_positive").samples for key in s["m"]]
    assert "k" * SAMPLE_VALUE_CHARS + "... (7 more characters)" in keys
    assert len(report.to_json()) < 50_000


def test_an_observed_number_never_breaks_inside_its_digits_but_a_column_list_wraps() -> None:
    rules = [
        {"name": "big_mean", "type": "statistic", "column": "amount", "statistic": "sum", "max": 0},
        {"name": "shape", "type": "schema", "columns": {"c00_" * 40: "bigint"}},
    ]
    table = pa.table({"c00": ["x"], "amount": pa.array([25_561.30316])})
    page = render_html(Validator(rules_by_table={"t": rules}).validate_table(table, "t"))
    assert '<td class="num">25,561.30316</td>' in page  # 25,561.3031 / 6 on two lines
    assert '<td class="num text">missing c00_' in page
    css = {rule.split("{")[0].strip(): rule.split("{")[1] for rule in page.split("}")[:-1]}
    assert "white-space: nowrap" in css["td.num"] and "anywhere" not in css["td.num"]
    assert "overflow-wrap: anywhere" in css["td.num.text"]


def test_rule_times_share_the_fused_query_and_add_up_to_the_statements() -> None:
    rules = [{"name": f"r{i}", "type": "range", "column": "amount", "min": -i} for i in range(10)]
    validator = Validator(rules_by_table={"t": rules}, samples=0)
    report = validator.validate_table(_wide(1), "t")
    total = sum(r.duration_seconds for r in report.results)
    assert report.tables[0].statements == 1  # the ten rules are one fused query
    assert total <= report.tables[0].duration_seconds
    durations = {r.duration_seconds for r in report.results}
    assert len(durations) == 1  # each its equal share


def test_long_names_wrap_and_a_wide_results_table_scrolls_in_its_card() -> None:
    name = "customer_id_must_reference_an_existing_customer_" * 3
    rule = {"name": name, "type": "range", "column": "amount", "min": 0}
    page = render_html(Validator(rules_by_table={"t": [rule]}).validate_table(_wide(1), "t"))
    assert '<div class="scroll"><table>' in page  # the card hides overflow: scroll inside
    rule_cell = page[page.index("td.rule {") : page.index("}", page.index("td.rule {"))]
    assert "overflow-wrap: anywhere" in rule_cell and "max-width" in rule_cell


def test_a_validation_with_no_pass_rate_is_a_gap_in_the_chart_not_a_drop() -> None:
    from onceflow.validate.html import sparkline

    svg = sparkline([(1.0, "pass"), (1.0, "pass"), (None, "error"), (1.0, "pass"), (0.99, "fail")])
    assert svg.count("<polyline") == 2  # the line breaks at the error
    assert 'fill="#fff"' in svg and "error: no pass rate" in svg
    assert "scale 90% to 100%" in svg  # the error does not stretch the scale either


def test_a_null_sample_reads_apart_from_empty_text_and_nested_values_as_json() -> None:
    from onceflow.validate.html import _sample_cell

    assert _sample_cell(None) == '<td class="null">NULL</td>'
    assert _sample_cell("") == '<td title=""></td>'
    assert ">{&quot;a&quot;: [1, 2]}<" in _sample_cell({"a": [1, 2]})


def test_a_rules_description_is_in_the_reports_as_the_config_gives_it_now(tmp_path: Any) -> None:
    """The description says why a rule exists: in the JSON and the HTML; editing it
    changes no answer, so the stored result is served with the new text."""
    state = f"sqlite:///{tmp_path / 'state.db'}"
    data = pa.table({"v": [1, 2, -3]})
    rule = {"name": "positive", "type": "range", "column": "v", "min": 0}

    def check(description: str) -> Any:
        validator = Validator(
            rules_by_table={"t": [{**rule, "description": description}]}, state=state
        )
        return validator.validate_table(data, "t")

    first = check("refunds are <negative> rows of their own table")
    assert first.results[0].as_dict()["description"].startswith("refunds are")
    assert "refunds are &lt;negative&gt; rows" in render_html(first)
    again = check("amounts are never negative")
    assert again.results[0].cached and again.data_queries == 0
    assert again.results[0].description == "amounts are never negative"


def test_a_uniqueness_rule_shows_its_distinct_duplicated_values_and_the_sql_once(
    tmp_path: Any,
) -> None:
    table = pa.table({"id": [1, 1, 2, 2, 2, 3], "v": [1, 2, 3, 4, -5, 6]})
    rules = [
        {"name": "id_unique", "type": "uniqueness", "columns": ["id"]},
        {"name": "v_positive", "type": "range", "column": "v", "min": 0},
        {"name": "v_small", "type": "range", "column": "v", "max": 100},
    ]
    state = f"sqlite:///{tmp_path / 'state.db'}"
    report = Validator(rules_by_table={"t": rules}, state=state).validate_table(table, "t")
    page = render_html(report)
    assert "5<br><small>2 distinct</small>" in page  # 5 duplicated rows, 2 values
    sql = page[page.index("<summary>SQL: ") :]
    statements = {s for r in report.results for s in r.sql}
    assert f"<summary>SQL: {len(statements)} statement(s)</summary>" in sql
    # the fused statement is shown once, naming every rule it served
    assert sql.count('<pre class="sql">') == len(statements)
    assert "for id_unique, v_positive, v_small</div>" in sql and "cached" not in sql
    again = Validator(rules_by_table={"t": rules}, state=state).validate_table(table, "t")
    assert again.data_queries == 0
    assert "(cached: ran on an earlier validation)" in render_html(again)


def _blobs() -> pa.Table:
    """A BLOB column beside a text column holding the same bytes as hex digits."""
    blobs = [b"\x0a\x1b\x2c", b"\xff" * (SAMPLE_VALUE_BYTES + 200), b"", None]
    return pa.table(
        {
            "id": [1, 2, 3, 4],
            "blob": pa.array(blobs, pa.binary()),
            "hex_text": ["0a1b2c", "ff", "", "x"],
        }
    )


BLOB_RULE = {"name": "blob_small", "type": "sql_predicate", "expression": "octet_length(blob) < 0"}


def test_a_binary_sample_is_marked_apart_from_text_of_hex_digits() -> None:
    """A BLOB's sample was bare hex (`0a1b2c`), the same as a varchar holding `0a1b2c`."""
    import jsonschema

    from onceflow.validate import SCHEMA_PATH

    report = Validator(rules_by_table={"t": [BLOB_RULE]}).validate_table(_blobs(), "t")
    first, second, empty = report.result("blob_small").samples
    assert first == {"id": 1, "blob": "<binary, 3 bytes: 0a1b2c>", "hex_text": "0a1b2c"}
    # a long one is cut at SAMPLE_VALUE_BYTES bytes, its marker whole, saying how much
    more = "(200 more bytes)"
    assert second["blob"] == f"<binary, 700 bytes: {'ff' * SAMPLE_VALUE_BYTES}... {more}>"
    assert empty["blob"] == "<binary, 0 bytes>"
    schema = json.loads(SCHEMA_PATH.read_text())
    data = json.loads(report.to_json())
    jsonschema.validate(data, schema)
    pattern = re.compile(schema["$defs"]["binary"]["pattern"])
    for sample in (first, second, empty):  # the schema documents the marker as it is
        assert pattern.fullmatch(sample["blob"]) and not pattern.fullmatch(sample["hex_text"])
    page = render_html(report)
    assert '<td class="binary" title="&lt;binary, 3 bytes: 0a1b2c&gt;">' in page
    assert '<td title="0a1b2c">0a1b2c</td>' in page  # the text column: as it is


def test_validate_json_on_the_terminal_marks_a_binary_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--json` is how the terminal shows samples (the table leaves the data's values out of
    the terminal and CI logs); `--output` and `--html` write the same."""
    from onceflow.cli import main

    monkeypatch.chdir(tmp_path)
    pq.write_table(_blobs(), "d.parquet")
    rules = f"{{name: blob_small, type: sql_predicate, expression: '{BLOB_RULE['expression']}'}}"
    (tmp_path / "config.yaml").write_text(
        f'version: "1.0"\ntables:\n  - name: t\n    rules:\n      - {rules}\n', encoding="utf-8"
    )
    (tmp_path / "sources.yaml").write_text("t: d.parquet\n", encoding="utf-8")
    args = ["validate", "--config", "config.yaml", "--sources", "sources.yaml"]
    assert main([*args, "--json", "--output", "r.json", "--html", "r.html"]) == 1
    shown = json.loads(capsys.readouterr().out)
    (samples,) = [r["samples"] for t in shown["tables"] for r in t["results"]]
    assert samples[0]["blob"] == "<binary, 3 bytes: 0a1b2c>" and samples[0]["hex_text"] == "0a1b2c"
    assert json.loads(Path("r.json").read_text())["tables"] == shown["tables"]
    assert "&lt;binary, 3 bytes: 0a1b2c&gt;" in Path("r.html").read_text()
