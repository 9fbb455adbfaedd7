"""Benchmark: data-quality rules on a Delta table - hand-written DuckDB, GX, Soda, onceflow.

Run from the repository root with the project venv::

    .venv/bin/python bench/validate.py --setup            # create the peer venvs (once)
    .venv/bin/python bench/validate.py                    # 10M rows, all methods
    .venv/bin/python bench/validate.py --rows 1000000 --repeats 3 --peer-repeats 1
    .venv/bin/python bench/validate.py --only duckdb soda # a subset (merges into RESULTS.md)
    .venv/bin/python bench/validate.py --append-fraction 0.01 --only duckdb   # incremental
    .venv/bin/python bench/validate.py --report-only      # re-render RESULTS.md from its data

On a shared machine each measured run first waits (``--quiet-wait``, default 300 s) until
other work uses at most ``--quiet-cpu`` (default 0.25) of the CPUs, and the report shows
how busy the box was before each method's runs. ``--keep`` keeps the run folders (spec,
stdout/stderr, result JSON of every child) under ``bench/.work/validate/runs``.

The data (cached under ``bench/.work/validate/``, rebuilt only when the parameters
change): a Delta table ``events`` of ``--rows`` rows (3 files of ~160 MB at 10M rows,
written by delta-rs) and ``customers`` (100,000 rows), generated with pyarrow.compute
from fixed seeds (no per-row Python), with planted problems - see ``generate_events``.

The 15 checks (``rules()`` is the same list in onceflow's rule format) are computed by
every method; each method's answers (failing rows, fractions, observed values) are
compared with the hand-written reference and every disagreement is printed and written
to RESULTS.md with its explanation (a semantic difference) or flagged as unexplained.

Methods (every run is a fresh child process; wall time and peak RSS of the whole child,
``bench/common.run_child``; the child also reports its own phases: imports, load = the
data into the tool's hands, setup = building the tool's suite/scan, inner = the checks):

a. ``duckdb``  the hand-written reference. DuckDB as an expert writes it: one fused
   aggregate query (FILTER clauses) for checks 1-11 and 14, one GROUP BY for uniqueness,
   one ANTI JOIN for the referential check, one count of the custom query. The Delta
   table is read through its snapshot, never a glob of the folder: here
   ``DeltaTable(path).to_pyarrow_dataset()`` over Arrow's local filesystem, registered in
   DuckDB (onceflow's path for a table whose files are not plain Parquet).
   Variants of the same four queries, to separate read path and DuckDB version:
   ``duckdb_files``  read_parquet() of the snapshot's file list (``DeltaTable.file_uris``),
   ``duckdb_delta_scan``  DuckDB's delta extension: ``delta_scan`` needs the extension
   binary, which DuckDB downloads at run time (no network here); the PyPI package
   ``duckdb-extension-delta`` ships it for duckdb 1.5.5 only, so this runs in its own
   venv (bench/.work/venv-duckdb-delta) on duckdb 1.5.5, and ``duckdb155`` is the
   dataset read on that same duckdb for comparison; ``duckdb100`` is the dataset read on
   duckdb 1.0.0, the version Soda Core 3.5.6 pins (venv-soda), to show what is Soda's own
   cost and what is its old DuckDB. The reference for the ratios is the fastest of
   ``duckdb``, ``duckdb_files`` (onceflow's own read path for a local table) and
   ``duckdb_delta_scan`` (the report names it).
b. ``gx_pandas``  Great Expectations (GX Core 1.x) the way its docs run a DataFrame:
   the Delta snapshot -> Arrow -> pandas (amount cast to float64 first: pandas has no
   decimal dtype and object-dtype Decimals make every numeric check several times
   slower), an ephemeral context, a pandas datasource, whole-dataframe batch, one suite
   of 15 built-in expectations, ``batch.validate(suite, result_format="BASIC")`` (counts
   and percentages, no failing-row lists). GX's pandas engine has no SQL, so the
   referential check is ``expect_column_values_to_be_in_set`` with the 100k customer ids
   and the custom query is ``expect_column_values_to_be_between(amount, max 9900)`` with
   ``row_condition status == 'paid'``; check 6 is ``quantity > 0`` with ``row_condition
   status != 'cancelled'``. The data load (Delta -> pandas) is reported separately.
   ``gx_sql``  the same suite on GX's SQL engine against DuckDB (via duckdb_engine; views
   over read_parquet of the snapshot's file list, in a DuckDB file). DuckDB is not a
   GX-supported backend: GX fetches query results after returning the connection to the
   pool, which loses DuckDB's pending result, so the child adds "duckdb" to GX's
   persisted-connection dialects (a one-line shim); GX has no regex for the dialect, so
   check 4 is an ``UnexpectedRowsExpectation``, as are the referential and custom checks.
   GX bundles the aggregate metrics of a domain into one query, the map metrics
   (unexpected counts) into others.
c. ``soda``  Soda Core 3.5.6 (SodaCL; soda-core-duckdb) on a DuckDB connection passed
   with ``scan.add_duckdb_connection`` with views over read_parquet of the snapshot's
   file list: the read path of onceflow and ``duckdb_files``. Checks: missing_count,
   invalid_count with valid min/max, valid values, valid regex, valid min/max length, a
   user-defined metric expression for the SQL predicate (Soda fuses it into its
   aggregation query), row_count, avg, stddev, sum, percentile, duplicate_count, a
   reference check, freshness (``NOW`` set to the reference instant) and a failed-rows
   query. ``samples limit: 0`` on every check: failed-row samples are for Soda Cloud and
   would add a query per failing check. Telemetry is off (``send_anonymous_usage_stats:
   false``). Soda Core 4.x (data contracts, not SodaCL) is not measured here. Soda pins
   duckdb<1.1, so it runs on duckdb 1.0.0.
d. ``onceflow``  ``onceflow.Validator(...).validate_table`` with ``rules()`` (see
   ``run_onceflow``); skipped with a note while ``onceflow.validate`` is not importable.

Why it is fair: every method checks the same Delta snapshot (same files, same page
cache: one untimed run warms it first); the read path is onceflow's own where the tool
allows it (Soda gets the very Arrow dataset in its DuckDB connection; GX pandas reads the
snapshot through it; GX SQL and the file-list variant read the snapshot's files, never a
glob); each tool gets the configuration an expert tuning it would choose (GX: BASIC result
format, no failing-row lists; Soda: no samples, the predicate fused as a metric expression;
hand-written: FILTER aggregates and an ANTI JOIN); what remains is each tool's own way of
working (GX's per-row Python and pydantic models, Soda's pinned DuckDB and its row-fetching
failed-rows count), which is what the comparison is about. Every method's answers are
checked against the reference, so a fast wrong answer shows up.

Repeats: ``--repeats`` (default 5) for the DuckDB variants and onceflow,
``--peer-repeats`` (default 3) for GX and Soda; methods are interleaved round by round
and each round's order rotates, so drift on this shared 2-core box hits every method.

``--append-fraction F`` (incremental): a copy of ``events`` gets ``F * rows`` new rows
appended (a second Delta commit, untimed); the hand-written full query is timed on the
grown table (the reference for "incremental <= 10 % of a full run, same results"), and
onceflow's incremental run (validate the copy, append, validate again with the same
state; the second run timed) hooks in when onceflow validate exists.
``--warm-rules N`` (onceflow only, skipped until it exists): N rules validated twice on
unchanged data with one state; the second run's API time and whole-command time.

Results go to the ``## Validate`` section of ``bench/RESULTS.md`` (only that section;
``--only`` runs merge into it).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Worker children of other venvs (GX, Soda) import this file too: module level stays
# stdlib-only; the harness helpers (bench/common.py, psycopg) are imported lazily.
T_START = time.perf_counter()
BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work" / "validate"
VENVS = {
    "gx": (BENCH_DIR / ".work" / "venv-gx", BENCH_DIR / "requirements-validate-gx.txt"),
    "soda": (BENCH_DIR / ".work" / "venv-soda", BENCH_DIR / "requirements-validate-soda.txt"),
    "duckdb-delta": (
        BENCH_DIR / ".work" / "venv-duckdb-delta",
        BENCH_DIR / "requirements-validate-duckdb-delta.txt",
    ),
}


# ============================================================================= the rules

SEED = 20250131
CUSTOMERS = 100_000
REFERENCE_TIME = "2025-01-31T00:00:00+00:00"
REFERENCE_US = 1_738_281_600_000_000  # 2025-01-31T00:00Z in microseconds since the epoch
DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
FRESH_MAX_AGE_H = 48
STATUSES = ("new", "paid", "shipped", "cancelled", "refunded")
EMAIL_REGEX = r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$"
PREDICATE = "quantity > 0 OR status = 'cancelled'"
CUSTOM_QUERY = "SELECT * FROM {table} WHERE status = 'paid' AND amount > 9900"

ROW_RULES = (
    "customer_present",
    "amount_range",
    "status_known",
    "email_format",
    "country_len",
    "quantity_positive",
)
AGG_RULES = ("rows", "mean_amount", "score_spread", "quantity_sum", "median_amount")
RULE_NAMES = (*ROW_RULES, *AGG_RULES, "id_unique", "customer_exists", "fresh", "no_big_paid")


def bounds(rows: int) -> dict[str, tuple[float, float]]:
    """Aggregate bounds; the two size-dependent ones scale with ``rows`` (as at 10M)."""
    return {
        "rows": (rows * 9 // 10, rows * 11 // 10),  # 9,000,000 .. 11,000,000 at 10M
        "mean_amount": (4000, 6000),
        "score_spread": (0.5, 2),
        "quantity_sum": (4 * rows, 6 * rows),  # mean quantity is ~4.95
        "median_amount": (4000, 6000),
    }


def rules(rows: int = 10_000_000) -> list[dict[str, Any]]:
    """The 15 checks in onceflow's rule format (what ``onceflow validate`` will read)."""
    b = bounds(rows)

    def stat(name: str, statistic: str, column: str, **extra: Any) -> dict[str, Any]:
        lo, hi = b[name]
        rule = {"name": name, "type": "statistic", "statistic": statistic, "column": column}
        return {**rule, **extra, "min": lo, "max": hi}

    return [
        {"name": "customer_present", "type": "completeness", "column": "customer_id"},
        {"name": "amount_range", "type": "range", "column": "amount", "min": 0, "max": 10000},
        {
            "name": "status_known",
            "type": "allowed_values",
            "column": "status",
            "values": list(STATUSES),
        },
        {"name": "email_format", "type": "regex", "column": "email", "pattern": EMAIL_REGEX},
        {"name": "country_len", "type": "length", "column": "country", "min": 2, "max": 2},
        {"name": "quantity_positive", "type": "sql_predicate", "expression": PREDICATE},
        {"name": "rows", "type": "row_count", "min": b["rows"][0], "max": b["rows"][1]},
        stat("mean_amount", "mean", "amount"),
        stat("score_spread", "stddev", "score"),
        stat("quantity_sum", "sum", "quantity"),
        stat("median_amount", "quantile", "amount", quantile=0.5),
        {"name": "id_unique", "type": "uniqueness", "columns": ["id"]},
        {
            "name": "customer_exists",
            "type": "referential",
            "column": "customer_id",
            "reference": {"table": "customers", "column": "customer_id"},
        },
        {
            "name": "fresh",
            "type": "freshness",
            "column": "created_at",
            "max_age": f"{FRESH_MAX_AGE_H}h",
            "reference_time": "2025-01-31T00:00:00Z",
        },
        {"name": "no_big_paid", "type": "sql_query", "query": CUSTOM_QUERY, "max_failing": 0},
    ]


