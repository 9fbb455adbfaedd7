"""Benchmark: loading into Delta Lake - append, the skip decision, SCD2 (vs hand-written, vs dlt).

Run from the repository root with the project venv::

    .venv/bin/python bench/load.py                       # 1M rows, 3 repeats
    .venv/bin/python bench/load.py --rows 100000 --repeats 1
    .venv/bin/python bench/load.py --only append skip    # a subset (append skip scd2)
    .venv/bin/python bench/load.py --only widen --widen-rows 5000000 --repeats 5

Scenarios (all methods of a scenario run in this process - widen: in fresh processes -
interleaved across repeats, on the same data; medians of ``--repeats`` runs):

1. ``append``: N rows x 10 columns. ``parquet``: ``pyarrow.parquet.write_table`` of the
   table to one file (the floor). ``onceflow``: ``onceflow.load.append.apply_append``
   into an existing Delta table (audit columns added, commit properties with custom
   metadata and an app transaction, opening the table included) - or, when that module
   is not importable, ``deltalake.write_deltalake(mode='append')`` of the same thing,
   labelled ``write_deltalake``. Goal: <= 1.2x parquet.
2. ``skip``: deciding that a file is already loaded, on a table with 25 commits: open
   the table and read what it holds the way the loader does (``markers.read_markers`` +
   ``holds``: one application transaction per file, from the checkpoint and the newer
   commits), and delta-rs alone (``DeltaTable(uri).transaction_version(app id)``).
   Goal: < 20 ms.
3. ``scd2``: N source rows into an N-row SCD2 table, 10 % of the keys changed (no new,
   no deleted keys), validity = load time, all 9 non-key columns tracked.
   ``onceflow``: ``apply_scd2``. ``handwritten``: the simplest correct delta-rs version -
   read the current rows through the snapshot, DuckDB diff (NULL-safe on the 9 tracked
   columns), one merge with the classic "merge key" source (changed rows twice: once
   keyed to close the current row, once unkeyed to insert), unconditional clauses.
   ``handwritten_duckdb``: the same with DuckDB scanning the snapshot's Parquet files
   inside the diff (what onceflow does for a local, unpartitioned reader-v1 table).
   ``dlt``: dlt's ``merge``/``scd2`` write disposition into DuckDB (the N-row initial
   load is not timed; the timed run is the second load, extract+normalize+load).
   Each repeat starts from a fresh copy of the initial table (the copy is not timed).
   Goal: onceflow <= 1.1x the faster hand-written version.
4. ``replace``: a 30-window append table loaded through ``onceflow.load.load`` (the whole
   command path: discovery, markers, tracker, lock); one window is re-extracted with new
   content and the load replaces its rows in one commit. Compared with loading that
   window the first time (the 30th window onto 29). Goal: <= 2x.
5. ``replay``: a 30-window SCD2 table whose first window is re-extracted: the load rewinds
   the table and replays the 30 windows in order. Recorded against a clean load of the
   30 windows into a new table (what a rebuild costs).
6. ``widen``: an append table of ``--widen-rows`` rows x 10 columns in
   ``--widen-windows`` daily files (loaded by ``onceflow.load.load``, not timed; ``qty``
   int32), then one more window of as many rows whose ``qty`` is int64 (some values past
   int32). Timed in fresh processes (wall time and peak RSS from GNU time; imports
   included), methods interleaved in a rotating order, each on its own copy of the table
   (the copy is not timed). ``onceflow``: ``load`` with ``load: {strategy: append,
   widen: true}`` (the whole command path: the widening rewrite, one commit, then the
   file's append, one commit). ``deltalake``: the same with delta-rs alone: the snapshot
   read through Arrow's local filesystem, streamed (``to_batches``) with ``qty`` cast into
   ``write_deltalake(mode="overwrite", schema_mode="overwrite")``, then the file with its
   audit columns appended with its marker (two commits). ``deltalake_one_commit``: the
   rewritten rows and the file's rows in one overwrite commit (fewer steps, but a kill
   can no longer leave the wider table without the file). The results are checked equal:
   rows, schema, a checksum of every value (DuckDB) and the file's marker. Reported
   against the faster delta-rs method, also paired per repeat. Not run by default
   (``--only widen``): minutes, and ~1 GB of disk at 5M rows.

Results go to the ``## Load`` section of ``bench/RESULTS.md`` (only that section); a run
of some scenarios keeps the others' figures from the previous run (``--only widen``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent / "src"))

from common import machine_note, md_table, package_versions, write_section  # noqa: E402

T0 = datetime(2024, 1, 1, tzinfo=UTC)
LOAD1 = datetime(2024, 2, 1, tzinfo=UTC)
LOAD2 = datetime(2024, 2, 2, tzinfo=UTC)
CITIES = ["Zürich", "Berlin", "Lisboa", "東京", "New York", None]


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------ data


def make_table(n: int, *, changed_every: int = 0) -> pa.Table:
    """n rows x 10 columns; with changed_every=10, every 10th row differs (10 %)."""
    ids = pa.array(range(n), pa.int64())
    idx = pc.cast(ids, pa.int64())
    mark = [False] * n
    if changed_every:
        mark = [i % changed_every == 3 for i in range(n)]
    names = [f"customer {i}{' v2' if m else ''}" for i, m in enumerate(mark)]
    return pa.table(
        {
            "id": ids,
            "name": pa.array(names, pa.string()),
            "email": pa.array([f"c{i}@example.com" for i in range(n)], pa.string()),
            "city": pa.array([CITIES[i % len(CITIES)] for i in range(n)], pa.string()),
            "qty": pc.multiply(pc.remainder(idx, 97), 3),
            "score": pa.array([(i * 7919 % 10007) / 7.0 for i in range(n)], pa.float64()),
            "active": pa.array([i % 3 != 0 for i in range(n)], pa.bool_()),
            "category": pa.array([("a", "b", "c", "d")[i % 4] for i in range(n)], pa.string()),
            "created_at": pa.array(
                [T0 + timedelta(seconds=i) for i in range(n)], pa.timestamp("us", tz="UTC")
            ),
            "balance": pa.array(
                [
                    None if i % 11 == 0 else float(i % 5000) + (0.5 if m else 0)
                    for i, m in enumerate(mark)
                ],
                pa.float64(),
            ),
        }
    )


# ---------------------------------------------------------------------------- append


def bench_append(n: int, repeats: int, work: Path) -> dict[str, Any]:
    from deltalake import CommitProperties, Transaction, write_deltalake

    table = make_table(n)
    from onceflow.load.append import apply_append
    from onceflow.warehouse import markers

    label = "onceflow apply_append"

    times: dict[str, list[float]] = {"parquet": [], "onceflow": [], "deltalake_floor": []}
    for r in range(repeats):
        path = work / f"plain_{r}.parquet"
        times["parquet"].append(timed(lambda path=path: pq.write_table(table, path)))
        uri = str(work / f"append_{r}")
        # an existing table: its first file is not timed
        write_deltalake(uri, _audit(table.slice(0, 10), "f0"), mode="append")

        def run(uri: str = uri) -> None:
            from deltalake import DeltaTable

            props = markers.commit_properties(
                markers.Applied("src/t/202501/01/f1.parquet", "0" * 64, "f1-000000000000")
            )
            apply_append(
                DeltaTable(uri),
                table,
                source_file="/lake/f1.parquet",
                load_time=LOAD1,
                batch_id="f1-000000000000",
                commit_properties=props,
            )

        times["onceflow"].append(timed(run))
        # the delta-rs floor: the same rows + audit columns (built vectorized), one append
        floor_uri = str(work / f"append_floor_{r}")
        write_deltalake(floor_uri, _audit(table.slice(0, 10), "f0"), mode="append")

        def floor(uri: str = floor_uri) -> None:
            props = CommitProperties(
                custom_metadata={"onceflow.file": "/lake/f1.parquet"},
                app_transactions=[Transaction(app_id="onceflow.load:bench", version=1)],
            )
            write_deltalake(uri, _audit(table, "f1"), mode="append", commit_properties=props)

        times["deltalake_floor"].append(timed(floor))
        shutil.rmtree(uri)
        shutil.rmtree(floor_uri)
        path.unlink()
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "label": label,
        "times": times,
        "median": med,
        "ratio": med["onceflow"] / med["parquet"],
    }


def _audit(table: pa.Table, name: str) -> pa.Table:
    """The audit columns as an expert builds them: vectorised constants (pa.repeat), not
    Python lists (a 1M-element list costs ~60 ms of the timed section)."""
    n = table.num_rows
    return (
        table.append_column("_source_file", pa.repeat(pa.scalar(name, pa.string()), n))
        .append_column(
            "_load_timestamp", pa.repeat(pa.scalar(LOAD1, pa.timestamp("us", tz="UTC")), n)
        )
        .append_column("_batch_id", pa.repeat(pa.scalar(name, pa.string()), n))
    )


# ------------------------------------------------------------------------------ skip


def bench_skip(repeats: int, work: Path) -> dict[str, Any]:
    """Is a file already in the table? 25 file commits (as 25 loads leave them)."""
    from deltalake import DeltaTable, write_deltalake

    from onceflow import warehouse
    from onceflow.warehouse import markers

    uri = str(work / "skip")
    small = make_table(100)

    def ident(i: int) -> str:
        return f"src/t/202501/{i:02d}/p_202501{i:02d}.parquet"

    for i in range(1, 26):
        applied = markers.Applied(ident(i), f"{i:064d}", f"f{i}", f"2025-01-{i:02d}")
        props = markers.commit_properties(applied)
        write_deltalake(uri, small, mode="append", commit_properties=props)
        # each commit stands for one load run, which ends as onceflow's loader does
        warehouse.checkpoint_if_due(DeltaTable(uri))

    def loader_way() -> None:
        held = markers.read_markers(warehouse.open_table(uri), [ident(7)])
        assert held.holds(ident(7), f"{7:064d}")

    def loader_cold() -> None:  # a new process: nothing of the log cached yet
        markers.forget_cached_markers()
        loader_way()

    def txn_way() -> None:  # delta-rs alone: open the table, look the transaction up
        code = DeltaTable(uri).transaction_version(markers.app_id(ident(7)))
        assert code == markers.checksum_code(f"{7:064d}")

    runs = max(20, repeats * 10)
    out: dict[str, Any] = {"commits": 25, "runs": runs}
    methods = {
        "txn_version": txn_way,
        "onceflow read_markers+holds": loader_way,
        "onceflow read_markers+holds, cold (checkpoint + newer commits)": loader_cold,
    }
    for name, fn in methods.items():
        fn()  # warm
        samples = [timed(fn) for _ in range(runs)]
        out[name] = {"median_ms": statistics.median(samples) * 1000, "max_ms": max(samples) * 1000}
    return out


# ------------------------------------------------------------------------------ scd2

TRACKED = ["name", "email", "city", "qty", "score", "active", "category", "created_at", "balance"]


def scd2_cfg() -> Any:
    from onceflow.config import LoadConfig

    return LoadConfig(strategy="scd2", primary_key=["id"])


_DUCK: Any = None


def _duck() -> Any:
    """One in-process DuckDB database for every call, as an expert (and onceflow) keeps
    it: a new database costs 25-45 ms, a cursor of an open one under 1 ms."""
    global _DUCK
    import duckdb

    if _DUCK is None:
        _DUCK = duckdb.connect()
    return _DUCK.cursor()


def handwritten_scd2(
    uri: str, source: pa.Table, load_time: datetime, *, read: str = "arrow"
) -> int:
    """The simplest correct delta-rs SCD2: DuckDB diff + one 'merge key' merge.

    read="arrow": the current rows come through the snapshot's pyarrow dataset;
    read="duckdb": DuckDB scans the snapshot's Parquet files itself inside the diff
    (correct for this unpartitioned reader-v1 table; the faster read).
    """
    import pyarrow.fs as pafs
    from deltalake import DeltaTable

    dt = DeltaTable(uri)
    con = _duck()
    con.register("src", source)
    if read == "duckdb":
        files = ", ".join(f"'{unquote(f)}'" for f in dt.file_uris())
        con.execute(
            f"CREATE TEMP VIEW cur AS SELECT id, {', '.join(TRACKED)} "
            f"FROM read_parquet([{files}]) WHERE _is_current"
        )
    else:
        # Arrow's local filesystem, as onceflow reads: faster than delta-rs's default one
        local = pafs.SubTreeFileSystem(str(Path(uri).resolve()), pafs.LocalFileSystem())
        cur = dt.to_pyarrow_dataset(filesystem=local).to_table(
            columns=["id", *TRACKED],
            filter=pc.field("_is_current") == True,  # noqa: E712
        )
        con.register("cur", cur)
    differs = " OR ".join(f"s.{c} IS DISTINCT FROM c.{c}" for c in TRACKED)
    changed = con.sql(
        f"SELECT s.*, c.id IS NOT NULL AS existed FROM src s LEFT JOIN cur c ON s.id = c.id "
        f"WHERE c.id IS NULL OR {differs}"
    ).to_arrow_table()
    con.close()
    n = changed.num_rows
    ts = pa.timestamp("us", tz="UTC")
    rows = changed.drop_columns(["existed"])
    rows = (
        rows.append_column("_effective_from", pa.repeat(pa.scalar(load_time, ts), n))
        .append_column("_effective_to", pa.nulls(n, ts))
        .append_column("_is_current", pa.repeat(pa.scalar(True), n))
    )
    inserts = rows.append_column("merge_key", pa.nulls(n, pa.int64()))
    closes = rows.filter(changed.column("existed"))
    closes = closes.append_column("merge_key", closes.column("id"))
    merge_source = pa.concat_tables([inserts, closes])
    cols = [*rows.column_names]
    (
        dt.merge(
            merge_source,
            predicate="t.id = s.merge_key AND t._is_current = true",
            source_alias="s",
            target_alias="t",
        )
        .when_matched_update(updates={"_effective_to": "s._effective_from", "_is_current": "false"})
        .when_not_matched_insert(updates={c: f"s.{c}" for c in cols})
        .execute()
    )
    return int(dt.version())


def dlt_scd2(
    work: Path, tag: str, initial: pa.Table, source: pa.Table
) -> tuple[float, dict[str, int]]:
    """dlt scd2 into DuckDB: untimed initial load, timed second load."""
    import dlt
    import duckdb

    pipelines_dir = work / f"dlt_pipes_{tag}"
    db = work / f"dlt_{tag}.duckdb"
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_scd2_{tag}",
        pipelines_dir=str(pipelines_dir),
        destination=dlt.destinations.duckdb(str(db)),
        dataset_name="bench",
    )
    import os

    # dlt's scd2 needs a _dlt_id on Arrow rows (off by default for Arrow input)
    os.environ["NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_ID"] = "true"
    # and, for Arrow input, a content hash as the row version (dlt's recipe is
    # add_row_hash_to_table, which needs pandas; the same hash is computed here in DuckDB,
    # inside the timed section); without it every row counts as changed
    disposition = {
        "disposition": "merge",
        "strategy": "scd2",
        "row_version_column_name": "row_hash",
    }

    def load(data: pa.Table) -> None:
        with duckdb.connect() as con:
            con.register("data", data)
            cols = ", ".join(data.column_names)
            hashed = con.sql(
                f"SELECT *, (hash({cols}) >> 1)::BIGINT AS row_hash FROM data"
            ).to_arrow_table()
        resource = dlt.resource(hashed, name="dim", write_disposition=disposition)
        pipeline.run(resource)

    load(initial)
    elapsed = timed(lambda: load(source))

    with duckdb.connect(str(db), read_only=True) as con:
        retired, total = con.execute(
            "SELECT count(*) FILTER (WHERE _dlt_valid_to IS NOT NULL), count(*) FROM bench.dim"
        ).fetchall()[0]
    shutil.rmtree(pipelines_dir, ignore_errors=True)
    db.unlink(missing_ok=True)
    return elapsed, {"rows": int(total), "current": int(total) - int(retired)}


def bench_scd2(n: int, repeats: int, work: Path, with_dlt: bool) -> dict[str, Any]:
    from deltalake import CommitProperties, DeltaTable, Transaction

    from onceflow.load.scd2 import apply_scd2
    from onceflow.warehouse import snapshot_dataset

    cfg = scd2_cfg()
    initial = make_table(n)
    source = make_table(n, changed_every=10)
    base = str(work / "scd2_base")
    assert apply_scd2(base, initial, cfg, as_of=LOAD1).version == 0
    times: dict[str, list[float]] = {"onceflow": [], "handwritten": [], "handwritten_duckdb": []}
    if with_dlt:
        times["dlt"] = []
    checks: dict[str, Any] = {}
    methods = list(times)
    for r in range(repeats):
        # rotate the order each repeat: none always runs first (or after dlt's heavy run)
        for method in methods[r % len(methods) :] + methods[: r % len(methods)]:
            if method == "dlt":
                elapsed, checks["dlt"] = dlt_scd2(work, str(r), initial, source)
                times["dlt"].append(elapsed)
                continue
            uri = str(work / f"scd2_{method}_{r}")
            shutil.copytree(base, uri)
            props = CommitProperties(
                custom_metadata={"onceflow.file": "/lake/f2.parquet"},
                app_transactions=[Transaction(app_id="onceflow.load:bench", version=2)],
            )
            if method == "onceflow":
                fn = lambda uri=uri, props=props: apply_scd2(  # noqa: E731
                    uri, source, cfg, as_of=LOAD2, commit_properties=props
                )
            else:
                read = "duckdb" if method == "handwritten_duckdb" else "arrow"
                fn = lambda uri=uri, read=read: handwritten_scd2(  # noqa: E731
                    uri, source, LOAD2, read=read
                )
            times[method].append(timed(fn))
            table = snapshot_dataset(DeltaTable(uri))
            checks[method] = {
                "rows": table.count_rows(),
                "current": table.count_rows(filter=pc.field("_is_current") == True),  # noqa: E712
            }
            shutil.rmtree(uri)
    med = {k: statistics.median(v) for k, v in times.items()}
    out: dict[str, Any] = {"times": times, "median": med, "checks": checks}
    # against the faster of the two hand-written reads
    # paired: each repeat's onceflow time over the faster hand-written time of the same
    # repeat, then the median - on a shared machine a busy moment hits one repeat, not
    # one method
    paired = [
        o / min(a, b)
        for o, a, b in zip(
            times["onceflow"], times["handwritten"], times["handwritten_duckdb"], strict=True
        )
    ]
    out["paired"] = paired
    out["ratio_vs_handwritten"] = statistics.median(paired)
    if with_dlt:
        out["ratio_vs_dlt"] = med["onceflow"] / med["dlt"]
    return out


# -------------------------------------------------------------------- replace, replay

WINDOWS = 30


def write_extracted(lake: Path, table: pa.Table, *, day: int) -> Path:
    """A window's extract where and as the extractor writes it: the file, then its sidecar."""
    from onceflow.lake import file_checksum, output_path, write_sidecar
    from onceflow.windows import window_for

    run_date = datetime(2025, 1, 1, tzinfo=UTC).date() + timedelta(days=day)
    run_id = f"bench_{run_date:%Y%m%d}"
    path = output_path(str(lake), "src", "t", run_date, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    start, end = window_for(run_date, "UTC").iso()
    write_sidecar(
        path,
        {
            "extraction_complete": True,
            "checksum": file_checksum(path),
            "file_size_bytes": path.stat().st_size,
            "record_count": table.num_rows,
            "run_id": run_id,
            "window_start": start,
            "window_end": end,
            "snapshot_at": end,
        },
    )
    return path


def _window_lake(lake: Path, rows: int, scd2: bool) -> None:
    """30 daily extracts with sidecars (as the extractor writes them)."""
    base = make_table(rows)
    for day in range(WINDOWS):
        if scd2:  # every key each day; a tenth of them changes on each day
            table = make_table(rows, changed_every=10 if day % 2 else 0)
        else:  # new rows each day
            table = base.set_column(0, "id", pc.add(base.column("id"), day * rows))
        write_extracted(lake, table, day=day)


def _project(folder: Path, lake: Path, load_cfg: dict[str, Any]) -> Any:
    from onceflow.config import config_from_dict

    data = {
        "pipeline": "bench",
        "state": f"sqlite:///{folder / 'state.db'}",
        "lake": str(lake),
        "warehouse": str(folder / "warehouse"),
        "sources": {"src": {"url": "sqlite:///unused.db"}},
        "tables": [{"source": "src", "table": "t", "load": load_cfg}],
    }
    return config_from_dict(data, base_dir=str(folder))


def bench_replace(rows: int, repeats: int, work: Path) -> dict[str, Any]:

    from onceflow.load import load

    per_window = max(1, rows // WINDOWS)
    times: dict[str, list[float]] = {"first": [], "replace": []}
    for r in range(repeats):
        lake = work / f"replace_lake_{r}"
        _window_lake(lake, per_window, scd2=False)
        last = sorted(lake.rglob("*.parquet"))[-1]
        aside = last.with_suffix(".aside")
        meta = last.with_name(last.stem + "_metadata.json")
        last.rename(aside)
        meta.rename(meta.with_suffix(".aside"))
        cfg = _project(work / f"replace_{r}", lake, {"strategy": "append"})
        assert load(cfg).ok  # 29 windows, not timed
        aside.rename(last)
        meta.with_suffix(".aside").rename(meta)
        first = timed(lambda cfg=cfg: load(cfg))
        # re-extract the 15th window with new content, then time its replacement
        changed = make_table(per_window).set_column(
            1, "name", pa.repeat(pa.scalar("re-extracted"), per_window)
        )
        write_extracted(lake, changed, day=14)
        summary: Any = None

        def replace(cfg: Any = cfg) -> None:
            nonlocal summary
            summary = load(cfg)

        elapsed = timed(replace)
        assert summary.ok and summary.counts()["replaced"] == 1, summary.as_dict()
        times["first"].append(first)
        times["replace"].append(elapsed)
        shutil.rmtree(lake)
        shutil.rmtree(work / f"replace_{r}")
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "rows_per_window": per_window,
        "times": times,
        "median": med,
        "ratio": med["replace"] / med["first"],
    }


def bench_replay(rows: int, repeats: int, work: Path) -> dict[str, Any]:

    from onceflow.load import load

    per_window = max(1, rows // WINDOWS)
    times: dict[str, list[float]] = {"clean": [], "replay": []}
    scd2 = {"strategy": "scd2", "primary_key": ["id"]}
    for r in range(repeats):
        lake = work / f"replay_lake_{r}"
        _window_lake(lake, per_window, scd2=True)
        cfg = _project(work / f"replay_{r}", lake, scd2)
        summary: Any = None

        def run(cfg: Any = cfg) -> None:
            nonlocal summary
            summary = load(cfg)

        times["clean"].append(timed(run))
        assert summary.ok
        fixed = make_table(per_window).set_column(
            1, "name", pa.repeat(pa.scalar("fixed"), per_window)
        )
        write_extracted(lake, fixed, day=0)
        times["replay"].append(timed(run))
        assert summary.ok and summary.counts()["replayed"] == WINDOWS, summary.as_dict()
        shutil.rmtree(lake)
        shutil.rmtree(work / f"replay_{r}")
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "rows_per_window": per_window,
        "times": times,
        "median": med,
        "ratio": med["replay"] / med["clean"],
    }


# ----------------------------------------------------------------------------- widen

WIDEN_METHODS = ("onceflow", "deltalake", "deltalake_one_commit")
_INT32_PAST = 2**31 + 7  # added to every 1000th qty of the new file: it needs int64


def _widen_window(rows: int, window: int, *, wide: bool) -> pa.Table:
    """One window's extract: ``rows`` new ids; ``qty`` int32, or int64 with some values
    that int32 cannot hold (the source column was widened)."""
    table = make_table(rows)
    table = table.set_column(0, "id", pc.add(table.column("id"), window * rows))
    qty = table.column("qty")
    if wide:
        past = pa.array([_INT32_PAST if i % 1000 == 0 else 0 for i in range(rows)], pa.int64())
        qty = pc.add(qty, past)
    else:
        qty = qty.cast(pa.int32())
    return table.set_column(4, "qty", qty)


def _widen_setup(rows: int, windows: int, work: Path) -> dict[str, Any]:
    """The base project (``windows`` windows loaded, not timed) and the next window, the
    widened one, in the lake."""
    from onceflow.lake import file_checksum
    from onceflow.load import load
    from onceflow.warehouse import markers

    per_window = max(1, rows // windows)
    lake = work / "widen_lake"
    base = work / "widen_base"
    for w in range(windows):
        write_extracted(lake, _widen_window(per_window, w, wide=False), day=w)
    cfg = _project(base, lake, {"strategy": "append", "widen": True})
    summary = load(cfg)
    assert summary.ok and summary.counts()["loaded"] == windows, summary.as_dict()
    new_rows = per_window  # a window as large as the others
    path = write_extracted(lake, _widen_window(new_rows, windows, wide=True), day=windows)
    file_id = "/".join(path.parts[-5:])
    checksum = file_checksum(path)
    (uri,) = [str(p.parent) for p in (base / "warehouse").rglob("_delta_log")]
    return {
        "lake": str(lake),
        "base": str(base),
        "uri": uri,
        "table": str(Path(uri).relative_to(base)),
        "file": str(path),
        "file_id": file_id,
        "checksum": checksum,
        "batch_id": markers.batch_id_for(file_id, checksum),
        "app_id": markers.app_id(file_id),
        "app_version": markers.checksum_code(checksum),
        "window_start": None,
        "rows_before": per_window * windows,
        "windows": windows,
        "new_rows": new_rows,
    }


def _widen_onceflow(spec: dict[str, Any], folder: Path) -> None:
    from onceflow.load import load

    cfg = _project(folder, Path(spec["lake"]), {"strategy": "append", "widen": True})
    summary = load(cfg)
    assert summary.ok and summary.counts()["loaded"] == 1, summary.as_dict()


def _widen_deltalake(spec: dict[str, Any], folder: Path, *, one_commit: bool) -> None:
    """What an expert writes with delta-rs alone: the snapshot streamed through Arrow's
    local filesystem with ``qty`` cast, one overwrite that replaces the schema, then (or,
    with ``one_commit``, in the same commit) the file's rows with the audit columns and
    the file's marker (an application transaction)."""
    from collections.abc import Iterator

    import pyarrow.fs as pafs
    from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

    uri = str(folder / spec["table"])
    dt = DeltaTable(uri)
    old = pa.schema(dt.schema().to_arrow())
    schema = pa.schema([f.with_type(pa.int64()) if f.name == "qty" else f for f in old])
    local = pafs.SubTreeFileSystem(uri, pafs.LocalFileSystem())
    dataset = dt.to_pyarrow_dataset(filesystem=local)
    new = pq.read_table(spec["file"])
    ts = pa.timestamp("us", tz="UTC")
    n = new.num_rows
    new = (
        new.append_column("_source_file", pa.repeat(pa.scalar(spec["file_id"]), n))
        .append_column("_load_timestamp", pa.repeat(pa.scalar(datetime.now(UTC), ts), n))
        .append_column("_batch_id", pa.repeat(pa.scalar(spec["batch_id"]), n))
    ).cast(schema)
    props = CommitProperties(
        custom_metadata={"onceflow.file": spec["file_id"], "onceflow.batch_id": spec["batch_id"]},
        app_transactions=[Transaction(app_id=spec["app_id"], version=spec["app_version"])],
        max_commit_retries=0,
    )

    def rows() -> Iterator[pa.RecordBatch]:
        for batch in dataset.to_batches(columns=schema.names):
            yield batch.cast(schema)
        if one_commit:
            yield from new.to_batches()

    reader = pa.RecordBatchReader.from_batches(schema, rows())
    write_deltalake(
        dt,
        reader,
        mode="overwrite",
        schema_mode="overwrite",
        commit_properties=props if one_commit else None,
    )
    if not one_commit:
        dt.update_incremental()
        write_deltalake(dt, new, mode="append", commit_properties=props)


def _widen_check(uri: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Rows, schema, a checksum of every value and the file's marker: equal between the
    methods. ``_load_timestamp`` of the new rows is the time of the load: left out."""
    from deltalake import DeltaTable

    from onceflow.warehouse import snapshot_dataset

    dt = DeltaTable(uri)
    con = _duck()
    con.register("t", snapshot_dataset(dt))
    names = [f.name for f in dt.schema().fields]
    row = ", ".join(f'"{c}"' for c in names if c != "_load_timestamp")
    new = spec["file_id"].replace("'", "''")
    rows, checksum, stamps = con.execute(
        f"SELECT count(*), sum(hash({row})::HUGEINT), "
        f"sum(hash(_load_timestamp)::HUGEINT) FILTER (WHERE _source_file <> '{new}') FROM t"
    ).fetchone()
    con.close()
    return {
        "rows": int(rows),
        "schema": str(pa.schema(dt.schema().to_arrow())),
        "checksum": f"{checksum:x}",
        "old_load_timestamps": f"{stamps:x}",
        "marker": dt.transaction_version(spec["app_id"]),
    }


def widen_worker(method: str, spec_path: Path, folder: Path) -> None:
    """One measured run in a fresh process: prints the seconds after imports."""
    import json

    spec = json.loads(spec_path.read_text())
    t0 = time.perf_counter()
    if method == "onceflow":
        _widen_onceflow(spec, folder)
    else:
        _widen_deltalake(spec, folder, one_commit=method == "deltalake_one_commit")
    print(json.dumps({"inner_s": time.perf_counter() - t0}))


def bench_widen(rows: int, windows: int, repeats: int, work: Path) -> dict[str, Any]:
    import json

    from common import run_child

    spec = _widen_setup(rows, windows, work)
    spec_path = work / "widen_spec.json"
    spec_path.write_text(json.dumps(spec))
    base = Path(spec["base"])
    table_bytes = sum(p.stat().st_size for p in Path(spec["uri"]).rglob("*.parquet"))
    methods = list(WIDEN_METHODS)
    runs: dict[str, dict[str, list[float]]] = {
        m: {"wall": [], "inner": [], "rss_mib": []} for m in methods
    }
    checks: dict[str, Any] = {}
    for r in range(repeats):
        for method in methods[r % len(methods) :] + methods[: r % len(methods)]:
            folder = work / f"widen_{method}_{r}"
            shutil.copytree(base, folder)
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--widen-worker",
                method,
                str(spec_path),
                str(folder),
            ]
            res = run_child(cmd, cwd=folder, timeout_s=3600)
            assert res.ok, f"{method}: {res.error_text()}"
            inner = json.loads(res.stdout.strip().splitlines()[-1])["inner_s"]
            runs[method]["wall"].append(res.wall_s)
            runs[method]["inner"].append(inner)
            runs[method]["rss_mib"].append(res.peak_rss_mib)
            check = _widen_check(str(folder / spec["table"]), spec)
            if method in checks:
                assert checks[method] == check, (method, checks[method], check)
            checks[method] = check
            print(
                "widen", r, method, f"{res.wall_s:.2f}s", f"{res.peak_rss_mib:.0f} MiB", flush=True
            )
            shutil.rmtree(folder)
    first = checks[methods[0]]
    assert all(c == first for c in checks.values()), checks
    med = {m: {k: statistics.median(v) for k, v in runs[m].items()} for m in methods}
    best = min((m for m in methods if m != "onceflow"), key=lambda m: med[m]["wall"])
    # paired, as for scd2: each repeat's onceflow time over the faster delta-rs time of
    # the same repeat (a busy moment of the shared machine hits a repeat, not a method)
    others = [m for m in methods if m != "onceflow"]
    paired = [
        runs["onceflow"]["wall"][r] / min(runs[m]["wall"][r] for m in others)
        for r in range(repeats)
    ]
    return {
        "paired": paired,
        "paired_ratio": statistics.median(paired),
        "rows_before": spec["rows_before"],
        "new_rows": spec["new_rows"],
        "windows": windows,
        "table_mib": table_bytes / 2**20,
        "runs": runs,
        "median": med,
        "check": first,
        "best": best,
        "ratio": med["onceflow"]["wall"] / med[best]["wall"],
        "rss_ratio": med["onceflow"]["rss_mib"] / med[best]["rss_mib"],
    }


# ----------------------------------------------------------------------------- report


def _timing_row(label: str, c: dict[str, Any], key: str, digits: int) -> list[str]:
    """A table row: what, its median, each run (seconds)."""
    times = " ".join(f"{t:.{digits}f}" for t in c["times"][key])
    return [label, f"{c['median'][key]:.{digits}f}", times]


def _command(args: argparse.Namespace, only: list[str]) -> str:
    """The command line of a run that measured ``only`` (what RESULTS.md shows)."""
    parts = ["bench/load.py", f"--repeats {args.repeats}"]
    if set(only) - {"widen"}:
        parts.insert(1, f"--rows {args.rows}")
    if "widen" in only:
        parts.append(f"--widen-rows {args.widen_rows} --widen-windows {args.widen_windows}")
    if only != DEFAULT_SCENARIOS:
        parts.append("--only " + " ".join(only))
    return " ".join(parts)


def kept_results(args: argparse.Namespace) -> dict[str, Any]:
    """The previous run's results of the scenarios this run leaves out, each with the
    run that measured it (``run``): a run of some scenarios keeps the others' figures."""
    from common import RESULTS_MD, read_section_data

    data = read_section_data("load") or {}
    old: dict[str, Any] = data.get("results", {})
    if not old:
        return {}
    # results written before each kept its run: the section's header says which
    old_args = argparse.Namespace(**{"widen_rows": 0, **data.get("args", {})})
    found = re.search(
        r"## Load\n\nGenerated by .*? on (\S+ \S+) UTC; (.*?)\.\n"
        r"In-process wall time, medians of the repeats, methods interleaved\. (.*?)\.\n",
        RESULTS_MD.read_text(),
    )
    legacy = {
        "command": _command(old_args, [k for k in SCENARIOS if k in old]),
        "at": found.group(1) if found else "?",
        "machine": found.group(2) if found else "?",
        "versions": found.group(3) if found else "?",
        "rows": old_args.rows,
    }
    return {k: {"run": legacy, **v} for k, v in old.items() if k not in args.only}


def report(args: argparse.Namespace, results: dict[str, Any]) -> str:
    runs: dict[tuple[str, ...], list[str]] = {}
    for name in SCENARIOS:
        if name in results:
            run = results[name]["run"]
            key = (run["command"], run["at"], run["machine"], run["versions"])
            runs.setdefault(key, []).append(name)
    lines = ["## Load", ""]
    for (command, at, machine, versions), names in runs.items():
        lines.append(
            f"{', '.join(names)}: generated by `{command}` on {at} UTC; {machine}. {versions}."
        )
        lines.append("")
    lines += [
        "In-process wall time, medians of the repeats, methods interleaved (widen: fresh "
        "processes, see there).",
        "",
    ]
    if "append" in results:
        a = results["append"]
        lines += [
            f"### Append {a['run']['rows']:,} rows x 10 columns",
            "",
            md_table(
                ["method", "median s", "runs s", "ratio"],
                [
                    [
                        "pyarrow.parquet.write_table",
                        f"{a['median']['parquet']:.2f}",
                        " ".join(f"{t:.2f}" for t in a["times"]["parquet"]),
                        "1.00",
                    ],
                    [
                        "write_deltalake(append), same rows + audit columns (pa.repeat), "
                        "commit properties: the delta-rs floor",
                        f"{a['median']['deltalake_floor']:.2f}",
                        " ".join(f"{t:.2f}" for t in a["times"]["deltalake_floor"]),
                        f"{a['median']['deltalake_floor'] / a['median']['parquet']:.2f}",
                    ],
                    [
                        a["label"],
                        f"{a['median']['onceflow']:.2f}",
                        " ".join(f"{t:.2f}" for t in a["times"]["onceflow"]),
                        f"{a['ratio']:.2f}",
                    ],
                ],
            ),
            "",
            f"Goal <= 1.2x: **{'met' if a['ratio'] <= 1.2 else 'NOT met'}** ({a['ratio']:.2f}x). "
            "The parquet row writes 10 columns; the Delta rows write 13 (audit columns) and "
            "commit. The floor row separates what delta-rs itself costs from onceflow's code.",
            "",
        ]
    if "skip" in results:
        s = results["skip"]
        rows = [
            [name, f"{v['median_ms']:.1f}", f"{v['max_ms']:.1f}"]
            for name, v in s.items()
            if isinstance(v, dict) and "median_ms" in v
        ]
        worst = max(float(r[1]) for r in rows)
        lines += [
            f"### Skip decision for an already loaded file ({s['commits']} commits, "
            f"{s['runs']} runs)",
            "",
            md_table(["method", "median ms", "max ms"], rows),
            "",
            f"Goal < 20 ms: **{'met' if worst < 20 else 'NOT met'}**.",
            "",
        ]
    if "scd2" in results:
        c = results["scd2"]
        n = c["run"]["rows"]
        table_rows = []
        for name in ("onceflow", "handwritten", "handwritten_duckdb", "dlt"):
            if name not in c["median"]:
                continue
            ratio = c["median"]["onceflow"] / c["median"][name]
            table_rows.append(
                [
                    {
                        "onceflow": "onceflow apply_scd2",
                        "handwritten": "hand-written, Arrow reads the snapshot",
                        "handwritten_duckdb": "hand-written, DuckDB scans the files",
                        "dlt": "dlt merge/scd2 on DuckDB",
                    }[name],
                    f"{c['median'][name]:.2f}",
                    " ".join(f"{t:.2f}" for t in c["times"][name]),
                    f"{ratio:.2f}",
                ]
            )
        r = c["ratio_vs_handwritten"]
        lines += [
            f"### SCD2: {n:,} source rows into a {n:,}-row table, 10 % changed",
            "",
            md_table(["method", "median s", "runs s", "onceflow / method"], table_rows),
            "",
            "Paired ratios (each repeat's onceflow time over the faster hand-written time of "
            "that repeat): " + " ".join(f"{x:.2f}" for x in c["paired"]) + ". "
            f"Goal onceflow <= 1.1x the faster hand-written (median paired ratio): "
            f"**{'met' if r <= 1.1 else 'NOT met'}** "
            f"({r:.2f}x). Result checks (rows, current rows): "
            + "; ".join(f"{k}: {v['rows']:,}, {v['current']:,}" for k, v in c["checks"].items())
            + ". dlt writes to DuckDB, not Delta, and its timing includes its extract and "
            "normalize steps (it hashes every row); the initial load is not timed.",
            "",
        ]
    if "replace" in results:
        c = results["replace"]
        lines += [
            f"### Re-extracted window of a {WINDOWS}-window append table "
            f"({c['rows_per_window']:,} rows per window, `onceflow.load.load`)",
            "",
            md_table(
                ["what", "median s", "runs s"],
                [
                    _timing_row("load the 30th window the first time", c, "first", 3),
                    _timing_row("replace a re-extracted window (one commit)", c, "replace", 3),
                ],
            ),
            "",
            f"Goal <= 2x: **{'met' if c['ratio'] <= 2 else 'NOT met'}** ({c['ratio']:.2f}x).",
            "",
        ]
    if "replay" in results:
        c = results["replay"]
        lines += [
            f"### Replay of a {WINDOWS}-window SCD2 table after its first window changed "
            f"({c['rows_per_window']:,} keys per window)",
            "",
            md_table(
                ["what", "median s", "runs s"],
                [
                    _timing_row("clean load of the 30 windows into a new table", c, "clean", 2),
                    _timing_row("rewind + replay of the 30 windows", c, "replay", 2),
                ],
            ),
            "",
            f"Replay / clean load: {c['ratio']:.2f}x (no stated goal: recorded).",
            "",
        ]
    if "widen" in results:
        lines += _widen_report(results["widen"])
    return "\n".join(lines)


WIDEN_LABELS = {
    "onceflow": "onceflow `load`, `widen: true`: widening commit, then the file's append",
    "deltalake": "delta-rs alone: streamed overwrite with the cast, then the file's append",
    "deltalake_one_commit": "delta-rs alone: rewritten rows and the file's rows, one commit",
}


def _widen_report(c: dict[str, Any]) -> list[str]:
    written = c["rows_before"] + c["new_rows"]
    rows = []
    for method, med in c["median"].items():
        runs = c["runs"][method]
        rows.append(
            [
                WIDEN_LABELS[method],
                f"{med['wall']:.2f}",
                " ".join(f"{t:.2f}" for t in runs["wall"]),
                f"{med['inner']:.2f}",
                f"{med['rss_mib']:.0f}",
                " ".join(f"{m:.0f}" for m in runs["rss_mib"]),
                f"{written / med['wall'] / 1e6:.2f}",
                f"{c['median']['onceflow']['wall'] / med['wall']:.2f}",
            ]
        )
    check = c["check"]
    return [
        f"### Widen a column of a {c['rows_before']:,}-row append table (`qty` int32 -> "
        f"int64), with a {c['new_rows']:,}-row file",
        "",
        md_table(
            [
                "method",
                "wall s",
                "runs s",
                "after imports s",
                "peak RSS MiB",
                "runs MiB",
                "M rows/s",
                "onceflow / method",
            ],
            rows,
        ),
        "",
        f"Fresh processes, medians of {len(c['runs']['onceflow']['wall'])} runs (wall: the "
        "whole process, imports included; peak RSS: GNU time). The table: "
        f"{c['windows']} files, {c['table_mib']:.0f} MiB of Parquet. M rows/s: the rows "
        f"written ({written:,}: the table rewritten and the file appended) per wall second. "
        f"Against the faster delta-rs method (by median): **{c['ratio']:.2f}x** the wall "
        f"time, **{c['rss_ratio']:.2f}x** the peak RSS; paired ratios (each repeat's "
        "onceflow time over the faster delta-rs time of that repeat): "
        + " ".join(f"{x:.2f}" for x in c["paired"])
        + f", median **{c['paired_ratio']:.2f}x**. Results equal: {check['rows']:,} rows, "
        f"the same schema, checksum of every value (DuckDB, `_load_timestamp` of the new "
        f"rows left out) `{check['checksum']}`, the file's marker {check['marker']}.",
        "",
    ]


SCENARIOS = ["append", "skip", "scd2", "replace", "replay", "widen"]
DEFAULT_SCENARIOS = [s for s in SCENARIOS if s != "widen"]  # widen: ~2 GB of disk, minutes
BENCHES: dict[str, Callable[[argparse.Namespace, Path], dict[str, Any]]] = {
    "append": lambda a, work: bench_append(a.rows, a.repeats, work),
    "skip": lambda a, work: bench_skip(a.repeats, work),
    "scd2": lambda a, work: bench_scd2(a.rows, a.repeats, work, not a.no_dlt),
    "replace": lambda a, work: bench_replace(a.rows, a.repeats, work),
    "replay": lambda a, work: bench_replay(a.rows, a.repeats, work),
    "widen": lambda a, work: bench_widen(a.widen_rows, a.widen_windows, a.repeats, work),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=SCENARIOS, default=DEFAULT_SCENARIOS)
    parser.add_argument(
        "--widen-rows", type=int, default=5_000_000, help="rows of the table to widen"
    )
    parser.add_argument(
        "--widen-windows", type=int, default=50, help="files (windows) of the table to widen"
    )
    parser.add_argument("--no-dlt", action="store_true", help="leave dlt out of the scd2 run")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--widen-worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.widen_worker:
        method, spec, folder = args.widen_worker
        widen_worker(method, Path(spec), Path(folder))
        return
    args.only = [s for s in SCENARIOS if s in args.only]
    versions = package_versions(["deltalake", "pyarrow", "duckdb", "dlt", "onceflow"])
    run = {
        "command": _command(args, args.only),
        "at": f"{datetime.now(UTC):%Y-%m-%d %H:%M}",
        "machine": machine_note(),
        "versions": ", ".join(f"{k} {v}" for k, v in versions.items() if v != "not installed"),
    }
    results: dict[str, Any] = kept_results(args)
    with tempfile.TemporaryDirectory(prefix="onceflow_bench_load_") as tmp:
        work = Path(tmp)
        for name in args.only:
            rows = args.widen_rows if name == "widen" else args.rows
            results[name] = {**BENCHES[name](args, work), "run": {**run, "rows": rows}}
            print(name, results[name].get("median"), flush=True)
    body = report(args, results)
    print(body)
    if not args.no_write:
        write_section("load", body, {"args": vars(args), "results": results})


if __name__ == "__main__":
    main()
