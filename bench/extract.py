"""Benchmark: PostgreSQL and MySQL/MariaDB table -> Parquet, onceflow vs. raw libraries vs. dlt.

Run from the repository root with the project venv::

    .venv/bin/python bench/extract.py                      # 2M rows, 3 repeats, all methods
    .venv/bin/python bench/extract.py --rows 200000 --repeats 1
    .venv/bin/python bench/extract.py --only onceflow adbc_stream
    .venv/bin/python bench/extract.py --memory-rows 10000000   # peak RSS only
    .venv/bin/python bench/extract.py --noop-tables 200        # no-op re-run latency
    .venv/bin/python bench/extract.py --mysql-rows 1000000 --repeats 3   # MySQL/MariaDB

Extract mode creates a throw-away schema ``bench_<hex>`` in database ``test``, fills
``events`` server-side with generate_series, and measures two scenarios:

* ``full``   - ``select * from <schema>.events``
* ``window`` - one 24-hour window of ``updated_at`` (~10 % of rows).  ADBC and the
  psycopg named cursor use bound parameters; ConnectorX, psql and COPY use literals.
  Extra ``*_literal`` ADBC variants show what binding costs.

Methods (each run in a fresh child process; wall time + peak RSS via GNU time):

a. ``psql_copy``      ``psql \\copy (...) to /dev/null (format binary)`` - floor, no Parquet
b. ``adbc_table``     ADBC ``fetch_arrow_table()`` + ``pq.write_table``
c. ``adbc_stream``    ADBC ``fetch_record_batch()`` batches into a ``pq.ParquetWriter``
d. ``connectorx``     ``cx.read_sql(..., return_type="arrow")`` + ``pq.write_table``
   ``connectorx_p2``  same with ``partition_on="id", partition_num=2`` (extra)
e. ``dlt_pyarrow`` / ``dlt_connectorx``  dlt ``sql_database`` -> filesystem, parquet
f. ``onceflow``       ``.venv/bin/onceflow extract --config ... --force-reprocess``
g. ``psycopg_named``  psycopg 3 server-side (named) cursor, ``fetchmany(100k)`` ->
   column lists -> typed pyarrow arrays -> ``ParquetWriter``
h. ``psycopg_copy``   psycopg 3 ``COPY (...) TO STDOUT (FORMAT BINARY)``, ``set_types``
   + ``rows()`` -> 100k-row column lists -> pyarrow -> ``ParquetWriter``

``--mysql-rows N`` (default 1,000,000) creates a throw-away MariaDB/MySQL database
``bench_<hex>`` with a similar ``events`` table (INSERT ... SELECT from the Sequence
engine), measures the same two scenarios and drops the database afterwards:

a. ``mysql_cli``            ``mariadb --quick --batch -e ...`` to /dev/null (text floor)
b. ``my_connectorx``        ConnectorX ``arrow`` + ``write_table``
c. ``my_connectorx_stream`` ConnectorX ``arrow_stream`` (100k batches) -> ``ParquetWriter``
d. ``my_pymysql_ss``        pymysql ``SSCursor.fetchmany(100k)`` -> pyarrow -> ``ParquetWriter``
e. ``my_dlt_pyarrow`` / ``my_dlt_connectorx``  dlt ``sql_database`` (``mysql+pymysql``)
f. ``onceflow``             source url ``mysql://root@127.0.0.1:3306/<db>``, table ``events``

Ratios are against the fastest raw library method (``raw=True`` below) in the same
scenario.  Schema/database are dropped at the end (also on Ctrl-C / SIGTERM) unless
``--keep-schema``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from common import ChildResult, ParquetStats

VENV_BIN = Path(sys.executable).parent
ONCEFLOW_BIN = VENV_BIN / "onceflow"


@dataclass(frozen=True)
class Method:
    name: str
    label: str
    scenarios: tuple[str, ...] = ("full", "window")
    raw: bool = True  # a raw library path into Parquet: counts for "fastest raw method"


METHODS: tuple[Method, ...] = (
    Method("psql_copy", "a. psql \\copy binary -> /dev/null (floor)", raw=False),
    Method("adbc_table", "b. ADBC fetch_arrow_table + write_table"),
    Method("adbc_stream", "c. ADBC fetch_record_batch -> ParquetWriter"),
    Method("adbc_table_literal", "b'. ADBC table, literal bounds (no bind)", ("window",)),
    Method("adbc_stream_literal", "c'. ADBC stream, literal bounds (no bind)", ("window",)),
    Method("connectorx", "d. ConnectorX arrow + write_table"),
    Method("connectorx_p2", "d2. ConnectorX partition_num=2 on id"),
    Method("dlt_pyarrow", "e1. dlt sql_database backend=pyarrow", raw=False),
    Method("dlt_connectorx", "e2. dlt sql_database backend=connectorx", raw=False),
    Method("onceflow", "f. onceflow extract", raw=False),
    Method("psycopg_named", "g. psycopg named cursor fetchmany(100k) -> ParquetWriter"),
    Method("psycopg_copy", "h. psycopg binary COPY rows() -> ParquetWriter"),
)
METHOD_BY_NAME = {m.name: m for m in METHODS}

MYSQL_METHODS: tuple[Method, ...] = (
    Method("mysql_cli", "a. mariadb CLI --quick -> /dev/null (floor, text)", raw=False),
    Method("my_connectorx", "b. ConnectorX arrow + write_table"),
    Method("my_connectorx_stream", "c. ConnectorX arrow_stream(100k) -> ParquetWriter"),
    Method("my_pymysql_ss", "d. pymysql SSCursor fetchmany(100k) -> ParquetWriter"),
    Method("my_dlt_pyarrow", "e1. dlt sql_database backend=pyarrow", raw=False),
    Method("my_dlt_connectorx", "e2. dlt sql_database backend=connectorx", raw=False),
    Method("onceflow", "f. onceflow extract", raw=False),
)
MYSQL_METHOD_BY_NAME = {m.name: m for m in MYSQL_METHODS}
STREAM_ROWS = 100_000  # batch size of the hand-written streaming readers
MEMORY_METHODS = ("onceflow", "adbc_stream")
MEMORY_GOAL_MIB = 400
NOOP_GOAL_S = 2.0


# =============================================================================== workers
# A worker runs inside the measured child process:
#   python bench/extract.py --worker METHOD --spec SPEC.json
# It imports only what its method needs and writes a small JSON result next to the spec.


@dataclass
class WorkerSpec:
    method: str
    url: str
    schema: str  # PostgreSQL schema, or the MySQL database (which is also in the URL)
    scenario: str  # "full" | "window"
    run_dir: str
    out: str  # Parquet file path (single-file methods)
    dialect: str = "postgresql"  # "postgresql" | "mysql"

    @property
    def table(self) -> str:
        if self.dialect == "mysql":
            return "`events`"
        return f'"{self.schema}".events'

    def query(self, *, bind: bool, marker: str = "$") -> str:
        """The scenario's query; ``marker`` "$" gives ``$1``/``$2``, "%s" gives ``%s``."""
        base = f"SELECT * FROM {self.table}"
        if self.scenario == "full":
            return base
        if bind:
            a, b = ("$1", "$2") if marker == "$" else (marker, marker)
            return base + f" WHERE updated_at >= {a} AND updated_at < {b}"
        if self.dialect == "mysql":  # sessions run in UTC (the server's zone is UTC)
            fmt = "%Y-%m-%d %H:%M:%S"
            return (
                base + f" WHERE updated_at >= '{common.WINDOW_START.strftime(fmt)}'"
                f" AND updated_at < '{common.WINDOW_END.strftime(fmt)}'"
            )
        return (
            base + f" WHERE updated_at >= '{common.WINDOW_START.isoformat()}'"
            f" AND updated_at < '{common.WINDOW_END.isoformat()}'"
        )

    def params(self) -> tuple[datetime, datetime] | None:
        return None if self.scenario == "full" else (common.WINDOW_START, common.WINDOW_END)