RULES = rules()  # at 10M rows: the list the issue states


def many_rules(rows: int, n: int) -> list[dict[str, Any]]:
    """``n`` rules for the warm-rerun scenario: the 15 repeated under new names."""
    base = rules(rows)
    return [base[i % len(base)] | {"name": f"{base[i % len(base)]['name']}_{i}"} for i in range(n)]


def res(
    *,
    failing: int | None = None,
    observed: float | None = None,
    passed: bool | None = None,
    frac_all: float | None = None,
    frac_nonnull: float | None = None,
    distinct: int | None = None,
) -> dict[str, Any]:
    """One normalized answer; fields a tool does not report are left out."""
    out = {
        "failing": failing,
        "observed": observed,
        "passed": passed,
        "frac_all": frac_all,
        "frac_nonnull": frac_nonnull,
        "distinct": distinct,
    }
    return {k: v for k, v in out.items() if v is not None}


def agg(name: str, value: Any, rows: int) -> dict[str, Any]:
    lo, hi = bounds(rows)[name]
    v = float(value)
    return res(observed=v, passed=lo <= v <= hi)


def fresh_from_us(max_us: int) -> dict[str, Any]:
    age_h = (REFERENCE_US - int(max_us)) / HOUR_US
    return res(observed=age_h, passed=age_h <= FRESH_MAX_AGE_H)


def epoch_us(value: Any) -> int:
    """A timestamp (datetime, pandas Timestamp or ISO string) in microseconds (UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace(" ", "T"))
    if hasattr(value, "to_pydatetime"):  # pandas.Timestamp (microsecond data here)
        value = value.to_pydatetime()
    return _dt_us(value)


def _dt_us(value: datetime) -> int:
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# ============================================================================ the data
# Generation runs in the project venv (pyarrow + deltalake); the result is cached.

GEN_VERSION = 1  # bump when the generator changes: cached tables are rebuilt
DUPLICATE_IDS = 20
FILE_BYTES = 160 * 1024 * 1024  # delta-rs target file size: "a few large files"


def generate_events(rows: int, seed: int = SEED, *, first_id: int = 1, days: int = 30) -> Any:
    """``rows`` events, vectorised (pyarrow.compute only), deterministic for a seed.

    Planted problems (the rates are per row, so the counts scale with ``rows``):
    customer_id NULL 0.1 %, orphan 0.05 % of the rest; amount NULL 0.01 %, negative
    0.001 %, above 10000 0.001 %; status 'bogus' 0.01 %; email NULL 0.2 %, malformed
    0.5 % (no '@', no TLD, two '@', a space, an upper-case TLD) and 0.01 % that end in a
    newline (valid for Python's ``re`` ``$``, invalid for RE2); country 3 letters 0.1 %;
    quantity 0 for half of the cancelled rows and 0.02 % of the others; note NULL 5 %;
    ``DUPLICATE_IDS`` ids copied onto other rows (only when ``first_id == 1``).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    stream = iter(range(1000))

    def uniform() -> Any:
        return pc.random(rows, initializer=seed * 1000 + next(stream))

    def below(p: float) -> Any:
        return pc.less(uniform(), p)

    def ints(u: Any, k: int) -> Any:  # 0..k-1
        return pc.cast(pc.floor(pc.multiply(u, k)), pa.int64())

    def pick(values: list[str] | tuple[str, ...], u: Any) -> Any:
        return pc.take(pa.array(values, pa.string()), ints(u, len(values)))

    null_i64 = pa.scalar(None, pa.int64())
    null_str = pa.scalar(None, pa.string())
    ones = pa.repeat(pa.scalar(1, pa.int64()), rows)
    ids = pc.add(pc.cumulative_sum(ones), first_id - 1)
    if first_id == 1 and rows > 100 * DUPLICATE_IDS:
        # row p takes the id of row p - 1000: 2 * DUPLICATE_IDS rows share DUPLICATE_IDS ids
        pos = [(k + 1) * rows // (DUPLICATE_IDS + 1) for k in range(DUPLICATE_IDS)]
        flags = pc.is_in(pc.subtract(ids, 1), value_set=pa.array(pos, pa.int64()))
        ids = pc.if_else(flags, pc.subtract(ids, 1000), ids)

    customer = pc.add(ints(uniform(), CUSTOMERS), 1)
    orphan = pc.add(ints(uniform(), 1000), CUSTOMERS + 1)
    customer = pc.if_else(below(0.0005), orphan, customer)
    customer = pc.if_else(below(0.001), null_i64, customer)

    cents = ints(uniform(), 1_000_001)  # 0.00 .. 10000.00
    cents = pc.if_else(below(0.00001), pc.negate(pc.add(ints(uniform(), 10_000), 1)), cents)
    cents = pc.if_else(below(0.00001), pc.add(ints(uniform(), 100_000), 1_000_001), cents)
    cents = pc.if_else(below(0.0001), null_i64, cents)
    dec = pc.cast(cents, pa.decimal128(19, 0))
    amount = pa.Array.from_buffers(
        pa.decimal128(12, 2), len(dec), dec.buffers(), dec.null_count, dec.offset
    )

    status = pick(STATUSES, uniform())
    status = pc.if_else(below(0.0001), pa.scalar("bogus"), status)

    user = pc.cast(ints(uniform(), 10_000_000), pa.string())
    domain = pick(["example.com", "mail.org", "post.de", "test.io", "web.co.uk"], uniform())
    good = pc.binary_join_element_wise("user", user, "@", domain, "")
    bad = pick(
        ["{u}example.com", "{u}@example", "{u}@@example.com", "us er{u}@example.com", "{u}@X.COM"],
        uniform(),
    )
    bad = pc.replace_substring(bad, "{u}", "")
    bad = pc.binary_join_element_wise(bad, user, "")
    email = pc.if_else(below(0.005), bad, good)
    email = pc.if_else(below(0.0001), pc.binary_join_element_wise(good, "\n", ""), email)
    email = pc.if_else(below(0.002), null_str, email)

    country = pick(["US", "DE", "FR", "GB", "NL", "CH", "JP", "BR", "IN", "ES"], uniform())
    country = pc.if_else(below(0.001), pick(["USA", "DEU", "FRA"], uniform()), country)

    created = pc.subtract(REFERENCE_US, ints(uniform(), days * DAY_US))
    created = pc.subtract(created, 1)  # strictly before the reference instant
    created_at = pc.cast(created, pa.timestamp("us", tz="UTC"))

    quantity = pc.add(ints(uniform(), 10), 1)
    cancelled = pc.equal(status, "cancelled")
    zero = pc.or_(pc.and_(cancelled, below(0.5)), below(0.0002))
    quantity = pc.cast(pc.if_else(zero, 0, quantity), pa.int32())

    # Box-Muller: standard normal
    u1 = pc.subtract(1.0, uniform())  # (0, 1]
    u2 = uniform()
    radius = pc.sqrt(pc.multiply(pc.ln(u1), -2.0))
    score = pc.add(pc.multiply(radius, pc.cos(pc.multiply(u2, 6.283185307179586))), 50.0)

    note = pick(["gift", "express delivery", "call before", "leave at door", "—"], uniform())
    note = pc.if_else(below(0.05), null_str, note)

    return pa.table(
        {
            "id": ids,
            "customer_id": customer,
            "amount": amount,
            "status": status,
            "email": email,
            "country": country,
            "created_at": created_at,
            "quantity": quantity,
            "score": score,
            "note": note,
        }
    )


def generate_customers(n: int = CUSTOMERS) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), n))
    name = pc.binary_join_element_wise("customer ", pc.cast(ids, pa.string()), "")
    return pa.table({"customer_id": ids, "name": name})


def _write_delta(path: Path, table: Any, mode: str = "error") -> None:
    from deltalake import WriterProperties, write_deltalake

    write_deltalake(
        str(path),
        table,
        mode=mode,  # type: ignore[arg-type]
        target_file_size=FILE_BYTES,
        writer_properties=WriterProperties(compression="SNAPPY"),
    )


