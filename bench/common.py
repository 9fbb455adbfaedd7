"""Shared helpers for the onceflow benchmark harness.

Everything here runs in the *orchestrating* process: PostgreSQL fixtures, running a
measured child process (wall time + peak RSS), inspecting Parquet output and keeping
``bench/RESULTS.md`` up to date.  The measured work itself runs in fresh child
processes (see ``extract.py --worker``) so that one method's imports and allocations
never leak into another method's numbers.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import secrets
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_MD = BENCH_DIR / "RESULTS.md"

PG_HOST = os.environ.get("BENCH_PGHOST", "127.0.0.1")
PG_PORT = int(os.environ.get("BENCH_PGPORT", "5432"))
PG_USER = os.environ.get("BENCH_PGUSER", "root")
PG_DB = os.environ.get("BENCH_PGDATABASE", "test")
PG_URL = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{PG_DB}"

# updated_at is spread uniformly over [DATA_START, DATA_START + 10 days); the measured
# 24-hour window is day 6, so it holds ~10 % of the rows.
DATA_START = datetime(2024, 1, 1, tzinfo=UTC)
WINDOW_START = datetime(2024, 1, 6, tzinfo=UTC)
WINDOW_END = datetime(2024, 1, 7, tzinfo=UTC)
WINDOW_DATE = WINDOW_START.date().isoformat()

MIB = 1024 * 1024
TIME_BIN = Path("/usr/bin/time")  # GNU time (Debian package "time")


# --------------------------------------------------------------------------- postgres


def pg_connect() -> psycopg.Connection[Any]:
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_DB, autocommit=True)


def new_schema_name(prefix: str = "bench") -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


def create_schema(conn: psycopg.Connection[Any], schema: str) -> None:
    conn.execute(f'CREATE SCHEMA "{schema}"')


def drop_schema(schema: str) -> None:
    """Drop ``schema`` with a fresh connection (the caller's may be broken by Ctrl-C)."""
    with pg_connect() as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


EVENTS_DDL = """
CREATE UNLOGGED TABLE {s}.events (
    id          bigint NOT NULL,
    user_id     integer NOT NULL,
    amount      numeric(12, 2),
    score       double precision,
    title       text,
    category    varchar(32),
    is_active   boolean,
    event_date  date,
    created_at  timestamp without time zone,
    updated_at  timestamptz NOT NULL,
    payload     jsonb,
    blob        bytea
)
"""

# Server-side generation.  Deterministic thanks to setseed() (INSERT ... SELECT runs
# in a single backend).  ~10 % of titles are non-ASCII, some columns have NULLs.
EVENTS_FILL = """
INSERT INTO {s}.events
SELECT
    g,
    (g * 7919) % 100000,
    round((random() * 100000)::numeric, 2),
    random() * 1000 - 500,
    CASE g % 10
        WHEN 0 THEN 'Zürich café \u2013 東京 ✓ #' || g
        WHEN 1 THEN NULL
        ELSE 'event title number ' || g
    END,
    CASE WHEN g % 17 = 0 THEN NULL
         ELSE (ARRAY['click', 'view', 'purchase', 'signup', 'logout'])[1 + g % 5]
    END,
    CASE WHEN g % 3 = 0 THEN NULL ELSE g % 2 = 0 END,
    date '2024-01-01' + (g % 365)::int,
    timestamp '2023-01-01 00:00:00' + g * interval '1 second',
    timestamptz '{start}' + random() * interval '10 days',
    jsonb_build_object('k', g % 100, 'tags', jsonb_build_array('a', 'b'), 'ok', g % 2 = 0),
    decode(md5(g::text), 'hex')
FROM generate_series({lo}::bigint, {hi}::bigint) AS g
"""


def fill_events(conn: psycopg.Connection[Any], schema: str, rows: int) -> float:
    """Create and fill ``schema.events`` with ``rows`` rows; return elapsed seconds."""
    t0 = time.perf_counter()
    s = f'"{schema}"'
    conn.execute(EVENTS_DDL.format(s=s))
    conn.execute("SELECT setseed(0.42)")
    chunk = 5_000_000  # keeps a single statement's temp usage bounded
    for lo in range(1, rows + 1, chunk):
        hi = min(rows, lo + chunk - 1)
        conn.execute(EVENTS_FILL.format(s=s, lo=lo, hi=hi, start=DATA_START.isoformat()))
    conn.execute(f"ALTER TABLE {s}.events ADD PRIMARY KEY (id)")
    conn.execute(f"CREATE INDEX ON {s}.events (updated_at)")
    conn.execute(f"ANALYZE {s}.events")
    return time.perf_counter() - t0


def count_window_rows(conn: psycopg.Connection[Any], schema: str) -> int:
    row = conn.execute(
        f'SELECT count(*) FROM "{schema}".events WHERE updated_at >= %s AND updated_at < %s',
        (WINDOW_START, WINDOW_END),
    ).fetchone()
    assert row is not None
    return int(row[0])


def create_small_tables(
    conn: psycopg.Connection[Any], schema: str, tables: int, rows: int
) -> list[str]:
    """Create ``tables`` small tables ``t000..`` with ``rows`` rows each."""
    names = [f"t{i:03d}" for i in range(tables)]
    for name in names:
        conn.execute(
            f"""CREATE TABLE "{schema}".{name} AS
                SELECT g::bigint AS id, 'row ' || g AS name,
                       timestamptz '{DATA_START.isoformat()}' + g * interval '1 hour'
                           AS updated_at
                FROM generate_series(1, {rows}) g"""
        )
    conn.execute(f'ANALYZE "{schema}".t000')
    return names


def server_version(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


# ----------------------------------------------------------------------- mysql/mariadb

MY_HOST = os.environ.get("BENCH_MYHOST", "127.0.0.1")
MY_PORT = int(os.environ.get("BENCH_MYPORT", "3306"))
MY_USER = os.environ.get("BENCH_MYUSER", "root")


def my_url(database: str) -> str:
    return f"mysql://{MY_USER}@{MY_HOST}:{MY_PORT}/{database}"


def my_connect(database: str | None = None) -> Any:
    import pymysql

    return pymysql.connect(
        host=MY_HOST,
        port=MY_PORT,
        user=MY_USER,
        password=os.environ.get("BENCH_MYPASSWORD", ""),
        database=database,
        charset="utf8mb4",
        autocommit=True,
        init_command="SET time_zone = '+00:00'",
    )


MY_EVENTS_DDL = """
CREATE TABLE events (
    id          bigint NOT NULL PRIMARY KEY,
    user_id     int NOT NULL,
    amount      decimal(12, 2),
    score       double,
    title       varchar(100),
    category    varchar(32),
    is_active   boolean,
    event_date  date,
    created_at  datetime,
    updated_at  timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
    payload     json,
    `blob`      varbinary(16)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""

# MariaDB's Sequence engine (seq_1_to_N) generates the ids; the same mix of values,
# NULLs and non-ASCII titles as the PostgreSQL table.  "Random" values come from
# MD5(id), so the table is deterministic (RAND(seq) is correlated for nearby seeds).
MY_EVENTS_FILL = """
INSERT INTO events
SELECT
    seq,
    (seq * 7919) % 100000,
    ROUND(CONV(SUBSTR(MD5(seq), 1, 8), 16, 10) / 42949.67296, 2),
    CONV(SUBSTR(MD5(seq), 9, 8), 16, 10) / 4294967.296 - 500,
    CASE seq % 10
        WHEN 0 THEN CONCAT('Zürich café \u2013 東京 ✓ #', seq)
        WHEN 1 THEN NULL
        ELSE CONCAT('event title number ', seq)
    END,
    CASE WHEN seq % 17 = 0 THEN NULL
         ELSE ELT(1 + seq % 5, 'click', 'view', 'purchase', 'signup', 'logout')
    END,
    CASE WHEN seq % 3 = 0 THEN NULL ELSE seq % 2 = 0 END,
    DATE '2024-01-01' + INTERVAL (seq % 365) DAY,
    TIMESTAMP '2023-01-01 00:00:00' + INTERVAL seq SECOND,
    TIMESTAMP '{start}' + INTERVAL FLOOR(CONV(SUBSTR(MD5(seq), 17, 12), 16, 10) / 281474976710656
        * 864000000000) MICROSECOND,
    JSON_OBJECT('k', seq % 100, 'tags', JSON_ARRAY('a', 'b'), 'ok', seq % 2 = 0),
    UNHEX(MD5(seq))
FROM seq_{lo}_to_{hi}
"""


def my_create_events(database: str, rows: int) -> float:
    """Create database ``database`` with a filled ``events``; return elapsed seconds."""
    t0 = time.perf_counter()
    with contextlib.closing(my_connect()) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
        cur.execute(f"USE `{database}`")
        cur.execute(MY_EVENTS_DDL)
        start = DATA_START.strftime("%Y-%m-%d %H:%M:%S")
        chunk = 500_000
        for lo in range(1, rows + 1, chunk):
            hi = min(rows, lo + chunk - 1)
            cur.execute(MY_EVENTS_FILL.format(lo=lo, hi=hi, start=start))
        cur.execute("ALTER TABLE events ADD INDEX (updated_at)")
        cur.execute("ANALYZE TABLE events")
        cur.fetchall()
    return time.perf_counter() - t0


def my_count_window_rows(database: str) -> int:
    fmt = "%Y-%m-%d %H:%M:%S"
    with contextlib.closing(my_connect(database)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM events WHERE updated_at >= %s AND updated_at < %s",
            (WINDOW_START.strftime(fmt), WINDOW_END.strftime(fmt)),
        )
        row = cur.fetchone()
    assert row is not None
    return int(row[0])


def my_server_version() -> str:
    with contextlib.closing(my_connect()) as conn, conn.cursor() as cur:
        cur.execute("SELECT version()")
        row = cur.fetchone()
    return str(row[0]) if row else "?"


def my_drop_database(database: str) -> None:
    with contextlib.closing(my_connect()) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{database}`")


# ------------------------------------------------------------------- child processes


@dataclass
class ChildResult:
    returncode: int | None  # None: killed on timeout
    wall_s: float
    maxrss_kib: int  # peak RSS of the child and any descendants it waited for
    stdout: str
    stderr: str
    timed_out: bool = False
    rss_source: str = "time"  # "time" (accurate) or "wait4" (floored by harness RSS)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def peak_rss_mib(self) -> float:
        return self.maxrss_kib / 1024

    def error_text(self, limit: int = 400) -> str:
        if self.timed_out:
            return f"timeout after {self.wall_s:.0f}s"
        text = self.stderr.strip() or self.stdout.strip() or f"exit {self.returncode}"
        lines = [ln for ln in text.splitlines() if ln.strip()]
        # the last lines of a traceback carry the actual error
        tail = " | ".join(lines[-3:])
        return f"exit {self.returncode}: {tail}"[:limit]


def run_child(
    cmd: Sequence[str],
    *,
    cwd: Path,
    timeout_s: float,
    env: dict[str, str] | None = None,
) -> ChildResult:
    """Run ``cmd`` in its own session; measure wall time and peak RSS.

    Peak RSS comes from ``/usr/bin/time -f %M`` when available.  Reading ``ru_maxrss``
    from our own ``wait4`` is *not* enough: Linux folds the pre-exec memory of the
    forked child - i.e. a copy of this (large, pyarrow-importing) harness process -
    into the child's high-water mark, so every child would look at least as big as
    the harness.  ``time`` forks from a tiny process, so its number is the command's.
    ``wait4`` is kept as a fallback (marked in ``rss_source``).

    The child is killed (whole process group) on timeout or if the harness is
    interrupted, so Ctrl-C never leaves a stray extractor running.
    """
    out_path = cwd / ".child.stdout"
    err_path = cwd / ".child.stderr"
    rss_path = cwd / ".child.rss"
    rss_source = "wait4"
    if TIME_BIN.exists():
        cmd = [str(TIME_BIN), "-o", str(rss_path), "-f", "maxrss_kib=%M", *cmd]
        rss_source = "time"
    with open(out_path, "wb") as out_f, open(err_path, "wb") as err_f:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out_f,
            stderr=err_f,
            start_new_session=True,
        )
        box: dict[str, Any] = {}

        def reap() -> None:
            _, status, usage = os.wait4(proc.pid, 0)
            box["t1"] = time.perf_counter()
            box["status"] = status
            box["usage"] = usage

        waiter = threading.Thread(target=reap, daemon=True)
        waiter.start()
        timed_out = False
        try:
            waiter.join(timeout_s)
            if waiter.is_alive():
                timed_out = True
                _kill_group(proc.pid)
                waiter.join()
        except BaseException:
            _kill_group(proc.pid)
            waiter.join(5)
            raise
        proc.returncode = os.waitstatus_to_exitcode(box["status"])
    wall = box["t1"] - t0
    maxrss = int(box["usage"].ru_maxrss)
    if rss_source == "time":
        found = re.findall(r"maxrss_kib=(\d+)", _read(rss_path))
        if found:
            maxrss = int(found[-1])
        else:  # killed before time could report
            rss_source = "wait4"
    return ChildResult(
        returncode=None if timed_out else proc.returncode,
        wall_s=wall,
        maxrss_kib=maxrss,
        rss_source=rss_source,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
        timed_out=timed_out,
    )


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


# ------------------------------------------------------------------------ parquet


@dataclass
class ParquetStats:
    files: int = 0
    rows: int = 0
    row_groups: int = 0
    bytes: int = 0
    schema: dict[str, str] = field(default_factory=dict)


def parquet_stats(paths: Iterable[Path]) -> ParquetStats:
    import pyarrow.parquet as pq

    stats = ParquetStats()
    for path in sorted(paths):
        meta = pq.ParquetFile(path)
        stats.files += 1
        stats.rows += meta.metadata.num_rows
        stats.row_groups += meta.metadata.num_row_groups
        stats.bytes += path.stat().st_size
        if not stats.schema:
            stats.schema = {f.name: str(f.type) for f in meta.schema_arrow}
    return stats


# ----------------------------------------------------------------------- reporting


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def package_versions(names: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine_note() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        mem = f"{psutil.virtual_memory().total / 1024**3:.0f} GiB"
    except ImportError:
        mem = "?"
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem} RAM, shared/noisy VM; "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    for row in rows:
        cells = [str(c).replace("|", "\\|").replace("\n", " ") for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


_SECTION_RE = r"<!-- bench:{key}:start -->\n(.*?)<!-- bench:{key}:end -->\n?"
_DATA_RE = re.compile(r"<!-- bench-data (.*?) -->", re.S)


def read_section_data(key: str, path: Path = RESULTS_MD) -> dict[str, Any] | None:
    """Return the JSON payload embedded in section ``key`` of RESULTS.md, if any."""
    if not path.exists():
        return None
    m = re.search(_SECTION_RE.format(key=re.escape(key)), path.read_text(), re.S)
    if not m:
        return None
    d = _DATA_RE.search(m.group(1))
    if not d:
        return None
    try:
        data: dict[str, Any] = json.loads(d.group(1).replace("-\\-", "--"))
    except json.JSONDecodeError:
        return None
    return data


def write_section(key: str, body: str, data: dict[str, Any], path: Path = RESULTS_MD) -> None:
    """Replace (or append) the marked section ``key`` in RESULTS.md.

    The raw numbers are embedded as JSON in an HTML comment so a later partial run
    (``--only onceflow``) can merge into the section instead of wiping it.
    """
    payload = json.dumps(data, sort_keys=True).replace("--", "-\\-")
    block = (
        f"<!-- bench:{key}:start -->\n{body.rstrip()}\n\n"
        f"<!-- bench-data {payload} -->\n<!-- bench:{key}:end -->\n"
    )
    text = path.read_text() if path.exists() else RESULTS_HEADER
    pattern = re.compile(_SECTION_RE.format(key=re.escape(key)), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text, count=1)
    else:
        text = text.rstrip() + "\n\n" + block
    path.write_text(text)


RESULTS_HEADER = """# onceflow benchmark results

Generated by `bench/extract.py` (see the docstring there for what each method does).
Each section below is rewritten by the run mode/size it belongs to; raw numbers are
kept in an HTML comment at the end of every section so partial re-runs (`--only`)
merge instead of overwriting.

Every method runs in a fresh child process.  Peak RSS is the child's max resident
set size as reported by GNU `/usr/bin/time -f %M` (client side only: the PostgreSQL
backend's memory is not included; for multi-process tools it is the largest single
process, not the sum).  Wall time is the whole child process (interpreter start-up
and imports included), median of the runs; methods are interleaved across repeats.
The machine is small and shared, so differences under ~10 % are noise.
"""