def _adbc_execute(spec: WorkerSpec, *, bind: bool) -> Any:
    import adbc_driver_postgresql.dbapi as pg_dbapi

    conn = pg_dbapi.connect(spec.url)
    cur = conn.cursor()
    params = spec.params() if bind else None
    cur.execute(spec.query(bind=bind), params)
    return conn, cur


def work_adbc_table(spec: WorkerSpec, *, bind: bool = True) -> dict[str, Any]:
    import pyarrow.parquet as pq

    conn, cur = _adbc_execute(spec, bind=bind)
    try:
        table = cur.fetch_arrow_table()
    finally:
        cur.close()
        conn.close()
    pq.write_table(table, spec.out)
    return {"batches": len(table.to_batches())}


def work_adbc_stream(spec: WorkerSpec, *, bind: bool = True) -> dict[str, Any]:
    import pyarrow.parquet as pq

    conn, cur = _adbc_execute(spec, bind=bind)
    sizes: list[int] = []
    try:
        reader = cur.fetch_record_batch()
        with pq.ParquetWriter(spec.out, reader.schema) as writer:
            for batch in reader:
                sizes.append(batch.num_rows)
                writer.write_batch(batch)
    finally:
        cur.close()
        conn.close()
    return _batch_stats(sizes)


def _batch_stats(sizes: list[int]) -> dict[str, Any]:
    if not sizes:
        return {"batches": 0}
    return {
        "batches": len(sizes),
        "batch_rows_min": min(sizes),
        "batch_rows_max": max(sizes),
        "batch_rows_mean": round(sum(sizes) / len(sizes)),
    }


def work_connectorx(spec: WorkerSpec, *, partitions: int = 0) -> dict[str, Any]:
    import connectorx as cx
    import pyarrow.parquet as pq

    kwargs: dict[str, Any] = {"return_type": "arrow"}
    if partitions:
        kwargs.update(partition_on="id", partition_num=partitions)
    table = cx.read_sql(spec.url, spec.query(bind=False), **kwargs)
    pq.write_table(table, spec.out)
    return {"batches": len(table.to_batches())}


def work_dlt(spec: WorkerSpec, *, backend: str) -> dict[str, Any]:
    import dlt
    from dlt.sources.sql_database import sql_database

    run_dir = Path(spec.run_dir)
    if spec.dialect == "mysql":
        # dlt reflects through SQLAlchemy (pymysql); ConnectorX gets its own URL
        sa_url = spec.url.replace("mysql://", "mysql+pymysql://", 1)
        kwargs: dict[str, Any] = {"credentials": sa_url}
        if backend == "connectorx":
            kwargs["backend_kwargs"] = {"conn": spec.url}
    else:
        kwargs = {"credentials": spec.url, "schema": spec.schema}
    source = sql_database(
        table_names=["events"],
        backend=backend,  # type: ignore[arg-type]
        **kwargs,
    )
    if spec.scenario == "window":
        source.resources["events"].apply_hints(
            incremental=dlt.sources.incremental(
                "updated_at",
                initial_value=common.WINDOW_START,
                end_value=common.WINDOW_END,
            )
        )
    pipeline = dlt.pipeline(
        pipeline_name="bench",
        pipelines_dir=str(run_dir / "pipelines"),
        destination=dlt.destinations.filesystem(bucket_url=(run_dir / "out").as_uri()),
        dataset_name="bench",
    )
    info = pipeline.run(source, loader_file_format="parquet")
    info.raise_on_failed_jobs()
    return {"dlt_version": dlt.__version__}


# ---------------------------------------------------------------- psycopg 3 (PostgreSQL)

_PG_ARROW = {
    "int8": "int64",
    "int4": "int32",
    "int2": "int16",
    "float8": "float64",
    "float4": "float32",
    "text": "string",
    "varchar": "string",
    "bpchar": "string",
    "bool": "bool_",
    "date": "date32",
    "jsonb": "string",
    "json": "string",
    "bytea": "binary",
}