def ensure_tables(rows: int) -> tuple[Path, Path]:
    """The cached ``events`` (``rows`` rows) and ``customers`` Delta tables."""
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    events = WORK_DIR / f"events_{rows}"
    customers = WORK_DIR / f"customers_{CUSTOMERS}"
    for path, n, make in (
        (customers, CUSTOMERS, lambda: generate_customers()),
        (events, rows, lambda: generate_events(rows)),
    ):
        meta = {"rows": n, "seed": SEED, "gen_version": GEN_VERSION}
        meta_path = path.with_name(path.name + ".meta.json")
        if meta_path.exists() and json.loads(meta_path.read_text()) == meta:
            continue
        shutil.rmtree(path, ignore_errors=True)
        t0 = time.perf_counter()
        table = make()
        _write_delta(path, table)
        del table
        meta_path.write_text(json.dumps(meta))
        print(f"generated {path.name} in {time.perf_counter() - t0:.1f}s", flush=True)
    return events, customers


def ensure_grown(events: Path, rows: int, fraction: float) -> tuple[Path, int]:
    """A copy of ``events`` with ``fraction * rows`` rows appended (a second commit)."""
    added = max(1, round(rows * fraction))
    grown = WORK_DIR / f"events_{rows}_plus_{added}"
    meta = {"rows": rows, "added": added, "seed": SEED + 1, "gen_version": GEN_VERSION}
    meta_path = grown.with_name(grown.name + ".meta.json")
    if meta_path.exists() and json.loads(meta_path.read_text()) == meta:
        return grown, added
    shutil.rmtree(grown, ignore_errors=True)
    shutil.copytree(events, grown)
    append_rows(grown, rows, added)
    meta_path.write_text(json.dumps(meta))
    return grown, added


def append_rows(table: Path, rows: int, added: int) -> None:
    """Append the incremental batch (ids rows+1.., created in the last day)."""
    _write_delta(table, generate_events(added, SEED + 1, first_id=rows + 1, days=1), "append")


def table_layout(path: Path) -> dict[str, Any]:
    from deltalake import DeltaTable

    files = [Path(u.removeprefix("file://")) for u in DeltaTable(str(path)).file_uris()]
    return {
        "files": len(files),
        "mib": round(sum(f.stat().st_size for f in files) / 2**20),
        "version": DeltaTable(str(path)).version(),
    }


# ============================================================================ the workers
# A worker runs inside a measured child process, possibly under another venv's python:
#   <python> bench/validate.py --worker METHOD --spec SPEC.json
# It imports only what its method needs and writes {"results", "timings", "info"} to
# spec["out"]. Timings: "import" from the start of this module to the tool imported,
# "load" the data into the tool's hands, "setup" suite/scan construction, "inner" the
# checks themselves.


class Phases:
    def __init__(self) -> None:
        self._t = T_START
        self.d: dict[str, float] = {}

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.d[name] = self.d.get(name, 0.0) + now - self._t
        self._t = now


def snapshot_dataset(path: str) -> Any:
    """The table's snapshot as a pyarrow dataset, read the way onceflow reads local tables
    (``onceflow.warehouse.tables.snapshot_dataset``: Arrow's local filesystem)."""
    import pyarrow.fs as pafs
    from deltalake import DeltaTable

    local = pafs.SubTreeFileSystem(str(Path(path).resolve()), pafs.LocalFileSystem())
    return DeltaTable(path).to_pyarrow_dataset(filesystem=local)


def snapshot_files(path: str) -> list[str]:
    """The data files of the table's current snapshot (from its log, not the folder)."""
    from deltalake import DeltaTable

    return [u.removeprefix("file://") for u in DeltaTable(path).file_uris()]


def sql_list(values: list[str] | tuple[str, ...]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def fused_sql(table: str = "events") -> str:
    """Checks 1-11 and 14 in one scan. FILTER(WHERE p) skips rows where p is NULL, which
    is exactly "NULLs are ignored" for the row-level rules. The median in DOUBLE: DuckDB's
    quantile_cont of a DECIMAL keeps its scale, cutting the interpolation (onceflow and
    PostgreSQL interpolate in DOUBLE)."""
    return f"""
SELECT
    count(*),
    count(*) FILTER (WHERE customer_id IS NULL),
    count(*) FILTER (WHERE amount < 0 OR amount > 10000), count(amount),
    count(*) FILTER (WHERE status NOT IN ({sql_list(STATUSES)})), count(status),
    count(*) FILTER (WHERE NOT regexp_matches(email, '{EMAIL_REGEX}')), count(email),
    count(*) FILTER (WHERE length(country) < 2 OR length(country) > 2), count(country),
    count(*) FILTER (WHERE NOT ({PREDICATE})), count({PREDICATE}),
    avg(amount),
    stddev_samp(score),
    sum(quantity),
    quantile_cont(amount::DOUBLE, 0.5),
    epoch_us(max(created_at))
FROM {table}"""


UNIQUE_SQL = """
SELECT count(*), coalesce(sum(n), 0)
FROM (SELECT id, count(*) AS n FROM {table} WHERE id IS NOT NULL GROUP BY id HAVING count(*) > 1)
"""
# ANTI JOIN, not NOT EXISTS: duckdb 2.0.1 plans the NOT EXISTS form ~10x slower here
REFERENTIAL_SQL = """
SELECT count(*) FROM {table} e ANTI JOIN customers c ON e.customer_id = c.customer_id
WHERE e.customer_id IS NOT NULL
"""
CUSTOM_COUNT_SQL = "SELECT count(*) FROM (" + CUSTOM_QUERY + ")"


def handwritten_checks(con: Any, rows_bounds: int, table: str = "events") -> dict[str, Any]:
    """The reference: four queries on a DuckDB connection where ``events`` and
    ``customers`` exist; answers normalized per rule."""
    f = con.execute(fused_sql(table)).fetchone()
    dup_values, dup_rows = con.execute(UNIQUE_SQL.format(table=table)).fetchone()
    orphans = con.execute(REFERENTIAL_SQL.format(table=table)).fetchone()[0]
    custom = con.execute(CUSTOM_COUNT_SQL.format(table=table)).fetchone()[0]
    n = int(f[0])
    out: dict[str, Any] = {
        "customer_present": res(failing=int(f[1]), frac_all=f[1] / n, passed=f[1] == 0)
    }
    for i, name in enumerate(ROW_RULES[1:]):
        bad, nonnull = int(f[2 + 2 * i]), int(f[3 + 2 * i])
        out[name] = res(
            failing=bad,
            frac_all=bad / n,
            frac_nonnull=bad / nonnull if nonnull else 0.0,
            passed=bad == 0,
        )
    for name, value in zip(AGG_RULES, (n, f[12], f[13], f[14], f[15]), strict=True):
        out[name] = agg(name, value, rows_bounds)
    out["id_unique"] = res(failing=int(dup_rows), distinct=int(dup_values), passed=dup_rows == 0)
    out["customer_exists"] = res(failing=int(orphans), passed=orphans == 0)
    out["fresh"] = fresh_from_us(f[16])
    out["no_big_paid"] = res(failing=int(custom), passed=custom == 0)
    return out


def work_duckdb(spec: dict[str, Any], read: str) -> dict[str, Any]:
    ph = Phases()
    import duckdb

    ph.mark("import")
    con = duckdb.connect()
    if read == "dataset":
        con.register("events", snapshot_dataset(spec["events"]))
        con.register("customers", snapshot_dataset(spec["customers"]))
    elif read == "files":
        for name in ("events", "customers"):
            files = sql_list(snapshot_files(spec[name]))
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{files}])")
    else:  # delta_scan, from the PyPI package duckdb-extension-delta (no download)
        import duckdb_extension_delta

        root = Path(duckdb_extension_delta.__path__[0])
        ext = next(root.rglob("delta.duckdb_extension"))
        con.execute(f"LOAD '{ext}'")
        for name in ("events", "customers"):
            path = str(Path(spec[name]).resolve())
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM delta_scan('{path}')")
    ph.mark("load")
    results = handwritten_checks(con, spec["rows_bounds"])
    ph.mark("inner")
    return {"results": results, "timings": ph.d, "info": {"duckdb": duckdb.__version__}}


# --------------------------------------------------------------------------- GX


