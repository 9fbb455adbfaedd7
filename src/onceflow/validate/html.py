"""The static HTML report: one self-contained file (inline CSS and SVG, no script, no
network) with each table's outcomes per rule, the failing samples, and a chart of each
rule's pass rate over its past validations (from the state store's history)."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from onceflow.state import HistoryRecord, Store
from onceflow.validate.figures import BINARY_TEXT, number_text, percent_text
from onceflow.validate.results import OUTCOMES, RuleResult, TableReport, ValidationReport

COLOURS = {
    "pass": "#1a7f37",
    "warn": "#b7791f",
    "fail": "#cf222e",
    "error": "#8250df",
    "skipped": "#6e7781",
}
STATUS_COLOURS = {
    "passed": "#1a7f37",
    "warn": "#b7791f",
    "skipped": "#6e7781",
    "failed": "#cf222e",
    "error": "#8250df",
}
# Sample tables show the rule's own columns first, then others up to this many.
SAMPLE_COLUMNS = 30

CSS = """
:root { --ink: #1f2328; --muted: #57606a; --line: #d0d7de; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       color: var(--ink); background: #eef1f4; }
header { background: #0d1117; color: #fff; padding: 22px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 600; overflow-wrap: anywhere; }
header .meta { color: #9da7b3; font-size: 13px; }
main { padding: 24px 32px 40px; max-width: 1400px; margin: 0 auto; }
.pills { display: flex; gap: 8px; margin-top: 12px; flex-wrap: wrap; }
.pill { border-radius: 999px; padding: 3px 12px; font-size: 13px; font-weight: 600;
        color: #fff; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 10px;
        margin-bottom: 22px; overflow: hidden; box-shadow: 0 1px 2px rgba(0,0,0,.04); }
.card h2 { margin: 0; font-size: 17px; display: flex; align-items: center; gap: 10px;
           overflow-wrap: anywhere; }
.scroll { overflow-x: auto; }
.card .head { padding: 14px 18px; border-bottom: 1px solid var(--line); background: var(--soft); }
.card .sub { color: var(--muted); font-size: 12.5px; margin-top: 4px; word-break: break-all; }
.badge { border-radius: 6px; padding: 2px 9px; color: #fff; font-size: 12px;
         font-weight: 700; text-transform: uppercase; letter-spacing: .03em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 8px 12px; border-bottom: 1px solid #eaeef2;
         vertical-align: middle; }
th { font-size: 12px; color: var(--muted); font-weight: 600; text-transform: uppercase;
     letter-spacing: .04em; background: #fff; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.num.text { white-space: normal; overflow-wrap: anywhere; min-width: 160px; max-width: 280px; }
td.rule { font-weight: 600; min-width: 180px; max-width: 460px; overflow-wrap: anywhere; }
td.rule small { display: block; font-weight: 400; color: var(--muted); }
.chip { display: inline-block; min-width: 62px; text-align: center; border-radius: 999px;
        padding: 2px 10px; font-size: 12px; font-weight: 700; color: #fff; }
.tag { display: inline-block; border: 1px solid var(--line); border-radius: 4px;
       padding: 0 5px; font-size: 11px; color: var(--muted); margin-left: 4px; }
.about { color: var(--muted); font-size: 12.5px; font-weight: 400; overflow-wrap: anywhere; }
.msg { color: #8250df; font-size: 12.5px; font-weight: 400; overflow-wrap: anywhere; }
.bad { color: #cf222e; font-weight: 600; }
details { padding: 10px 18px 14px; border-top: 1px solid #eaeef2; }
summary { cursor: pointer; font-weight: 600; color: var(--ink); }
.samples { overflow-x: auto; margin-top: 8px; border: 1px solid var(--line); border-radius: 6px; }
.samples table td, .samples table th { font-size: 12px; padding: 4px 8px; white-space: nowrap;
                                       max-width: 420px; overflow: hidden;
                                       text-overflow: ellipsis; }
.note { color: var(--muted); font-size: 12px; margin-top: 6px; }
.samples td.null { color: var(--muted); font-style: italic; }
.samples td.binary { color: var(--muted); font: 12px ui-monospace, Menlo, monospace; }
.samples table th { text-transform: none; letter-spacing: 0; background: var(--soft); }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; }
pre.sql { font: 12px/1.45 ui-monospace, SFMono-Regular, Menlo, monospace; white-space: pre-wrap;
  word-break: break-word; background: var(--soft); border: 1px solid var(--line);
  border-radius: 6px; padding: 8px 10px; margin: 8px 0 0; max-height: 24em; overflow-y: auto; }
.sqlfor { color: var(--muted); font-size: 12px; margin-top: 10px; }
.legend { color: var(--muted); font-size: 12px; padding: 8px 18px 12px; }
.spark { display: inline-flex; align-items: center; gap: 8px; }
.rate { font-size: 12px; color: var(--muted); font-variant-numeric: tabular-nums; }
footer { color: var(--muted); font-size: 12px; text-align: center; padding-bottom: 24px; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _number(value: Any) -> str:
    return "&ndash;" if value is None else _e(number_text(value) or "ok")


# A number as text: a decimal statistic's exact value, "nan", "inf".
_NUMERIC = re.compile(r"[-+]?(\d[\d,]*(\.\d*)?([eE][-+]?\d+)?|nan|inf)", re.IGNORECASE)


def _observed_class(value: Any) -> str:
    """The observed cell's class: a number never breaks inside its digits (25,561.30316
    read as two numbers when it wrapped); a schema rule's list of columns wraps anywhere,
    not pushing the chart off the card."""
    if isinstance(value, dict | list) or (
        isinstance(value, str) and not _NUMERIC.fullmatch(value.strip())
    ):
        return "num text"
    return "num"


def _threshold(result: RuleResult) -> str:
    if not result.threshold:
        return "&ndash;"
    parts = []
    for key, value in result.threshold.items():
        if key == "columns":
            parts.append(f"{len(value)} columns")
        else:
            parts.append(f"{key} {_number(value)}")
    return _e(", ".join(parts))


def _failing(result: RuleResult) -> str:
    """Failing rows; for a uniqueness rule also its distinct duplicated values."""
    rows = _number(result.failing_rows)
    if result.distinct_failing is None or not result.failing_rows:
        return rows
    return f"{rows}<br><small>{_number(result.distinct_failing)} distinct</small>"


def _sql(report: TableReport) -> str:
    """The SQL behind the table's results, each statement once with the rules it served (a
    fused query serves many); a cached result's ran on an earlier validation."""
    served: dict[str, list[RuleResult]] = {}
    for result in report.results:
        for statement in result.sql:
            served.setdefault(statement, []).append(result)
    if not served:
        return ""
    parts = []
    for sql, results in served.items():
        cached = all(r.cached for r in results)
        earlier = " (cached: ran on an earlier validation)" if cached else ""
        names = ", ".join(r.rule for r in results)
        parts.append(
            f'<div class="sqlfor">for {_e(names)}{earlier}</div><pre class="sql">{_e(sql)}</pre>'
        )
    return f"<details><summary>SQL: {len(served)} statement(s)</summary>{''.join(parts)}</details>"


def _percent(value: float | None) -> str:
    return "&ndash;" if value is None else _e(percent_text(value))


def rate_label(rate: float) -> str:
    """A pass rate as a percent that reads 100% only when it is 1 (0.99995 is 99.995%)
    and 0% only when it is 0."""
    return percent_text(rate * 100)


def sparkline(
    points: Sequence[tuple[float | None, str]], width: int = 130, height: int = 34
) -> str:
    """An inline SVG of pass rates over validations (newest right), each dot in its
    outcome's colour, with the latest rate beside it. The scale runs from the lowest rate
    seen (at most 90 %) to 100 %, so a drop from 99.9 % to 99 % shows."""
    if not points:
        return '<span class="tag">no history</span>'
    pad = 4
    n = len(points)
    rates = [r for r, _o in points if r is not None]
    low = min([0.9, *rates])
    step = (width - 2 * pad) / max(1, n - 1)

    def y(rate: float) -> float:
        return pad + (1 - (rate - low) / (1 - low)) * (height - 2 * pad)

    xs = [pad + i * step if n > 1 else width / 2 for i in range(n)]
    # a validation with no pass rate (an error, a skip) is a gap in the line and a hollow
    # mark mid-height: drawn at the floor, it read as the worst drop of the series
    runs: list[list[str]] = [[]]
    for x, (rate, _o) in zip(xs, points, strict=True):
        if rate is None:
            runs.append([])
        else:
            runs[-1].append(f"{x:.1f},{y(rate):.1f}")
    lines = "".join(
        f'<polyline points="{" ".join(run)}" fill="none" stroke="#0969da" stroke-width="1.6"/>'
        for run in runs
        if len(run) > 1
    )
    middle = height / 2
    dots = "".join(
        (
            f'<circle cx="{x:.1f}" cy="{y(r):.1f}" r="2.8" fill="{COLOURS.get(o, "#6e7781")}">'
            f"<title>{_e(o)} {rate_label(r)}</title></circle>"
            if r is not None
            else f'<circle cx="{x:.1f}" cy="{middle:.1f}" r="2.8" fill="#fff" '
            f'stroke="{COLOURS.get(o, "#6e7781")}" stroke-width="1.4">'
            f"<title>{_e(o)}: no pass rate</title></circle>"
        )
        for x, (r, o) in zip(xs, points, strict=True)
    )
    grid = (
        f'<line x1="0" y1="{y(1):.1f}" x2="{width}" y2="{y(1):.1f}" stroke="#d0d7de" '
        'stroke-dasharray="2,3"/>'
        f'<line x1="0" y1="{y(low):.1f}" x2="{width}" y2="{y(low):.1f}" stroke="#eaeef2"/>'
    )
    last = points[-1][0]
    label = "" if last is None else f'<span class="rate">{rate_label(last)}</span>'
    return (
        f'<span class="spark"><svg width="{width}" height="{height}" viewBox="0 0 {width} '
        f'{height}" role="img" aria-label="pass rate over {n} validations, scale '
        f'{low:.0%} to 100%">{grid}'
        f"{lines}{dots}</svg>{label}</span>"
    )


_RELATION = re.compile(r'(?i)\b(?:from|join)\s+(?:"(?:[^"]|"")*"|\w+)')
_QUOTED = re.compile(r'"((?:[^"]|"")*)"')
_STRING = re.compile(r"'(?:[^']|'')*'")


def _named_columns(query: str, columns: list[str]) -> set[str]:
    """The sample columns a rule's failing-rows query names (its last SQL: the fused
    query names every rule's columns), not the relations it reads from."""
    text = _STRING.sub("''", _RELATION.sub(" ", query))
    quoted = {m.replace('""', '"') for m in _QUOTED.findall(text)}
    words = {w.lower() for w in re.findall(r"\b\w+\b", _QUOTED.sub(" ", text))}
    return {c for c in columns if c in quoted or c.lower() in words}


def _sample_cell(value: Any) -> str:
    """A sample value: NULL marked apart from the empty text, a binary one apart from text
    of hex digits (`figures.binary_text`, set in type), a nested one as JSON."""
    if value is None:
        return '<td class="null">NULL</td>'
    if isinstance(value, str) and BINARY_TEXT.fullmatch(value):
        return f'<td class="binary" title="{_e(value)}">{_e(value)}</td>'
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, default=str)
    return f'<td title="{_e(value)}">{_e(value)}</td>'


def _samples(result: RuleResult) -> str:
    if not result.samples:
        return ""
    columns: list[str] = []
    for row in result.samples:
        for key in row:
            if key not in columns:
                columns.append(key)
    # the columns the rule's own query names come first: a wide table's checked column
    # must not be the one cut off
    named = [
        c for c in columns if c in _named_columns(result.sql[-1] if result.sql else "", columns)
    ]
    ordered = named + [c for c in columns if c not in named]
    shown, left = ordered[:SAMPLE_COLUMNS], ordered[SAMPLE_COLUMNS:]
    head = "".join(f"<th>{_e(c)}</th>" for c in shown)
    body = "".join(
        "<tr>" + "".join(_sample_cell(row.get(c)) for c in shown) + "</tr>"
        for row in result.samples
    )
    note = (
        f'<div class="note">{len(left)} more column(s) in the JSON report: '
        f"{_e(', '.join(left))}</div>"
        if left
        else ""
    )
    return (
        f"<details><summary>{_e(result.rule)}: {len(result.samples)} failing "
        f"{'value' if result.type == 'uniqueness' else 'row'} sample(s)</summary>"
        f'<div class="samples"><table><tr>{head}</tr>{body}</table></div>{note}</details>'
    )


def _table(report: TableReport, history: dict[str, list[tuple[float | None, str]]]) -> str:
    colour = STATUS_COLOURS.get(report.status, "#6e7781")
    rows = []
    for r in report.results:
        tags = "".join(
            f'<span class="tag">{t}</span>'
            for t, on in (
                ("cached", r.cached),
                ("incremental", r.incremental),
                ("warn", r.severity == "warn"),
            )
            if on
        )
        message = f'<div class="msg">{_e(r.message)}</div>' if r.message else ""
        about = f'<div class="about">{_e(r.description)}</div>' if r.description else ""
        rows.append(
            "<tr>"
            f'<td><span class="chip" style="background:{COLOURS.get(r.outcome)}">'
            f"{_e(r.outcome)}</span></td>"
            f'<td class="rule">{_e(r.rule)}{tags}<small>{_e(r.type)}</small>{about}{message}</td>'
            f'<td class="{_observed_class(r.observed)}">{_number(r.observed)}</td>'
            f'<td class="num">{_threshold(r)}</td>'
            f'<td class="num">{_failing(r)}</td>'
            f'<td class="num">{_percent(r.failing_percent)} / '
            f"{_percent(r.failing_percent_non_null)}</td>"
            f'<td class="num">{r.duration_seconds * 1000:,.1f} ms</td>'
            f"<td>{sparkline(history.get(r.rule, []))}</td>"
            "</tr>"
        )
    counts = ", ".join(f"{v} {k}" for k, v in report.counts().items() if v)
    extra = ""
    if report.quarantined:
        where = f" into {_e(report.quarantine_table)}" if report.quarantine_table else ""
        extra = f" · {report.quarantined:,} rows quarantined{where}"
    if report.quarantine_error:
        extra += f' · <span class="bad">{_e(report.quarantine_error)}</span>'
    # no rows of the run; an unreadable table's message is each rule's, shown in its row
    if report.message and not any(r.message == report.message for r in report.results):
        extra += f" · {_e(report.message)}"
    samples = "".join(_samples(r) for r in report.results)
    return (
        '<section class="card"><div class="head">'
        f'<h2>{_e(report.table)} <span class="badge" style="background:{colour}">'
        f"{_e(report.status)}</span></h2>"
        f'<div class="sub">{_e(report.source)} · scope {_e(report.scope)} · {counts} · '
        f"{report.data_queries} data queries · {report.duration_seconds:.2f} s{extra}"
        f"<br><code>{_e(report.fingerprint)}</code></div></div>"
        '<div class="scroll"><table><tr><th>outcome</th><th>rule</th><th>observed</th>'
        "<th>threshold</th><th>failing rows</th><th>failing % all / non-null</th>"
        "<th>time</th><th>pass rate, past runs</th></tr>"
        + "".join(rows)
        + "</table></div>"
        + samples
        + _sql(report)
        + "</section>"
    )


def render_html(
    report: ValidationReport, history: dict[str, list[HistoryRecord]] | None = None
) -> str:
    """The report as one HTML page (`history`: per table, its rules' past outcomes)."""
    counts = report.counts()
    pills = "".join(
        f'<span class="pill" style="background:{COLOURS[o]}">{counts[o]} {o}</span>'
        for o in OUTCOMES
        if counts[o]
    )
    sections = []
    for table in report.tables:
        points: dict[str, list[tuple[float | None, str]]] = {}
        for h in (history or {}).get(table.table, []):
            points.setdefault(h.rule_name, []).append((h.pass_rate, h.outcome))
        sections.append(_table(table, points))
    verdict = {
        0: "all error rules hold",
        1: "a rule failed",
        2: "a rule could not run or was skipped",
    }
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>onceflow validation: {_e(report.pipeline)}</title>"
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style>'
        "</head><body><header>"
        f"<h1>Validation report · {_e(report.pipeline)}</h1>"
        f'<div class="meta">{_e(report.started_at)}'
        + (f" · run {_e(report.run_id)}" if report.run_id else "")
        + f" · {len(report.tables)} table(s), {len(report.results)} rule(s) · "
        f"{report.data_queries} data queries · exit {report.exit_code}: "
        f"{verdict[report.exit_code]}</div>"
        f'<div class="pills">{pills}</div></header><main>'
        + "".join(sections)
        + '<p class="legend">Failing % is of all rows in the rule\'s scope / of its non-NULL '
        "rows. A rule's time is its share of the queries it took part in (a fused query's "
        "time is split among its rules). The chart is each rule's pass rate over its past "
        "validations (newest right), dots coloured by outcome, scaled from the lowest rate "
        "seen (at most 90%) to 100%."
        "</p></main><footer>onceflow</footer></body></html>"
    )


def data_source(fingerprint: str | None) -> str | None:
    """The part of a data fingerprint that names where the data is, not its version:
    `delta:<table id>@` of a Delta table, `parquet:` of files. A table's chart shows its
    own data's history: a staged file checked with --sources is another source."""
    if not fingerprint:
        return None
    kind, _, rest = fingerprint.partition(":")
    if kind == "delta":
        return f"delta:{rest.split('@', 1)[0]}@"
    return f"{kind}:"


def write_html(report: ValidationReport, path: str | Path, *, store: Store | None = None) -> Path:
    """Write the HTML report (with history from `store` when given)."""
    history: dict[str, list[HistoryRecord]] = {}
    if store is not None:
        for table in report.tables:
            history[table.table] = store.rules.history(
                report.pipeline, table.table, source=data_source(table.fingerprint)
            )
    from onceflow.lake.atomic import write_bytes_atomic

    target = Path(path)
    write_bytes_atomic(target, render_html(report, history).encode("utf-8"))
    return target