def _pg_schema(conn: Any, description: Any) -> tuple[Any, list[str]]:
    """Arrow schema and PostgreSQL type names for a psycopg cursor description."""
    import pyarrow as pa

    fields = []
    names: list[str] = []
    for col in description:
        info = conn.adapters.types.get(col.type_code)
        tname = info.name if info else "text"
        names.append(tname)
        if tname == "numeric":
            typ = pa.decimal128(col.precision or 38, col.scale or 0)
        elif tname == "timestamp":
            typ = pa.timestamp("us")
        elif tname == "timestamptz":
            typ = pa.timestamp("us", tz="UTC")
        else:
            typ = getattr(pa, _PG_ARROW.get(tname, "string"))()
        fields.append(pa.field(col.name, typ))
    return pa.schema(fields), names


def _array(values: Any, typ: Any) -> Any:
    import pyarrow as pa

    try:
        return pa.array(values, type=typ)
    except pa.ArrowInvalid:  # e.g. MySQL booleans arrive as 0/1 ints
        return pa.array(values).cast(typ)


def _rows_to_parquet(chunks: Any, schema: Any, out: str) -> dict[str, Any]:
    """Row tuples, in chunks, -> column lists -> Arrow arrays -> one row group per chunk."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sizes: list[int] = []
    with pq.ParquetWriter(out, schema) as writer:
        for rows in chunks:
            columns = zip(*rows, strict=True)
            arrays = [_array(col, f.type) for col, f in zip(columns, schema, strict=True)]
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
            sizes.append(len(rows))
    return _batch_stats(sizes)


def _psycopg_connect(spec: WorkerSpec) -> Any:
    import psycopg
    from psycopg.types.string import TextLoader

    conn = psycopg.connect(spec.url, options="-c TimeZone=UTC")
    # jsonb as its text, like the other methods (no dict + json.dumps per value)
    conn.adapters.register_loader("jsonb", TextLoader)
    return conn


def work_psycopg_named(spec: WorkerSpec) -> dict[str, Any]:
    """Server-side (named) cursor, text protocol, fetchmany(100k) -> columns -> Parquet."""
    with _psycopg_connect(spec) as conn, conn.cursor(name="bench_cur") as cur:
        cur.itersize = STREAM_ROWS
        cur.execute(spec.query(bind=True, marker="%s"), spec.params())
        schema, _ = _pg_schema(conn, cur.description)

        def chunks() -> Any:
            while rows := cur.fetchmany(STREAM_ROWS):
                yield rows

        return _rows_to_parquet(chunks(), schema, spec.out)


def work_psycopg_copy(spec: WorkerSpec) -> dict[str, Any]:
    """``COPY (...) TO STDOUT (FORMAT BINARY)``, ``set_types`` + ``rows()`` -> Parquet."""
    from psycopg.abc import Buffer
    from psycopg.adapt import Loader
    from psycopg.pq import Format

    class JsonbBinaryText(Loader):
        format = Format.BINARY

        def load(self, data: Buffer) -> str:
            return bytes(data[1:]).decode()  # binary jsonb: version byte, then the text

    conn = _psycopg_connect(spec)
    conn.adapters.register_loader("jsonb", JsonbBinaryText)  # before the cursor copies them
    with conn, conn.cursor() as cur:
        query = spec.query(bind=False)
        cur.execute(f"SELECT * FROM ({query}) q LIMIT 0")
        schema, type_names = _pg_schema(conn, cur.description)
        with cur.copy(f"COPY ({query}) TO STDOUT (FORMAT BINARY)") as copy:
            copy.set_types(type_names)

            def chunks() -> Any:
                rows: list[tuple[Any, ...]] = []
                for row in copy.rows():
                    rows.append(row)
                    if len(rows) >= STREAM_ROWS:
                        yield rows
                        rows = []
                if rows:
                    yield rows

            return _rows_to_parquet(chunks(), schema, spec.out)


# ------------------------------------------------------------------------------ MySQL


def work_my_connectorx(spec: WorkerSpec, *, stream: bool) -> dict[str, Any]:
    import connectorx as cx
    import pyarrow.parquet as pq

    query = spec.query(bind=False)
    if not stream:
        table = cx.read_sql(spec.url, query, return_type="arrow")
        pq.write_table(table, spec.out)
        return {"batches": len(table.to_batches())}
    reader = cx.read_sql(spec.url, query, return_type="arrow_stream", batch_size=STREAM_ROWS)
    sizes: list[int] = []
    with pq.ParquetWriter(spec.out, reader.schema) as writer:
        for batch in reader:
            sizes.append(batch.num_rows)
            writer.write_batch(batch)
    return _batch_stats(sizes)


# pymysql field type codes -> Arrow (TINY(1) is a boolean; charset 63 is binary)
_MY_ARROW = {1: "int8", 2: "int16", 3: "int32", 8: "int64", 9: "int32", 4: "float32"}
_MY_ARROW.update({5: "float64", 10: "date32"})


def _mysql_schema(description: Any, fields: Any) -> Any:
    import pyarrow as pa

    out = []
    for (name, code, _d, length, _p, scale, _n), fld in zip(description, fields, strict=True):
        if code in (0, 246):  # DECIMAL: length counts the sign and the point
            s = int(scale or 0)
            typ = pa.decimal128(int(length) - 1 - (1 if s else 0), s)
        elif code == 1 and length == 1:
            typ = pa.bool_()
        elif code in _MY_ARROW:
            typ = getattr(pa, _MY_ARROW[code])()
        elif code == 7:
            typ = pa.timestamp("us", tz="UTC")  # TIMESTAMP, session time_zone +00:00
        elif code == 12:
            typ = pa.timestamp("us")  # DATETIME
        elif fld.charsetnr == 63:
            typ = pa.binary()
        else:
            typ = pa.string()
        out.append(pa.field(name, typ))
    return pa.schema(out)


def work_my_pymysql(spec: WorkerSpec) -> dict[str, Any]:
    """Unbuffered SSCursor, fetchmany(100k) -> column lists -> Arrow -> Parquet."""
    import pymysql
    import pymysql.cursors
    from sqlalchemy.engine import make_url

    url = make_url(spec.url)
    conn = pymysql.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        database=url.database,
        charset="utf8mb4",
        init_command="SET time_zone = '+00:00'",
        cursorclass=pymysql.cursors.SSCursor,
    )
    try:
        with conn.cursor() as cur:
            cur.execute(spec.query(bind=False))
            schema = _mysql_schema(cur.description, cur._result.fields)

            def chunks() -> Any:
                while rows := cur.fetchmany(STREAM_ROWS):
                    yield rows

            return _rows_to_parquet(chunks(), schema, spec.out)
    finally:
        conn.close()


WORKERS: dict[str, Callable[[WorkerSpec], dict[str, Any]]] = {
    "adbc_table": work_adbc_table,
    "adbc_stream": work_adbc_stream,
    "adbc_table_literal": lambda s: work_adbc_table(s, bind=False),
    "adbc_stream_literal": lambda s: work_adbc_stream(s, bind=False),
    "connectorx": work_connectorx,
    "connectorx_p2": lambda s: work_connectorx(s, partitions=2),
    "dlt_pyarrow": lambda s: work_dlt(s, backend="pyarrow"),
    "dlt_connectorx": lambda s: work_dlt(s, backend="connectorx"),
    "psycopg_named": work_psycopg_named,
    "psycopg_copy": work_psycopg_copy,
    "my_connectorx": lambda s: work_my_connectorx(s, stream=False),
    "my_connectorx_stream": lambda s: work_my_connectorx(s, stream=True),
    "my_pymysql_ss": work_my_pymysql,
    "my_dlt_pyarrow": lambda s: work_dlt(s, backend="pyarrow"),
    "my_dlt_connectorx": lambda s: work_dlt(s, backend="connectorx"),
}


def worker_main(method: str, spec_path: Path) -> int:
    spec = WorkerSpec(**json.loads(spec_path.read_text()))
    t0 = time.perf_counter()
    extra = WORKERS[method](spec)
    inner = time.perf_counter() - t0
    (spec_path.parent / "result.json").write_text(json.dumps({"inner_s": inner, **extra}))
    return 0


# ========================================================================== measuring


@dataclass
class Run:
    ok: bool
    wall_s: float
    peak_rss_mib: float
    inner_s: float | None = None
    rows: int | None = None
    files: int = 0
    row_groups: int = 0
    parquet_bytes: int = 0
    error: str | None = None
    rss_source: str = "time"
    extra: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, str] = field(default_factory=dict)


@dataclass
class Ctx:
    schema: str
    base_tmp: Path
    timeout_s: float
    url: str = common.PG_URL
    dialect: str = "postgresql"

    @property
    def onceflow_table(self) -> str:
        # onceflow quotes ``schema.table``; in MySQL the database is in the URL
        return "events" if self.dialect == "mysql" else f"{self.schema}.events"

    def new_run_dir(self, tag: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{tag}_", dir=self.base_tmp))


def child_env(run_dir: Path) -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.update(
        {
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "DLT_DATA_DIR": str(run_dir / "dlt_home"),
            "DLT_PROJECT_DIR": str(run_dir),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


def run_method(ctx: Ctx, method: str, scenario: str) -> Run:
    run_dir = ctx.new_run_dir(f"{method}_{scenario}")
    try:
        if method == "psql_copy":
            return _run_psql(ctx, run_dir, scenario)
        if method == "mysql_cli":
            return _run_mysql_cli(ctx, run_dir, scenario)
        if method == "onceflow":
            return _run_onceflow(ctx, run_dir, scenario)
        return _run_worker(ctx, run_dir, method, scenario)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _finish(res: ChildResult, stats: ParquetStats | None, run_dir: Path) -> Run:
    result_file = run_dir / "result.json"
    extra: dict[str, Any] = json.loads(result_file.read_text()) if result_file.exists() else {}
    inner = extra.pop("inner_s", None)
    run = Run(
        ok=res.ok,
        wall_s=res.wall_s,
        peak_rss_mib=res.peak_rss_mib,
        inner_s=inner,
        error=None if res.ok else res.error_text(),
        rss_source=res.rss_source,
        extra=extra,
    )
    if stats is not None and res.ok:
        run.rows = stats.rows
        run.files = stats.files
        run.row_groups = stats.row_groups
        run.parquet_bytes = stats.bytes
        run.schema = stats.schema
    return run


def _run_worker(ctx: Ctx, run_dir: Path, method: str, scenario: str) -> Run:
    spec = WorkerSpec(
        method=method,
        url=ctx.url,
        schema=ctx.schema,
        scenario=scenario,
        run_dir=str(run_dir),
        out=str(run_dir / "out.parquet"),
        dialect=ctx.dialect,
    )
    spec_path = run_dir / "spec.json"
    spec_path.write_text(json.dumps(asdict(spec)))
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        method,
        "--spec",
        str(spec_path),
    ]
    res = common.run_child(cmd, cwd=run_dir, timeout_s=ctx.timeout_s, env=child_env(run_dir))
    if "dlt_" in method:
        files = [
            p
            for p in (run_dir / "out").rglob("*.parquet")
            if not any(part.startswith("_dlt") for part in p.relative_to(run_dir).parts)
        ]
    else:
        files = [run_dir / "out.parquet"] if (run_dir / "out.parquet").exists() else []
    return _finish(res, common.parquet_stats(files) if res.ok else None, run_dir)


def _run_psql(ctx: Ctx, run_dir: Path, scenario: str) -> Run:
    spec = WorkerSpec("psql_copy", ctx.url, ctx.schema, scenario, str(run_dir), "")
    sql = f"\\copy ({spec.query(bind=False)}) to '/dev/null' with (format binary)"
    cmd = [
        "psql",
        "-X",
        "-h",
        common.PG_HOST,
        "-p",
        str(common.PG_PORT),
        "-U",
        common.PG_USER,
        "-d",
        common.PG_DB,
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        sql,
    ]
    res = common.run_child(cmd, cwd=run_dir, timeout_s=ctx.timeout_s)
    run = _finish(res, None, run_dir)
    if res.ok:
        for token in res.stdout.split():
            if token.isdigit():
                run.rows = int(token)
    return run


def _run_mysql_cli(ctx: Ctx, run_dir: Path, scenario: str) -> Run:
    spec = WorkerSpec("mysql_cli", ctx.url, ctx.schema, scenario, str(run_dir), "", "mysql")
    sql = spec.query(bind=False)
    sql = shlex.quote(f"SET time_zone = '+00:00'; {sql}")
    cli = (
        f"mariadb --quick --batch --skip-column-names -h {common.MY_HOST} -P {common.MY_PORT}"
        f" -u {common.MY_USER} --default-character-set=utf8mb4 {ctx.schema} -e {sql}"
        " > /dev/null"
    )
    res = common.run_child(["sh", "-c", cli], cwd=run_dir, timeout_s=ctx.timeout_s)
    return _finish(res, None, run_dir)


def onceflow_config(
    schema: str, tmp: Path, mode: str, *, url: str = common.PG_URL, table: str | None = None
) -> str:
    extract = "{mode: full}" if mode == "full" else "{mode: incremental, cursor: updated_at}"
    return (
        "pipeline: bench\n"
        f"state: sqlite:///{tmp}/state.db\n"
        f"lake: {tmp}/lake\n"
        "timezone: UTC\n"
        "sources:\n"
        f'  pg: {{url: "{url}"}}\n'
        "tables:\n"
        f"  - {{source: pg, table: {table or schema + '.events'}, extract: {extract}}}\n"
    )


def _lake_files(run_dir: Path) -> int:
    return sum(1 for p in (run_dir / "lake").rglob("*") if p.is_file())


def _onceflow_missing() -> str | None:
    if ONCEFLOW_BIN.exists():
        return None
    return f"onceflow CLI not installed ({ONCEFLOW_BIN} missing) - pending"


def _run_onceflow(ctx: Ctx, run_dir: Path, scenario: str) -> Run:
    missing = _onceflow_missing()
    if missing:
        return Run(ok=False, wall_s=0.0, peak_rss_mib=0.0, error=missing)
    mode = "full" if scenario == "full" else "incremental"
    cfg = run_dir / "onceflow.yml"
    cfg.write_text(
        onceflow_config(ctx.schema, run_dir, mode, url=ctx.url, table=ctx.onceflow_table)
    )
    cmd = [
        str(ONCEFLOW_BIN),
        "extract",
        "--config",
        str(cfg),
        "--date",
        common.WINDOW_DATE,
        "--force-reprocess",
    ]
    res = common.run_child(cmd, cwd=run_dir, timeout_s=ctx.timeout_s, env=child_env(run_dir))
    files = list((run_dir / "lake").rglob("*.parquet")) if res.ok else []
    return _finish(res, common.parquet_stats(files) if res.ok else None, run_dir)


# ========================================================================== summaries


def summarize(runs: list[Run], expected_rows: int | None) -> dict[str, Any]:
    ok = [r for r in runs if r.ok]
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if not ok:
        return {"ok": False, "error": runs[-1].error if runs else "not run", "measured_at": now}
    walls = [r.wall_s for r in ok]
    inners = [r.inner_s for r in ok if r.inner_s is not None]
    last = ok[-1]
    notes: list[str] = []
    if expected_rows is not None and last.rows is not None and last.rows != expected_rows:
        notes.append(f"ROW MISMATCH: got {last.rows}, expected {expected_rows}")
    if "batch_rows_mean" in last.extra:
        e = last.extra
        notes.append(
            f"{e['batches']} batches, rows/batch min {e['batch_rows_min']}"
            f" mean {e['batch_rows_mean']} max {e['batch_rows_max']}"
        )
    if any(r.rss_source != "time" for r in ok):
        notes.append("RSS via wait4 (floored by harness RSS; install GNU time)")
    failed = [r for r in runs if not r.ok]
    if failed:
        notes.append(f"{len(failed)} failed run(s): {failed[-1].error}")
    return {
        "ok": True,
        "runs": len(ok),
        "walls": [round(w, 3) for w in walls],
        "median_s": common.median(walls),
        "min_s": min(walls),
        "median_inner_s": common.median(inners) if inners else None,
        "peak_rss_mib": max(r.peak_rss_mib for r in ok),
        "rows": last.rows,
        "files": last.files,
        "row_groups": last.row_groups,
        "parquet_mb": round(last.parquet_bytes / common.MIB, 1),
        "schema": last.schema,
        "notes": "; ".join(notes),
        "measured_at": now,
    }


def _fmt(v: float | None, nd: int = 2) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def render_extract(data: dict[str, Any]) -> str:
    meta = data["meta"]
    lines = [
        f"## Extract: {meta['rows']:,} rows (`--rows {meta['rows']} --repeats {meta['repeats']}`)",
        "",
        f"- Date: {meta['date']}",
        f"- Machine: {meta['machine']}",
        f"- PostgreSQL {meta['pg_version']} on 127.0.0.1 (same machine)",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"- Window scenario: `updated_at` in [{common.WINDOW_START.isoformat()},"
        f" {common.WINDOW_END.isoformat()}) = {meta['window_rows']:,} rows",
        f"- Table fill time (generate_series, UNLOGGED, + PK/index/ANALYZE): {meta['fill_s']:.1f}s",
        "- wall = whole child process incl. interpreter start-up/imports (median);"
        " inner = time inside the worker after imports; ratio = median wall / fastest"
        " raw library method (b, b', c, c', d, d2, g, h) in the same scenario.",
        "",
    ]
    lines += results_table(data, METHODS)
    return "\n".join(lines)


def results_table(data: dict[str, Any], methods: tuple[Method, ...]) -> list[str]:
    """The per-scenario results table and the type differences, as Markdown lines."""
    lines: list[str] = []
    headers = [
        "scenario",
        "method",
        "wall s (median)",
        "min s",
        "ratio",
        "inner s",
        "peak RSS MiB",
        "rows",
        "files/row groups",
        "Parquet MiB",
        "notes",
    ]
    rows: list[list[object]] = []
    for scenario in ("full", "window"):
        res = {m: r for (s, m), r in _items(data) if s == scenario}
        base = [res[m.name]["median_s"] for m in methods if m.raw and res.get(m.name, {}).get("ok")]
        fastest = min(base) if base else None
        for m in methods:
            r = res.get(m.name)
            if r is None:
                continue
            if not r["ok"]:
                rows.append([scenario, m.label, "error", "", "", "", "", "", "", "", r["error"]])
                continue
            ratio = f"{r['median_s'] / fastest:.2f}x" if fastest else "-"
            note = r["notes"]
            if r.get("carried_over"):
                note = (note + "; " if note else "") + f"from earlier run {r['measured_at']}"
            rows.append(
                [
                    scenario,
                    m.label,
                    _fmt(r["median_s"]),
                    _fmt(r["min_s"]),
                    ratio,
                    _fmt(r["median_inner_s"]),
                    _fmt(r["peak_rss_mib"], 0),
                    "-" if r["rows"] is None else r["rows"],
                    f"{r['files']}/{r['row_groups']}" if r["files"] else "-",
                    r["parquet_mb"] if r["files"] else "-",
                    note,
                ]
            )
    lines.append(common.md_table(headers, rows))
    lines += ["", *_render_types(data, methods)]
    return lines


def _items(data: dict[str, Any]) -> list[tuple[tuple[str, str], dict[str, Any]]]:
    out = []
    for key, value in data["results"].items():
        scenario, method = key.split("/", 1)
        out.append(((scenario, method), value))
    return out


def _render_types(data: dict[str, Any], methods_in: tuple[Method, ...]) -> list[str]:
    """Arrow types each method wrote for the full scenario (differences only)."""
    schemas = {
        m: r["schema"]
        for (s, m), r in _items(data)
        if s == "full" and r.get("ok") and r.get("schema")
    }
    if not schemas:
        return []
    methods = [m.name for m in methods_in if m.name in schemas]
    columns: list[str] = []
    for m in methods:
        columns += [c for c in schemas[m] if c not in columns]
    rows = []
    for c in columns:
        types = [schemas[m].get(c, "(missing)") for m in methods]
        if len(set(types)) > 1:
            rows.append([c, *types])
    if not rows:
        return ["Arrow/Parquet column types: identical across methods.", ""]
    return [
        "Arrow column types that differ between methods (full scenario; columns not"
        " listed are identical):",
        "",
        common.md_table(["column", *methods], rows),
        "",
    ]


# ============================================================================== modes


def base_meta(args: argparse.Namespace, pg_version: str) -> dict[str, Any]:
    versions = common.package_versions(
        ["pyarrow", "adbc-driver-postgresql", "connectorx", "dlt", "duckdb", "onceflow"]
    )
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": common.machine_note(),
        "pg_version": pg_version,
        "versions": versions,
        "repeats": args.repeats,
    }


def mode_extract(args: argparse.Namespace, ctx: Ctx, conn: Any) -> None:
    methods = _selected(args, [m.name for m in METHODS])
    expected = {"full": args.rows, "window": common.count_window_rows(conn, ctx.schema)}
    meta = base_meta(args, common.server_version(conn))
    meta.update(rows=args.rows, window_rows=expected["window"], fill_s=args.fill_s)
    print(f"window rows: {expected['window']:,} of {args.rows:,}", flush=True)

    results = measure(args, ctx, methods, METHOD_BY_NAME, expected, warm="psql_copy")

    key = f"extract-rows-{args.rows}"
    data = {"meta": meta, "results": _merge(key, results, args.write_results)}
    body = render_extract(data)
    print("\n" + body)
    if args.write_results:
        common.write_section(key, body, data)
        print(f"\nupdated {common.RESULTS_MD}")


def measure(
    args: argparse.Namespace,
    ctx: Ctx,
    methods: list[str],
    by_name: dict[str, Method],
    expected: dict[str, int],
    *,
    warm: str,
) -> dict[str, dict[str, Any]]:
    """Run every method ``args.repeats`` times per scenario, interleaved; summaries."""
    results: dict[str, dict[str, Any]] = {}
    for scenario in args.scenarios:
        # warm the OS/page cache once so the first measured method is not penalised
        run_method(ctx, warm, scenario)
        todo = [m for m in methods if scenario in by_name[m].scenarios]
        runs: dict[str, list[Run]] = {m: [] for m in todo}
        # interleave methods across repeats so drift on a noisy box hits all of them
        for rep in range(args.repeats):
            for m in todo:
                if runs[m] and not any(r.ok for r in runs[m]):
                    continue  # failed on first attempt; don't waste time repeating
                run = run_method(ctx, m, scenario)
                runs[m].append(run)
                status = (
                    f"{run.wall_s:7.2f}s  rss {run.peak_rss_mib:7.0f} MiB  rows {run.rows}"
                    if run.ok
                    else f"ERROR {run.error}"
                )
                print(f"[{scenario:6}] rep {rep + 1}/{args.repeats} {m:20} {status}", flush=True)
        for m in todo:
            results[f"{scenario}/{m}"] = summarize(runs[m], expected[scenario])
    return results


def mode_mysql(args: argparse.Namespace, ctx: Ctx) -> None:
    methods = _selected(args, [m.name for m in MYSQL_METHODS], MYSQL_METHOD_BY_NAME)
    n = args.mysql_rows
    expected = {"full": n, "window": common.my_count_window_rows(ctx.schema)}
    meta = base_meta(args, common.my_server_version())
    meta["versions"].update(common.package_versions(["pymysql", "sqlalchemy"]))
    meta.update(rows=n, window_rows=expected["window"], fill_s=args.fill_s)
    print(f"window rows: {expected['window']:,} of {n:,}", flush=True)
    results = measure(args, ctx, methods, MYSQL_METHOD_BY_NAME, expected, warm="mysql_cli")

    key = f"mysql-rows-{n}"
    data = {"meta": meta, "results": _merge(key, results, args.write_results)}
    lines = [
        f"## Extract MySQL/MariaDB: {n:,} rows (`--mysql-rows {n} --repeats {args.repeats}`)",
        "",
        f"- Date: {meta['date']}",
        f"- Machine: {meta['machine']}",
        f"- MariaDB {meta['pg_version']} on 127.0.0.1 (same machine), InnoDB, time_zone UTC",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        "- Table `events` in a throw-away database: bigint id, int, decimal(12,2), double,"
        " varchar (10 % non-ASCII), varchar, boolean, date, datetime, timestamp updated_at,"
        " json, varbinary(16); filled with INSERT ... SELECT FROM seq_1_to_N"
        f" + index on updated_at in {meta['fill_s']:.1f}s",
        f"- Window scenario: `updated_at` in [{common.WINDOW_START.isoformat()},"
        f" {common.WINDOW_END.isoformat()}) = {meta['window_rows']:,} rows (literal bounds)",
        "- wall = whole child process (median); ratio = median wall / fastest raw library"
        " method (b, c, d) in the same scenario. onceflow reads MySQL with a pymysql"
        " preflight + ConnectorX `arrow_stream`.",
        "",
        *results_table(data, MYSQL_METHODS),
    ]
    body = "\n".join(lines)
    print("\n" + body)
    if args.write_results:
        common.write_section(key, body, data)
        print(f"\nupdated {common.RESULTS_MD}")


def _merge(key: str, new: dict[str, Any], enabled: bool) -> dict[str, Any]:
    """Carry over earlier results of methods not re-measured in this run."""
    old = common.read_section_data(key) if enabled else None
    merged = {k: {**v, "carried_over": True} for k, v in (old or {}).get("results", {}).items()}
    merged.update(new)
    return merged


def _selected(
    args: argparse.Namespace, default: list[str], by_name: dict[str, Method] = METHOD_BY_NAME
) -> list[str]:
    if not args.only:
        return default
    unknown = [m for m in args.only if m not in by_name]
    if unknown:
        sys.exit(f"unknown method(s) {unknown}; choose from {list(by_name)}")
    return [m for m in by_name if m in args.only]


def mode_memory(args: argparse.Namespace, ctx: Ctx, conn: Any) -> None:
    methods = _selected(args, list(MEMORY_METHODS))
    meta = base_meta(args, common.server_version(conn))
    meta.update(rows=args.memory_rows, fill_s=args.fill_s)
    results: dict[str, dict[str, Any]] = {}
    runs: dict[str, list[Run]] = {m: [] for m in methods}
    for rep in range(args.repeats):
        for m in methods:
            if runs[m] and not any(r.ok for r in runs[m]):
                continue
            run = run_method(ctx, m, "full")
            runs[m].append(run)
            print(
                f"[memory] rep {rep + 1} {m:20} "
                + (
                    f"{run.wall_s:.1f}s rss {run.peak_rss_mib:.0f} MiB"
                    if run.ok
                    else f"ERROR {run.error}"
                ),
                flush=True,
            )
    for m in methods:
        results[f"full/{m}"] = summarize(runs[m], args.memory_rows)

    key = f"memory-rows-{args.memory_rows}"
    data = {"meta": meta, "results": _merge(key, results, args.write_results)}
    lines = [
        f"## Peak memory: {args.memory_rows:,} rows, full table"
        f" (goal: onceflow < {MEMORY_GOAL_MIB} MiB)",
        "",
        f"- Date: {meta['date']}; machine: {meta['machine']}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        "",
    ]
    rows = []
    for (_, m), r in _items(data):
        if not r["ok"]:
            rows.append([METHOD_BY_NAME[m].label, "error", "", "", "", r["error"]])
            continue
        goal = "yes" if r["peak_rss_mib"] < MEMORY_GOAL_MIB else "NO"
        rows.append(
            [
                METHOD_BY_NAME[m].label,
                f"{r['peak_rss_mib']:.0f}",
                goal,
                _fmt(r["median_s"], 1),
                r["rows"],
                r["notes"],
            ]
        )
    lines.append(
        common.md_table(
            ["method", "peak RSS MiB", f"< {MEMORY_GOAL_MIB} MiB", "wall s", "rows", "notes"], rows
        )
    )
    body = "\n".join(lines)
    print("\n" + body)
    if args.write_results:
        common.write_section(key, body, data)


def mode_noop(args: argparse.Namespace, ctx: Ctx, conn: Any) -> None:
    n = args.noop_tables
    meta = base_meta(args, common.server_version(conn))
    t0 = time.perf_counter()
    names = common.create_small_tables(conn, ctx.schema, n, args.noop_table_rows)
    print(f"created {n} tables in {time.perf_counter() - t0:.1f}s", flush=True)
    key = f"noop-tables-{n}"
    result: dict[str, Any]
    missing = _onceflow_missing()
    if missing:
        result = {"ok": False, "error": missing}
    else:
        run_dir = ctx.new_run_dir("noop")
        cfg = run_dir / "onceflow.yml"
        table_lines = "".join(
            f"  - {{source: pg, table: {ctx.schema}.{t}, extract: {{mode: full}}}}\n" for t in names
        )
        cfg.write_text(
            onceflow_config(ctx.schema, run_dir, "full").split("tables:\n")[0]
            + "tables:\n"
            + table_lines
        )
        cmd = [str(ONCEFLOW_BIN), "extract", "--config", str(cfg), "--date", common.WINDOW_DATE]
        env = child_env(run_dir)
        first = common.run_child(cmd, cwd=run_dir, timeout_s=ctx.timeout_s, env=env)
        print(f"first run: {first.wall_s:.2f}s ok={first.ok}", flush=True)
        if not first.ok:
            result = {"ok": False, "error": "first run failed: " + first.error_text()}
        else:
            files_before = _lake_files(run_dir)
            walls: list[float] = []
            rss: list[float] = []
            error = None
            for i in range(args.noop_repeats):
                res = common.run_child(cmd, cwd=run_dir, timeout_s=ctx.timeout_s, env=env)
                print(f"no-op run {i + 1}: {res.wall_s:.2f}s ok={res.ok}", flush=True)
                if not res.ok:
                    error = res.error_text()
                    break
                walls.append(res.wall_s)
                rss.append(res.peak_rss_mib)
            if error:
                result = {"ok": False, "error": error}
            else:
                med = common.median(walls)
                result = {
                    "ok": True,
                    "first_s": first.wall_s,
                    "walls": [round(w, 3) for w in walls],
                    "median_s": med,
                    "peak_rss_mib": max(rss),
                    "goal_met": med < NOOP_GOAL_S,
                    "lake_files": f"{files_before} -> {_lake_files(run_dir)}",
                }
    lines = [
        f"## No-op re-run: {n} completed tables (goal < {NOOP_GOAL_S:.0f} s)",
        "",
        f"- Date: {meta['date']}; machine: {meta['machine']}",
        f"- {n} tables x {args.noop_table_rows} rows, `mode: full`; first run completes"
        f" them, then {args.noop_repeats} more runs of the whole `onceflow extract` command.",
        "",
    ]
    if result["ok"]:
        lines.append(
            common.md_table(
                [
                    "first run s",
                    "no-op median s",
                    "runs",
                    "peak RSS MiB",
                    f"< {NOOP_GOAL_S:.0f} s",
                    "lake files: first run -> after no-ops",
                ],
                [
                    [
                        _fmt(result["first_s"]),
                        _fmt(result["median_s"]),
                        result["walls"],
                        f"{result['peak_rss_mib']:.0f}",
                        "yes" if result["goal_met"] else "NO",
                        result["lake_files"],
                    ]
                ],
            )
        )
    else:
        lines.append(f"Not measured: {result['error']}")
    body = "\n".join(lines)
    print("\n" + body)
    if args.write_results:
        common.write_section(key, body, {"meta": meta, "result": result})


# =============================================================================== main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rows", type=int, default=2_000_000, help="rows in events (extract mode)")
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="runs per method; median reported (default 3, memory mode 1)",
    )
    p.add_argument(
        "--only",
        nargs="+",
        metavar="METHOD",
        help=f"subset of methods: {', '.join(METHOD_BY_NAME)}; MySQL mode:"
        f" {', '.join(MYSQL_METHOD_BY_NAME)}",
    )
    p.add_argument("--scenarios", nargs="+", choices=["full", "window"], default=["full", "window"])
    p.add_argument("--memory-rows", type=int, help="memory mode: build N rows, peak RSS only")
    p.add_argument("--noop-tables", type=int, help="no-op mode: N small tables")
    p.add_argument(
        "--mysql-rows",
        type=int,
        nargs="?",
        const=1_000_000,
        help="MySQL/MariaDB mode: a throw-away database with N rows (default 1,000,000)",
    )
    p.add_argument("--noop-table-rows", type=int, default=100)
    p.add_argument("--noop-repeats", type=int, default=5)
    p.add_argument("--timeout", type=float, default=1800.0, help="per child process, seconds")
    p.add_argument("--keep-schema", action="store_true", help="do not drop the schema")
    p.add_argument("--use-schema", help="reuse an existing filled schema (never dropped)")
    p.add_argument(
        "--no-write-results",
        dest="write_results",
        action="store_false",
        help="print only; leave bench/RESULTS.md alone",
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.memory_rows else 3
    return args


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main_mysql(args: argparse.Namespace) -> int:
    database = args.use_schema or common.new_schema_name()
    owns = args.use_schema is None
    base_tmp = Path(tempfile.mkdtemp(prefix="onceflow_bench_"))
    ctx = Ctx(
        schema=database,
        base_tmp=base_tmp,
        timeout_s=args.timeout,
        url=common.my_url(database),
        dialect="mysql",
    )
    args.fill_s = 0.0
    try:
        if owns:
            print(f"creating database {database}", flush=True)
            args.fill_s = common.my_create_events(database, args.mysql_rows)
            print(f"filled {args.mysql_rows:,} rows in {args.fill_s:.1f}s", flush=True)
        mode_mysql(args, ctx)
    except KeyboardInterrupt:
        print("\ninterrupted - cleaning up", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(base_tmp, ignore_errors=True)
        if owns and not args.keep_schema:
            try:
                common.my_drop_database(database)
                print(f"database {database} dropped", file=sys.stderr)
            except Exception as exc:  # report, never mask the real error
                print(f"WARNING: could not drop database {database}: {exc}", file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker, args.spec)

    signal.signal(signal.SIGTERM, _sigterm)
    if args.mysql_rows:
        return main_mysql(args)
    schema = args.use_schema or common.new_schema_name()
    owns_schema = args.use_schema is None
    base_tmp = Path(tempfile.mkdtemp(prefix="onceflow_bench_"))
    ctx = Ctx(schema=schema, base_tmp=base_tmp, timeout_s=args.timeout)
    args.fill_s = 0.0
    try:
        with common.pg_connect() as conn:
            if owns_schema:
                common.create_schema(conn, schema)
                print(f"schema {schema} created", flush=True)
                rows = args.memory_rows or (0 if args.noop_tables else args.rows)
                if rows:
                    args.fill_s = common.fill_events(conn, schema, rows)
                    print(f"filled {rows:,} rows in {args.fill_s:.1f}s", flush=True)
            if args.noop_tables:
                mode_noop(args, ctx, conn)
            elif args.memory_rows:
                mode_memory(args, ctx, conn)
            else:
                mode_extract(args, ctx, conn)
    except KeyboardInterrupt:
        print("\ninterrupted - cleaning up", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(base_tmp, ignore_errors=True)
        if owns_schema and not args.keep_schema:
            try:
                common.drop_schema(schema)
                print(f"schema {schema} dropped", file=sys.stderr)
            except Exception as exc:  # report, never mask the real error
                print(f"WARNING: could not drop schema {schema}: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