def gx_suite(spec: dict[str, Any], engine: str, customer_ids: list[int] | None) -> Any:
    """The 15 checks as GX Core 1.x built-in expectations (closest match for each)."""
    from datetime import timedelta

    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    b = bounds(spec["rows_bounds"])
    ref = datetime.fromisoformat(REFERENCE_TIME)
    sql = engine == "sql"

    def meta(name: str) -> dict[str, Any]:
        return {"meta": {"rule": name}}

    def rows_query(where: str) -> str:
        # GX fills {batch} with str.format: other braces (the regex's {2,}) are doubled
        return "SELECT * FROM {batch} WHERE " + where.replace("{", "{{").replace("}", "}}")

    ex: list[Any] = [
        gxe.ExpectColumnValuesToNotBeNull(column="customer_id", **meta("customer_present")),
        gxe.ExpectColumnValuesToBeBetween(
            column="amount", min_value=0, max_value=10000, **meta("amount_range")
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="status", value_set=list(STATUSES), **meta("status_known")
        ),
        # GX has no regex for DuckDB's SQLAlchemy dialect: custom SQL there
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=rows_query(f"NOT regexp_matches(email, '{EMAIL_REGEX}')"),
            **meta("email_format"),
        )
        if sql
        else gxe.ExpectColumnValuesToMatchRegex(
            column="email", regex=EMAIL_REGEX, **meta("email_format")
        ),
        gxe.ExpectColumnValueLengthsToBeBetween(
            column="country", min_value=2, max_value=2, **meta("country_len")
        ),
        # quantity > 0 OR status = 'cancelled'  ==  quantity > 0 where status != 'cancelled'
        gxe.ExpectColumnValuesToBeBetween(
            column="quantity",
            min_value=0,
            strict_min=True,
            row_condition=Column("status") != "cancelled",
            **meta("quantity_positive"),
        ),
        gxe.ExpectTableRowCountToBeBetween(
            min_value=b["rows"][0], max_value=b["rows"][1], **meta("rows")
        ),
        gxe.ExpectColumnMeanToBeBetween(
            column="amount", min_value=4000, max_value=6000, **meta("mean_amount")
        ),
        gxe.ExpectColumnStdevToBeBetween(
            column="score", min_value=0.5, max_value=2, **meta("score_spread")
        ),
        gxe.ExpectColumnSumToBeBetween(
            column="quantity",
            min_value=b["quantity_sum"][0],
            max_value=b["quantity_sum"][1],
            **meta("quantity_sum"),
        ),
        gxe.ExpectColumnMedianToBeBetween(
            column="amount", min_value=4000, max_value=6000, **meta("median_amount")
        ),
        gxe.ExpectColumnValuesToBeUnique(column="id", **meta("id_unique")),
        gxe.UnexpectedRowsExpectation(
            # {batch} takes no alias in every GX query built from it: NOT IN, not EXISTS
            # (customers.customer_id has no NULLs, so NOT IN is the anti-join here)
            unexpected_rows_query=rows_query(
                "customer_id IS NOT NULL AND customer_id NOT IN (SELECT customer_id FROM customers)"
            ),
            **meta("customer_exists"),
        )
        if sql
        else gxe.ExpectColumnValuesToBeInSet(
            column="customer_id", value_set=customer_ids, **meta("customer_exists")
        ),
        gxe.ExpectColumnMaxToBeBetween(
            column="created_at",
            min_value=ref - timedelta(hours=FRESH_MAX_AGE_H),
            **meta("fresh"),
        ),
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=CUSTOM_QUERY.replace("{table}", "{batch}"),
            **meta("no_big_paid"),
        )
        if sql
        else gxe.ExpectColumnValuesToBeBetween(
            column="amount",
            max_value=9900,
            row_condition=Column("status") == "paid",
            **meta("no_big_paid"),
        ),
    ]
    return gx.ExpectationSuite(name="events_checks", expectations=ex)


def gx_results(validation: Any, rows_bounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    errors = []
    for r in validation.results:
        name = r.expectation_config.meta["rule"]
        info = r.exception_info or {}
        raised = [v for v in info.values() if isinstance(v, dict) and v.get("raised_exception")]
        if info.get("raised_exception") or raised:
            errors.append(f"{name}: {info}")
            continue
        result = r.result
        if name in AGG_RULES:
            out[name] = agg(name, result["observed_value"], rows_bounds)
            out[name]["passed"] = bool(r.success)
        elif name == "fresh":
            out[name] = fresh_from_us(epoch_us(result["observed_value"]))
            out[name]["passed"] = bool(r.success)
        elif "unexpected_count" in result:  # a column map expectation
            failing = int(result["unexpected_count"])
            total = result.get("unexpected_percent_total", result.get("unexpected_percent"))
            nonmissing = result.get("unexpected_percent_nonmissing")
            keep_frac = name in ROW_RULES
            out[name] = res(
                failing=failing,
                frac_all=float(total) / 100 if keep_frac and total is not None else None,
                frac_nonnull=float(nonmissing) / 100
                if keep_frac and nonmissing is not None
                else None,
                passed=bool(r.success),
            )
        else:  # UnexpectedRowsExpectation: observed_value is the number of rows returned
            out[name] = res(failing=int(result["observed_value"]), passed=bool(r.success))
    if errors:
        raise RuntimeError("GX expectations raised: " + " | ".join(errors)[:4000])
    return out


def work_gx(spec: dict[str, Any], engine: str) -> dict[str, Any]:
    ph = Phases()
    import great_expectations as gx
    import pandas as pd

    ph.mark("import")
    customer_ids = None
    if engine == "pandas":
        import pyarrow as pa

        table = snapshot_dataset(spec["events"]).to_table()
        # pandas has no decimal dtype: object Decimals would make every numeric check
        # several times slower, so an expert casts to float64 (exact for these values)
        i = table.schema.get_field_index("amount")
        table = table.set_column(i, "amount", table.column("amount").cast(pa.float64()))
        df = table.to_pandas()
        del table
        ids = snapshot_dataset(spec["customers"]).to_table(columns=["customer_id"])
        customer_ids = ids.column(0).to_pylist()
        ph.mark("load")
        context = gx.get_context(mode="ephemeral")
        asset = context.data_sources.add_pandas("bench").add_dataframe_asset(name="events")
        batch = asset.add_batch_definition_whole_dataframe("all").get_batch(
            batch_parameters={"dataframe": df}
        )
    else:
        import duckdb
        import great_expectations.execution_engine.sqlalchemy_execution_engine as gx_sa

        # DuckDB views over the snapshot's files (GX opens the database itself)
        db = Path("gx.duckdb").resolve()
        db.unlink(missing_ok=True)
        with contextlib.closing(duckdb.connect(str(db))) as con:
            for name in ("events", "customers"):
                files = sql_list(snapshot_files(spec[name]))
                con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{files}])")
        ph.mark("load")
        _gx_keep_duckdb_connection(gx_sa)
        context = gx.get_context(mode="ephemeral")
        source = context.data_sources.add_sql("bench", connection_string=f"duckdb:///{db}")
        asset = source.add_table_asset(name="events", table_name="events")
        batch = asset.add_batch_definition_whole_table("all").get_batch()
    suite = gx_suite(spec, engine, customer_ids)
    ph.mark("setup")
    validation = batch.validate(suite, result_format="BASIC")
    ph.mark("inner")
    results = gx_results(validation, spec["rows_bounds"])
    info = {"great_expectations": gx.__version__, "pandas": pd.__version__}
    if engine == "sql":
        info["duckdb"] = duckdb.__version__
    return {"results": results, "timings": ph.d, "info": info}


def _gx_keep_duckdb_connection(gx_sa: Any) -> None:
    """GX returns a connection to the pool before fetching the query result; DuckDB's
    pending result dies with it (every metric comes back empty). GX keeps one persisted
    connection for sqlite, SQL Server, BigQuery and Databricks: add DuckDB to that list."""
    import enum

    class _Dialect(enum.StrEnum):
        DUCKDB = "duckdb"

    current = tuple(gx_sa._PERSISTED_CONNECTION_DIALECTS)
    if not any(getattr(d, "value", d) == "duckdb" for d in current):
        gx_sa._PERSISTED_CONNECTION_DIALECTS = (*current, _Dialect.DUCKDB)


# --------------------------------------------------------------------------- Soda


def soda_checks(rows_bounds: int) -> str:
    b = bounds(rows_bounds)
    custom = CUSTOM_QUERY.format(table="events")
    return f"""
checks for events:
  - missing_count(customer_id) = 0:
      name: customer_present
      samples limit: 0
  - invalid_count(amount) = 0:
      name: amount_range
      valid min: 0
      valid max: 10000
      samples limit: 0
  - invalid_count(status) = 0:
      name: status_known
      valid values: [{sql_list(STATUSES)}]
      samples limit: 0
  - invalid_count(email) = 0:
      name: email_format
      valid regex: '{EMAIL_REGEX}'
      samples limit: 0
  - invalid_count(country) = 0:
      name: country_len
      valid min length: 2
      valid max length: 2
      samples limit: 0
  - quantity_positive = 0:
      name: quantity_positive
      quantity_positive expression: COUNT(CASE WHEN NOT ({PREDICATE}) THEN 1 END)
  - row_count between {b["rows"][0]} and {b["rows"][1]}:
      name: rows
  - avg(amount) between 4000 and 6000:
      name: mean_amount
  - stddev(score) between 0.5 and 2:
      name: score_spread
  - sum(quantity) between {b["quantity_sum"][0]} and {b["quantity_sum"][1]}:
      name: quantity_sum
  - percentile(amount, 0.5) between 4000 and 6000:
      name: median_amount
  - duplicate_count(id) = 0:
      name: id_unique
      samples limit: 0
  - values in (customer_id) must exist in customers (customer_id):
      name: customer_exists
      samples limit: 0
  - freshness(created_at) < {FRESH_MAX_AGE_H}h:
      name: fresh
  - failed rows:
      name: no_big_paid
      fail query: |
        {custom}
      samples limit: 0
"""


def work_soda(spec: dict[str, Any]) -> dict[str, Any]:
    ph = Phases()
    import duckdb
    from soda.scan import Scan

    ph.mark("import")
    con = duckdb.connect()
    # the fastest read an expert gives Soda: DuckDB's own Parquet reader over the
    # snapshot's file list (onceflow's and the reference's path), not an Arrow dataset
    for name in ("events", "customers"):
        files = sql_list(snapshot_files(spec[name]))
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{files}])")
    ph.mark("load")
    scan = Scan()
    scan.set_data_source_name("duckdb")
    scan.add_duckdb_connection(con)
    scan.add_variables({"NOW": REFERENCE_TIME})
    scan.add_sodacl_yaml_str(soda_checks(spec["rows_bounds"]))
    ph.mark("setup")
    scan.execute()
    ph.mark("inner")
    if scan.has_error_logs():
        raise RuntimeError(scan.get_error_logs_text()[-4000:])
    out: dict[str, Any] = {}
    for check in scan.get_scan_results()["checks"]:
        name = check["name"]
        diag = check.get("diagnostics", {})
        passed = check["outcome"] == "pass"
        if name in AGG_RULES:
            out[name] = agg(name, diag["value"], spec["rows_bounds"]) | {"passed": passed}
        elif name == "fresh":
            out[name] = fresh_from_us(epoch_us(diag["maxColumnTimestampUtc"]))
            out[name]["passed"] = passed
        elif name == "id_unique":  # duplicate_count: distinct values that repeat
            out[name] = res(distinct=int(diag["value"]), passed=passed)
        else:
            out[name] = res(failing=int(diag["value"]), passed=passed)
    from importlib.metadata import version

    info = {"soda-core": version("soda-core"), "duckdb": duckdb.__version__}
    return {"results": out, "timings": ph.d, "info": info}


# --------------------------------------------------------------------------- onceflow

ONCEFLOW_MISSING = "onceflow validate is not available yet"


def onceflow_available() -> None:
    try:
        import onceflow.validate  # noqa: F401
    except ImportError as exc:
        raise SystemExit(ONCEFLOW_MISSING) from exc


def run_onceflow(events: str, customers: str, state: str, rule_list: list[dict[str, Any]]) -> Any:
    """The onceflow API, as one thin call."""
    onceflow_available()
    from onceflow import Validator

    validator = Validator(
        rules_by_table={"events": rule_list},
        state=f"sqlite:///{state}",
        references={"customers": customers},
        # no failing-row samples: the hand-written queries, GX (result_format BASIC) and
        # Soda (samples limit 0) fetch none either; samples cost one LIMIT query per
        # failing rule (measured separately in the incremental section's notes)
        samples=0,
    )
    return validator.validate_table(events, "events")


def onceflow_results(report: Any, rows_bounds: int) -> dict[str, Any]:
    """Map onceflow's results (.rule, .outcome, .observed, .failing_rows, the failing
    percents of all and of non-NULL rows, .distinct_failing) to ``res``."""
    out: dict[str, Any] = {}
    for r in report.results:
        name = getattr(r.rule, "name", r.rule)
        outcome = str(getattr(r.outcome, "value", r.outcome)).lower()
        passed = outcome in {"pass", "passed", "ok", "success"}
        observed = getattr(r, "observed", None)
        failing = getattr(r, "failing_rows", None)
        base = str(name).rsplit("_", 1)[0] if str(name) not in RULE_NAMES else str(name)
        if base in AGG_RULES and observed is not None:
            out[name] = agg(base, observed, rows_bounds) | {"passed": passed}
        elif base == "fresh" and observed is not None:
            if hasattr(observed, "total_seconds"):  # an age (timedelta)
                out[name] = res(observed=observed.total_seconds() / 3600)
            elif isinstance(observed, int | float):  # an age in hours (adapt if not)
                out[name] = res(observed=float(observed))
            else:  # the newest timestamp
                out[name] = fresh_from_us(epoch_us(observed))
            out[name]["passed"] = passed
        else:
            extra: dict[str, Any] = {}
            if r.failing_percent is not None:
                extra["frac_all"] = r.failing_percent / 100
            if r.failing_percent_non_null is not None:
                extra["frac_nonnull"] = r.failing_percent_non_null / 100
            if r.distinct_failing is not None:
                extra["distinct"] = r.distinct_failing
            out[name] = res(failing=None if failing is None else int(failing), passed=passed)
            out[name] |= extra
    return out


def work_onceflow(spec: dict[str, Any]) -> dict[str, Any]:
    ph = Phases()
    onceflow_available()
    # the tool's imports in the import phase, as the hand-written worker imports duckdb:
    # the face imports on first use, the compiler brings sqlglot, the engine pyarrow
    import duckdb  # noqa: F401

    import onceflow
    import onceflow.validate.compile
    import onceflow.validate.engines.duckdb
    from onceflow import Validator  # noqa: F401

    ph.mark("import")
    report = run_onceflow(spec["events"], spec["customers"], spec["state"], spec["rules"])
    ph.mark("inner")
    info = {"onceflow": getattr(onceflow, "__version__", "?")}
    for attr in ("data_queries", "queries", "scans"):  # for the warm-rerun goal
        if getattr(report, attr, None) is not None:
            value = getattr(report, attr)
            info[attr] = value if isinstance(value, int) else len(value)
    return {
        "results": onceflow_results(report, spec["rows_bounds"]),
        "timings": ph.d,
        "info": info,
    }


WORKERS: dict[str, Any] = {
    "duckdb": lambda s: work_duckdb(s, "dataset"),
    "duckdb_files": lambda s: work_duckdb(s, "files"),
    "duckdb_delta_scan": lambda s: work_duckdb(s, "delta_scan"),
    "duckdb155": lambda s: work_duckdb(s, "dataset"),
    "duckdb100": lambda s: work_duckdb(s, "dataset"),
    "gx_pandas": lambda s: work_gx(s, "pandas"),
    "gx_sql": lambda s: work_gx(s, "sql"),
    "soda": work_soda,
    "onceflow": work_onceflow,
}


def worker_main(method: str, spec_path: str) -> int:
    if method == "onceflow_probe":
        onceflow_available()
        return 0
    spec = json.loads(Path(spec_path).read_text())
    out = WORKERS[method](spec)
    Path(spec["out"]).write_text(json.dumps(out, default=str))
    return 0


# ============================================================================ the harness


@dataclass(frozen=True)
class Method:
    name: str
    label: str
    venv: str | None = None  # None: the project venv (this interpreter)
    peer: bool = False  # GX/Soda: --peer-repeats runs
    handwritten: bool = False


METHODS: tuple[Method, ...] = (
    Method("duckdb", "a. hand-written DuckDB, Arrow dataset of the snapshot", handwritten=True),
    Method(
        "duckdb_files",
        "a1. hand-written, read_parquet(snapshot's file list)",
        handwritten=True,
    ),
    Method(
        "duckdb_delta_scan",
        "a2. hand-written, delta_scan (duckdb-extension-delta)",
        "duckdb-delta",
        handwritten=True,
    ),
    Method(
        "duckdb155",
        "a3. hand-written, Arrow dataset, on a2's duckdb",
        "duckdb-delta",
        handwritten=True,
    ),
    Method(
        "duckdb100",
        "a4. hand-written, Arrow dataset, on Soda's duckdb",
        "soda",
        handwritten=True,
    ),
    Method("gx_pandas", "b. GX Core, pandas DataFrame", "gx", peer=True),
    Method("gx_sql", "b2. GX Core, SQL engine on DuckDB (shim)", "gx", peer=True),
    Method(
        "soda", "c. Soda Core (SodaCL) on DuckDB, read_parquet(snapshot files)", "soda", peer=True
    ),
    Method("onceflow", "d. onceflow Validator.validate_table"),
)
METHOD_BY_NAME = {m.name: m for m in METHODS}
REFERENCE_CANDIDATES = ("duckdb", "duckdb_files", "duckdb_delta_scan")
FIELDS = ("failing", "distinct", "observed", "frac_all", "frac_nonnull", "passed")


def _common() -> Any:
    sys.path.insert(0, str(BENCH_DIR))
    import common

    return common


def python_for(m: Method) -> Path | None:
    if m.venv is None:
        return Path(sys.executable)
    py = VENVS[m.venv][0] / "bin" / "python"
    return py if py.exists() else None


def setup_venvs(names: list[str]) -> None:
    """Create (or update) the peer venvs from their pinned requirements; idempotent."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    for name in names:
        venv, req = VENVS[name]
        digest = hashlib.sha256(req.read_bytes()).hexdigest()
        stamp = venv / ".bench-requirements.sha256"
        if stamp.exists() and stamp.read_text().strip() == digest:
            print(f"{venv.name}: up to date ({req.name})")
            continue
        if not (venv / "bin" / "python").exists():
            subprocess.run([base, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        done = subprocess.run([*pip, "-r", str(req)], check=False)
        if done.returncode:
            raise SystemExit(f"pip could not install {req} into {venv} (see its output above)")
        stamp.write_text(digest)
        print(f"{venv.name}: installed from {req.name}")


@dataclass
class Run:
    method: str
    ok: bool
    wall_s: float
    rss_mib: float
    timings: dict[str, float]
    results: dict[str, Any] | None
    info: dict[str, Any]
    error: str | None = None


def child_env(m: Method, run_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["GX_ANALYTICS_ENABLED"] = "false"  # GX Core's usage statistics
    if m.venv == "soda":
        # Soda Core reads ~/.soda/config.yml (and writes one if missing): keep it in the
        # run folder, with its usage telemetry off
        (run_dir / ".soda").mkdir(exist_ok=True)
        (run_dir / ".soda" / "config.yml").write_text("send_anonymous_usage_stats: false\n")
        env["HOME"] = str(run_dir)
    if m.name == "onceflow":
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_DIR / "src"), env.get("PYTHONPATH", "")) if p
        )
    return env


def cpu_busy(sample_s: float = 1.0) -> float:
    """The machine's busy CPU fraction over ``sample_s`` (all cores; /proc/stat)."""

    def read() -> tuple[int, int]:
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:]]
        return sum(vals), vals[3] + vals[4]  # total, idle + iowait

    t1, i1 = read()
    time.sleep(sample_s)
    t2, i2 = read()
    return 1 - (i2 - i1) / max(1, t2 - t1)


QUIET = {"max_busy": 0.25, "max_wait_s": 300.0}  # set from --quiet-cpu / --quiet-wait


def wait_quiet() -> float:
    """Before a measured run: wait (up to max_wait_s) until other work uses at most
    max_busy of the CPUs; returns the last sample (recorded with the run)."""
    deadline = time.monotonic() + QUIET["max_wait_s"]
    while True:
        busy = cpu_busy()
        if busy <= QUIET["max_busy"] or time.monotonic() >= deadline:
            return busy


def run_method(m: Method, spec: dict[str, Any], tag: str, timeout_s: float) -> Run:
    run_dir = WORK_DIR / "runs" / tag
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    spec = {"state": str(run_dir / "state.db")} | spec | {"out": str(run_dir / "out.json")}
    (run_dir / "spec.json").write_text(json.dumps(spec))
    busy = wait_quiet()  # other work on the shared box, just before the run
    py = python_for(m)
    if py is None:
        return Run(
            m.name, False, 0.0, 0.0, {}, None, {}, f"no venv: run {Path(__file__).name} --setup"
        )
    cmd = [str(py), str(Path(__file__).resolve()), "--worker", m.name, "--spec", "spec.json"]
    r = _common().run_child(cmd, cwd=run_dir, timeout_s=timeout_s, env=child_env(m, run_dir))
    out_path = run_dir / "out.json"
    if r.ok and out_path.exists():
        out = json.loads(out_path.read_text())
        out["timings"]["busy_before"] = busy
        return Run(
            m.name, True, r.wall_s, r.peak_rss_mib, out["timings"], out["results"], out["info"]
        )
    return Run(m.name, False, r.wall_s, r.peak_rss_mib, {}, None, {}, r.error_text(1200))


def _print_run(run: Run, tag: str) -> None:
    if run.ok:
        t = run.timings
        print(
            f"  {tag:<28} wall {run.wall_s:7.2f}s  inner {t.get('inner', 0):7.2f}s  "
            f"load {t.get('load', 0):6.2f}s  rss {run.rss_mib:7.0f} MiB",
            flush=True,
        )
    else:
        print(f"  {tag:<28} FAILED: {run.error}", flush=True)


def measure(
    methods: list[Method],
    spec: dict[str, Any],
    repeats: int,
    peer_repeats: int,
    timeout_s: float,
    label: str,
) -> dict[str, list[Run]]:
    """Every method ``repeats`` times (peers ``peer_repeats``), interleaved: round r runs
    the methods in an order rotated by r."""
    runs: dict[str, list[Run]] = {m.name: [] for m in methods}
    rounds = max([peer_repeats if m.peer else repeats for m in methods] or [0])
    for r in range(rounds):
        order = methods[r % len(methods) :] + methods[: r % len(methods)]
        for m in order:
            want = peer_repeats if m.peer else repeats
            if r >= want or any(not x.ok for x in runs[m.name]):
                continue  # done, or failed before (the error is kept)
            run = run_method(m, spec, f"{label}_{m.name}_{r}", timeout_s)
            _print_run(run, f"{m.name} #{r + 1}")
            runs[m.name].append(run)
    return runs


def close(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    try:
        fa, fb = float(a), float(b)
    except (TypeError, ValueError):
        return bool(a == b)
    return abs(fa - fb) <= 1e-9 * max(abs(fa), abs(fb)) + 1e-12


def same_results(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(
        a[k].keys() == b[k].keys() and all(close(a[k][f], b[k][f]) for f in a[k]) for k in a
    )


def summarize(runs: list[Run]) -> dict[str, Any]:
    import statistics

    ok = [r for r in runs if r.ok]
    if not ok:
        return {"error": runs[-1].error if runs else "not run"}

    def med(key: str) -> float:
        return statistics.median(r.timings.get(key, 0.0) for r in ok)

    first = ok[0].results or {}
    return {
        "runs": len(ok),
        "walls": [round(r.wall_s, 3) for r in ok],
        "wall": statistics.median(r.wall_s for r in ok),
        "rss": statistics.median(r.rss_mib for r in ok),
        "rss_max": max(r.rss_mib for r in ok),
        "import": med("import"),
        "load": med("load"),
        "setup": med("setup"),
        "inner": med("inner"),
        "busy_before": med("busy_before"),
        "results": first,
        "consistent": all(same_results(first, r.results or {}) for r in ok[1:]),
        "info": ok[0].info,
    }


def diagnostics(events: Path) -> dict[str, Any]:
    """Untimed facts about the data that explain the known semantic differences."""
    import duckdb

    con = duckdb.connect()
    con.register("events", snapshot_dataset(str(events)))
    row = con.execute(
        f"""SELECT count(*), count(email),
            count(*) FILTER (WHERE suffix(email, chr(10))
                AND regexp_matches(left(email, length(email) - 1), '{EMAIL_REGEX}')),
            count(*) FILTER (WHERE status IS DISTINCT FROM 'cancelled'),
            quantile_disc(amount, 0.5), quantile_cont(amount::DOUBLE, 0.5),
            count(*) FILTER (WHERE amount IS NULL)
        FROM events"""
    ).fetchone()
    assert row is not None
    return {
        "rows": int(row[0]),
        "emails": int(row[1]),
        "newline_emails": int(row[2]),
        "not_cancelled": int(row[3]),
        "median_disc": float(row[4]),
        "median_cont": float(row[5]),
        "amount_nulls": int(row[6]),
    }


NOTE_PYTHON_RE = (
    "GX pandas matches with Python `re` (`Series.astype(str).str.contains`), where `$` also "
    "matches before a final newline: the {n} emails that end in '\\n' pass there and fail "
    "in RE2 (DuckDB, Soda on DuckDB), where `$` is the end of the text"
)
NOTE_DISC = (
    "Soda's `percentile` is PERCENTILE_DISC on DuckDB: an actual value of the column (the "
    "lower middle one), where quantile_cont (and GX's median) average the two middle values"
)
NOTE_ROW_CONDITION = (
    "GX percentages are relative to the rows its row_condition selects "
    "(status != 'cancelled': {n} rows), not to all rows"
)


def explain(
    method: str, rule: str, field: str, got: Any, ref: dict[str, Any], diag: dict[str, Any]
) -> str | None:
    """The semantic difference that accounts for a disagreement, verified against the
    untimed diagnostics; None when it is not accounted for (a bug somewhere)."""
    if rule == "email_format" and method == "gx_pandas":
        fail = ref[rule]["failing"] - diag["newline_emails"]
        expected = {
            "failing": fail,
            "frac_all": fail / diag["rows"],
            "frac_nonnull": fail / diag["emails"],
        }
        if field in expected and close(got, expected[field]):
            return NOTE_PYTHON_RE.format(n=diag["newline_emails"])
    if rule == "median_amount" and field == "observed" and close(got, diag["median_disc"]):
        return NOTE_DISC
    if (
        rule == "quantity_positive"
        and method.startswith("gx")
        and field in ("frac_all", "frac_nonnull")
        and close(got, ref[rule]["failing"] / diag["not_cancelled"])
    ):
        return NOTE_ROW_CONDITION.format(n=f"{diag['not_cancelled']:,}")
    return None


def compare(
    method: str, ref: dict[str, Any], got: dict[str, Any], diag: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Disagreements (each explained or not) and the fields the method does not report."""
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    for rule in RULE_NAMES:
        r, g = ref.get(rule, {}), got.get(rule)
        if g is None:
            rows.append({"rule": rule, "field": "-", "ref": "answer", "got": "missing"})
            continue
        for field in FIELDS:
            if field not in r:
                continue
            if field not in g:
                missing.append(f"{rule}.{field}")
            elif not close(r[field], g[field]):
                rows.append(
                    {
                        "rule": rule,
                        "field": field,
                        "ref": r[field],
                        "got": g[field],
                        "why": explain(method, rule, field, g[field], ref, diag),
                    }
                )
    return rows, missing


# ------------------------------------------------------------------------- scenarios


def base_spec(events: Path, customers: Path, rows: int) -> dict[str, Any]:
    return {
        "events": str(events),
        "customers": str(customers),
        "rows_bounds": rows,
        "rules": rules(rows),
    }


def onceflow_probe(timeout_s: float) -> str | None:
    """None when onceflow validate can run, else why not (one tiny child)."""
    m = METHOD_BY_NAME["onceflow"]
    run_dir = WORK_DIR / "runs" / "onceflow_probe"
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "onceflow_probe"]
    r = _common().run_child(cmd, cwd=run_dir, timeout_s=timeout_s, env=child_env(m, run_dir))
    if r.ok:
        return None
    return ONCEFLOW_MISSING if ONCEFLOW_MISSING in r.stderr else r.error_text()


# the peers also timed on the grown table (GX pandas, at ~30 s a run, adds nothing new)
INCREMENTAL_PEERS = ("soda", "gx_sql")


def bench_incremental(
    args: argparse.Namespace,
    events: Path,
    customers: Path,
    onceflow_note: str | None,
    peers: list[Method] | None = None,
) -> dict[str, Any]:
    """Hand-written full run on the grown table; onceflow incremental when available;
    `peers` (Soda, GX SQL) on the grown table too: neither has an incremental mode that
    gives the same answers (a filter on the new rows would check uniqueness and the
    aggregates on those rows alone), so the day after an append they scan it all again."""
    grown, added = ensure_grown(events, args.rows, args.append_fraction)
    print(f"incremental: {grown.name} (+{added:,} rows, second commit)", flush=True)
    spec = base_spec(grown, customers, args.rows)
    ref = METHOD_BY_NAME["duckdb"]
    runs: dict[str, list[Run]] = {"duckdb_full": [], "onceflow_full": [], "onceflow_incr": []}
    for r in range(args.repeats):
        run = run_method(ref, spec, f"incr_duckdb_{r}", args.timeout)
        _print_run(run, f"duckdb full (grown) #{r + 1}")
        runs["duckdb_full"].append(run)
        if onceflow_note is not None:
            continue
        m = METHOD_BY_NAME["onceflow"]
        run = run_method(m, spec, f"incr_onceflow_full_{r}", args.timeout)
        _print_run(run, f"onceflow full (grown) #{r + 1}")
        runs["onceflow_full"].append(run)
        # incremental: validate a fresh copy of the base table, append, validate again
        work = WORK_DIR / "runs" / f"incr_onceflow_{r}_table"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(events, work)
        state = WORK_DIR / "runs" / f"incr_onceflow_{r}_state.db"
        state.unlink(missing_ok=True)
        inc_spec = base_spec(work, customers, args.rows) | {"state": str(state)}
        prime = run_method(m, inc_spec, f"incr_onceflow_prime_{r}", args.timeout)
        if not prime.ok:
            runs["onceflow_incr"].append(prime)
            continue
        append_rows(work, args.rows, added)
        run = run_method(m, inc_spec, f"incr_onceflow_{r}", args.timeout)
        _print_run(run, f"onceflow incremental #{r + 1}")
        runs["onceflow_incr"].append(run)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    for m in peers or []:
        for r in range(args.peer_repeats):
            run = run_method(m, spec, f"incr_{m.name}_{r}", args.timeout)
            _print_run(run, f"{m.name} full (grown) #{r + 1}")
            runs.setdefault(f"{m.name}_full", []).append(run)
    out: dict[str, Any] = {
        "fraction": args.append_fraction,
        "added": added,
        "layout": table_layout(grown),
        "onceflow": onceflow_note or "measured",
        "methods": {k: summarize(v) for k, v in runs.items() if v},
    }
    full = out["methods"]["duckdb_full"].get("results")
    inc = out["methods"].get("onceflow_incr", {}).get("results")
    if full and inc:
        # every answer the hand-written run gives (onceflow reports more fields)
        out["identical"] = all(
            rule in inc and field in inc[rule] and close(value, inc[rule][field])
            for rule, answer in full.items()
            for field, value in answer.items()
        )
    if not args.keep:
        shutil.rmtree(grown, ignore_errors=True)
        grown.with_name(grown.name + ".meta.json").unlink(missing_ok=True)
    return out


def bench_warm(args: argparse.Namespace, events: Path, customers: Path) -> dict[str, Any]:
    """onceflow: ``--warm-rules`` rules, validated twice on unchanged data, one state."""
    m = METHOD_BY_NAME["onceflow"]
    state = WORK_DIR / "runs" / "warm_state.db"
    state.unlink(missing_ok=True)
    spec = base_spec(events, customers, args.rows) | {
        "rules": many_rules(args.rows, args.warm_rules),
        "state": str(state),
    }
    prime = run_method(m, spec, "warm_prime", args.timeout)
    _print_run(prime, "warm: first (cold) run")
    runs = [run_method(m, spec, f"warm_{r}", args.timeout) for r in range(args.repeats)]
    for i, run in enumerate(runs):
        _print_run(run, f"warm rerun #{i + 1}")
    out = {"rules": args.warm_rules, "cold": summarize([prime]), "warm": summarize(runs)}
    out["cli"] = warm_cli(args, events, customers)
    return out


def warm_cli(args: argparse.Namespace, events: Path, customers: Path) -> dict[str, Any]:
    """The whole `onceflow validate` command on unchanged data: a config with the
    ``--warm-rules`` rules on ``events`` (and ``customers`` as a config table for the
    referential rules), run once cold, then timed ``--repeats`` times."""
    import statistics

    import yaml

    folder = WORK_DIR / "runs" / "warm_cli"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    config = {
        "pipeline": "bench",
        "state": f"sqlite:///{folder / 'state.db'}",
        "sources": {"b": {"url": f"sqlite:///{folder / 'none.db'}"}},
        "tables": [
            {
                "source": "b",
                "table": "events",
                "load": {"target": str(events.resolve()), "strategy": "overwrite"},
                "rules": many_rules(args.rows, args.warm_rules),
            },
            {"source": "b", "table": "customers", "load": {"target": str(customers.resolve())}},
        ],
    }
    (folder / "onceflow.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    command = [str(Path(sys.executable).with_name("onceflow")), "validate", "-t", "b.events"]
    command += ["--output", "report.json"]
    cold = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
    walls, queries = [], []
    for _ in range(args.repeats):
        wait_quiet()
        started = time.perf_counter()
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
        walls.append(time.perf_counter() - started)
        report = json.loads((folder / "report.json").read_text())
        queries.append(report["data_queries"])
        if done.returncode not in (0, 1):
            return {"error": (done.stderr or done.stdout)[-800:]}
    return {
        "cold_exit": cold.returncode,
        "walls": [round(w, 3) for w in walls],
        "wall": statistics.median(walls),
        "data_queries": queries,
    }


# ---------------------------------------------------------------------------- report


def _f(v: Any, nd: int = 2) -> str:
    return "-" if v is None else f"{v:,.{nd}f}"


def answer_text(rule: str, a: dict[str, Any]) -> str:
    parts = []
    if "failing" in a:
        parts.append(f"{a['failing']:,} failing rows")
    if "distinct" in a:
        parts.append(f"{a['distinct']:,} distinct values")
    if "frac_all" in a:
        parts.append(f"{a['frac_all']:.4%} of all rows")
    if "frac_nonnull" in a:
        parts.append(f"{a['frac_nonnull']:.4%} of non-null")
    if "observed" in a and rule == "fresh":
        parts.append(f"newest row {float(a['observed']) * 3600:,.2f} s before the reference")
    elif "observed" in a:
        v = float(a["observed"])
        parts.append("observed " + (f"{v:,.0f}" if v.is_integer() else f"{v:,.6f}".rstrip("0")))
    verdict = {True: "pass", False: "fail"}.get(a.get("passed"), "?")
    return f"{verdict}: " + ", ".join(parts)


def reference_name(full: dict[str, Any]) -> str | None:
    cands = [n for n in REFERENCE_CANDIDATES if "wall" in full.get(n, {})]
    return min(cands, key=lambda n: full[n]["wall"]) if cands else None


def render(data: dict[str, Any]) -> str:
    rows = data["rows"]
    full: dict[str, Any] = data.get("full", {})
    lines = [
        "## Validate",
        "",
        f"Generated by `bench/validate.py {data['argv']}` on {data['when']} UTC; "
        f"{data['machine']}.",
        f"Data: `events` {rows:,} rows in {data['layout']['files']} files "
        f"({data['layout']['mib']} MiB, Delta written by delta-rs), `customers` "
        f"{CUSTOMERS:,} rows; planted problems as in `generate_events`. Every run is a "
        "fresh child process: wall = the whole process (interpreter, imports, read, checks), "
        "peak RSS from GNU time; import/load/setup/inner are the child's own phases "
        "(load = data into the tool's hands, setup = suite/scan built, inner = the "
        "checks); CPU busy before = other work on this shared box in the second before "
        "each run (median; each run waits up to --quiet-wait s for it to fall to "
        "--quiet-cpu). Medians; methods "
        "interleaved round by round, order rotated each round.",
        "",
    ]
    ref = reference_name(full)
    if full:
        table = []
        for m in METHODS:
            s = full.get(m.name)
            if s is None:
                continue
            if "wall" not in s:
                table.append([m.label, *["-"] * 10, s["error"]])
                continue
            rw = full[ref]["wall"] if ref else None
            ri = full[ref]["inner"] if ref else None
            versions = ", ".join(f"{k} {v}" for k, v in s["info"].items())
            table.append(
                [
                    m.label,
                    s["runs"],
                    _f(s["wall"]),
                    _f(s["import"]),
                    _f(s["load"]),
                    _f(s["setup"]),
                    _f(s["inner"]),
                    f"{s['rss']:,.0f}",
                    f"{s['busy_before']:.0%}" if "busy_before" in s else "-",
                    _f(s["wall"] / rw) if rw else "-",
                    _f(s["inner"] / ri) if ri else "-",
                    versions + ("" if s["consistent"] else "; RUNS DISAGREE"),
                ]
            )
        lines += [
            f"### 15 checks on {rows:,} rows",
            "",
            _common().md_table(
                [
                    "method",
                    "runs",
                    "wall s",
                    "import s",
                    "load s",
                    "setup s",
                    "inner s",
                    "peak RSS MiB",
                    "CPU busy before",
                    "wall / ref",
                    "inner / ref",
                    "versions / notes",
                ],
                table,
            ),
            "",
            f"Reference (ratios): **{ref}**, the faster of "
            + " and ".join(f"`{n}`" for n in REFERENCE_CANDIDATES)
            + ". Individual runs (wall s): "
            + "; ".join(
                f"{m.name} " + " ".join(f"{w:.1f}" for w in full[m.name]["walls"])
                for m in METHODS
                if "walls" in full.get(m.name, {})
            )
            + ".",
            "",
        ]
        lines += goal_lines(full, ref, data.get("skipped", {}))
        lines += answers_lines(data, ref)
    if "incremental" in data:
        lines += incremental_lines(data["incremental"])
    if "warm" in data:
        lines += warm_lines(data["warm"])
    for name, why in data.get("skipped", {}).items():
        lines.append(f"- `{name}` skipped: {why}")
    return "\n".join(lines).rstrip() + "\n"


def goal_lines(full: dict[str, Any], ref: str | None, skipped: dict[str, str]) -> list[str]:
    if ref is None:
        return []
    rw = full[ref]["wall"]
    out = []
    of = full.get("onceflow", {})
    if "wall" in of:
        r = of["wall"] / rw
        out.append(
            "Goal onceflow <= 1.2x the reference: "
            f"**{'met' if r <= 1.2 else 'NOT met'}** ({r:.2f}x)."
        )
        for peer in ("gx_pandas", "gx_sql", "soda"):
            if "wall" in full.get(peer, {}):
                x = full[peer]["wall"] / of["wall"]
                out.append(f"onceflow vs {peer}: {x:.1f}x faster (goal >= 10x).")
    else:
        why = skipped.get("onceflow", "not run")
        peers = [
            f"{p} {full[p]['wall'] / rw:.1f}x"
            for p in ("gx_pandas", "gx_sql", "soda")
            if "wall" in full.get(p, {})
        ]
        out.append(
            f"onceflow: not measured ({why}). Peers against the reference (wall): "
            + ", ".join(peers)
            + "; onceflow at the 1.2x limit would be "
            + ", ".join(
                f"{full[p]['wall'] / (1.2 * rw):.1f}x faster than {p}"
                for p in ("gx_pandas", "gx_sql", "soda")
                if "wall" in full.get(p, {})
            )
            + "."
        )
    return [*out, ""]


def answers_lines(data: dict[str, Any], ref: str | None) -> list[str]:
    full = data["full"]
    base = next(
        (n for n in ("duckdb", *full) if "results" in full.get(n, {})), None
    )  # answers of the hand-written queries (all variants agree)
    if base is None:
        return []
    ref_res = full[base]["results"]
    lines = [
        f"#### Reference answers (`{base}`)",
        "",
        _common().md_table(
            ["#", "rule", "answer"],
            [[i + 1, n, answer_text(n, ref_res[n])] for i, n in enumerate(RULE_NAMES)],
        ),
        "",
    ]
    disagree, missing_notes = [], []
    for m in METHODS:
        s = full.get(m.name, {})
        if m.name == base or "results" not in s:
            continue
        rows, missing = compare(m.name, ref_res, s["results"], data["diag"])
        for r in rows:
            why = r.get("why") or "**UNEXPLAINED** (a bug in the method's mapping or the tool)"
            disagree.append([m.name, r["rule"], r["field"], r["ref"], r["got"], why])
        if missing:
            missing_notes.append(f"`{m.name}`: " + ", ".join(missing))
    lines += ["#### Disagreements with the reference", ""]
    if disagree:
        lines += [
            _common().md_table(
                ["method", "rule", "field", "reference", "method's", "explanation"], disagree
            ),
            "",
        ]
    else:
        lines += ["None.", ""]
    if missing_notes:
        lines += [
            "Not reported by the tool (so not compared): " + "; ".join(missing_notes) + ".",
            "",
        ]
    return lines


def incremental_lines(inc: dict[str, Any]) -> list[str]:
    ms = inc["methods"]
    full = ms.get("duckdb_full", {})
    rows = []
    for key, label in (
        ("duckdb_full", "hand-written full (duckdb), grown table"),
        ("onceflow_full", "onceflow full, grown table, fresh state"),
        ("onceflow_incr", "onceflow incremental after the append"),
        ("soda_full", "Soda full, grown table (no incremental mode)"),
        ("gx_sql_full", "GX SQL full, grown table (no incremental mode)"),
    ):
        s = ms.get(key)
        if not s:
            continue
        if "wall" not in s:
            rows.append([label, "-", "-", "-", "-", s.get("error", ""), "-"])
            continue
        ratio = _f(s["inner"] / full["inner"]) if "inner" in full else "-"
        own = ms.get("onceflow_full", {})
        # the goal's "a full one": onceflow's own full validation of the grown table
        own_ratio = _f(s["inner"] / own["inner"]) if "inner" in own else "-"
        rows.append(
            [label, s["runs"], _f(s["wall"]), _f(s["inner"]), f"{s['rss']:,.0f}", ratio, own_ratio]
        )
    lines = [
        f"### Incremental: +{inc['added']:,} rows ({inc['fraction']:.0%}) appended as a "
        f"second commit ({inc['layout']['files']} files)",
        "",
        _common().md_table(
            [
                "method",
                "runs",
                "wall s",
                "inner s",
                "peak RSS MiB",
                "inner / hand-written full",
                "inner / onceflow full",
            ],
            rows,
        ),
        "",
    ]
    incr = ms.get("onceflow_incr", {}).get("inner")
    for peer, name in (("soda_full", "Soda"), ("gx_sql_full", "GX SQL")):
        other = ms.get(peer, {}).get("inner")
        if incr and other:
            lines.append(
                f"The day after the append, {name} checks the grown table again in "
                f"{other:.2f} s (inner): onceflow's incremental run is {other / incr:.1f}x "
                "faster. (The goal's 10x is about the cold full run, above.)"
            )
    if inc["onceflow"] != "measured":
        lines.append(f"onceflow incremental: not measured ({inc['onceflow']}).")
    elif "identical" in inc:
        lines.append(
            "onceflow incremental results identical to the hand-written full run: "
            f"**{'yes' if inc['identical'] else 'NO'}**."
        )
    return [*lines, ""]


def warm_lines(warm: dict[str, Any]) -> list[str]:
    w = warm["warm"]
    if "wall" not in w:
        return [f"### Warm rerun of {warm['rules']} rules: {w.get('error')}", ""]
    q = w["info"].get("data_queries", w["info"].get("queries", "not reported"))
    lines = [
        f"### Warm rerun of {warm['rules']} rules on unchanged data (onceflow)",
        "",
        f"API (validate_table) {w['inner'] * 1000:.0f} ms (goal < 100 ms); whole child "
        f"process (interpreter, imports, API) {w['wall']:.2f} s; data queries: {q} (goal 0).",
    ]
    cli = warm.get("cli") or {}
    if "wall" in cli:
        lines.append(
            f"Whole `onceflow validate` command (a config with the {warm['rules']} rules): "
            f"{cli['wall']:.2f} s median of {len(cli['walls'])} "
            f"({', '.join(map(str, cli['walls']))} s; goal < 1 s); data queries per run: "
            f"{cli['data_queries']} (goal 0)."
        )
    elif cli:
        lines.append(f"Whole command: failed ({cli.get('error')}).")
    return [*lines, ""]


# ------------------------------------------------------------------------------ main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--repeats", type=int, default=5, help="runs of the DuckDB variants, onceflow")
    p.add_argument("--peer-repeats", type=int, default=3, help="runs of GX and Soda")
    p.add_argument("--only", nargs="+", choices=[m.name for m in METHODS], help="methods")
    p.add_argument("--setup", action="store_true", help="create the peer venvs and exit")
    p.add_argument("--append-fraction", type=float, help="also run the incremental scenario")
    p.add_argument("--warm-rules", type=int, default=0, help="also run the warm rerun (onceflow)")
    p.add_argument("--no-full", action="store_true", help="skip the 15-check comparison")
    p.add_argument("--keep", action="store_true", help="keep run folders and the grown copy")
    p.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    p.add_argument(
        "--report-only", action="store_true", help="re-render the section from its stored data"
    )
    p.add_argument("--timeout", type=float, default=1800, help="per child, seconds")
    p.add_argument(
        "--quiet-cpu",
        type=float,
        default=0.25,
        help="before each run, wait until other work uses at most this CPU fraction",
    )
    p.add_argument("--quiet-wait", type=float, default=300, help="... for at most this long (s)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker, args.spec)
    if args.setup:
        setup_venvs(list(VENVS))
        return 0
    common = _common()
    if args.report_only:
        stored = common.read_section_data("validate")
        if not stored:
            raise SystemExit("no stored validate data in RESULTS.md")
        common.write_section("validate", render(stored), stored)
        return 0
    QUIET.update(max_busy=args.quiet_cpu, max_wait_s=args.quiet_wait)
    # SIGTERM (and SIGINT, which a background job ignores) end the run through
    # run_child's cleanup, so no measured child is left behind
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    events, customers = ensure_tables(args.rows)
    names = args.only or [m.name for m in METHODS]
    skipped: dict[str, str] = {}
    onceflow_note = None
    if "onceflow" in names or args.append_fraction or args.warm_rules:
        onceflow_note = onceflow_probe(args.timeout)
        if onceflow_note:
            skipped["onceflow"] = onceflow_note
            print(f"onceflow: skipped ({onceflow_note})", flush=True)
    methods = []
    for name in names:
        m = METHOD_BY_NAME[name]
        if name == "onceflow" and onceflow_note:
            continue
        if python_for(m) is None:
            skipped[name] = f"venv {m.venv} missing: run bench/validate.py --setup"
            print(f"{name}: skipped ({skipped[name]})", flush=True)
            continue
        methods.append(m)

    previous = common.read_section_data("validate")
    data: dict[str, Any] = previous if previous and previous.get("rows") == args.rows else {}
    data |= {
        "rows": args.rows,
        "argv": " ".join(argv) or "(defaults)",
        "when": f"{datetime.now(UTC):%Y-%m-%d %H:%M}",
        "machine": common.machine_note(),
        "layout": table_layout(events),
    }
    data["skipped"] = {k: v for k, v in data.get("skipped", {}).items() if k not in names}
    data["skipped"] |= skipped
    if not args.no_full and methods:
        data["diag"] = diagnostics(events)
        print(f"diagnostics: {data['diag']}", flush=True)
        spec = base_spec(events, customers, args.rows)
        # one untimed run first: the files are in the page cache for every method alike
        warm = run_method(METHOD_BY_NAME["duckdb"], spec, "warmup", args.timeout)
        _print_run(warm, "warm-up (not counted)")
        runs = measure(methods, spec, args.repeats, args.peer_repeats, args.timeout, "full")
        full = data.get("full", {})
        full.update({name: summarize(r) for name, r in runs.items()})
        data["full"] = full
    if args.append_fraction:
        peers = [m for m in methods if m.name in INCREMENTAL_PEERS]
        data["incremental"] = bench_incremental(args, events, customers, onceflow_note, peers)
    if args.warm_rules and onceflow_note is None:
        data["warm"] = bench_warm(args, events, customers)
    body = render(data)
    print(body)
    if not args.no_write:
        common.write_section("validate", body, data)
    if not args.keep:
        shutil.rmtree(WORK_DIR / "runs", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
