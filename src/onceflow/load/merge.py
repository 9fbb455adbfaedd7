"""Merge (upsert) a batch into a Delta table on its primary key, in one commit.

* The primary key is one or more columns, joined column by column; NULL keys are
  rejected. Matched rows get every column of the batch (table columns the batch lacks
  keep their values); unmatched rows are inserted (missing columns NULL).
* ``cfg.delete_column``: a row whose flag is true deletes the table's row of that key
  and is never inserted (a NULL flag is false). The flag column itself is not stored.
* Several rows of one key in a batch: identical rows collapse; otherwise the row with
  the latest ``cfg.validity_column`` wins. Without a validity column, when the latest
  rows tie with different values, or when one of the rows has a NULL validity, the order
  is undefined and LoadError says so. A key's only row needs no order: a NULL validity
  is loaded. The validity only orders rows of one file, compared as they are (a naive
  one as wall time), never with an instant: the pipeline's time zone does not matter.
* What differs from the table is computed first in DuckDB (NULL-safe, ignoring the
  loader's audit columns): only changed rows go into the merge, and when nothing differs
  there is no commit (None) - so a rerun of the same batch changes nothing. The
  outcome counts the rows inserted, updated and deleted (`MergeOutcome`).
* The merge has one unconditional update clause and one unconditional insert clause
  (delta-rs 1.6 is ~10x slower with a condition on the update clause); only when the
  batch deletes something is a conditional delete clause placed before them.
* Schema: a new nullable column is added to the table; an incompatible type change
  raises LoadError before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset

from onceflow.errors import LoadError
from onceflow.load.keyed import OPEN_LATEST, check_keys, dq
from onceflow.warehouse import (
    AUDIT_COLUMNS,
    conform_batch,
    create_table,
    open_table,
    read_snapshot,
    snapshot_dataset,
)
from onceflow.warehouse.duck import describe_key, duck, null_safe_equal, row_ids, scalar

if TYPE_CHECKING:
    import deltalake
    import duckdb

    from onceflow.config import LoadConfig

DELETE_FLAG = "__onceflow_delete"


@dataclass(frozen=True)
class MergeOutcome:
    """What one batch did: the new version (None: nothing differed, no commit), and the
    table's rows it inserted (new keys), updated (a key's values changed) and deleted
    (`delete_column`)."""

    version: int | None
    inserted: int = 0
    updated: int = 0
    deleted: int = 0


def _delete_flags(batch: pa.Table, cfg: LoadConfig, table_uri: str) -> pa.Array:
    n = batch.num_rows
    if cfg.delete_column is None:
        return pa.repeat(pa.scalar(False), n)
    name = cfg.delete_column
    if name not in batch.column_names:
        raise LoadError(f"delete column {name!r} missing from the file; {table_uri} is untouched")
    column = batch.column(name).combine_chunks()
    if pa.types.is_boolean(column.type):
        flags = column
    elif pa.types.is_integer(column.type):
        flags = pc.not_equal(column, 0)
    else:
        raise LoadError(f"delete column {name!r} must be boolean (or 0/1), not {column.type}")
    return pc.fill_null(flags, False)


def _validity(data: pa.Table, cfg: LoadConfig, table_uri: str) -> pa.ChunkedArray | None:
    if not cfg.validity_column:
        return None
    if cfg.validity_column not in data.column_names:
        raise LoadError(
            f"validity column {cfg.validity_column!r} missing from the file; "
            f"{table_uri} is untouched"
        )
    return data.column(cfg.validity_column)


def _narrow(
    data: pa.Table, keys: list[str], compared: list[str], flags: pa.Array, validity: Any
) -> pa.Table:
    """k*, c*, del, rid (and v): what the planning joins need of the file."""
    arrays = [data.column(k) for k in keys] + [data.column(c) for c in compared]
    names = [*(f"k{i}" for i in range(len(keys))), *(f"c{i}" for i in range(len(compared)))]
    arrays += [flags, row_ids(data.num_rows)]
    names += ["del", "rid"]
    if validity is not None:
        arrays.append(validity)
        names.append("v")
    return pa.table(arrays, names=names)


def _one_row_per_key(
    con: duckdb.DuckDBPyConnection, kl: str, group: str, cfg: LoadConfig, table_uri: str
) -> str:
    """The file's rows with one per key: identical rows collapse, the latest validity
    wins; still several per key is ambiguous (LoadError), and so is a NULL validity among
    them. Returns the relation's name."""
    most = scalar(con, f"SELECT max(n) FROM (SELECT count(*) n FROM nb GROUP BY {kl})")
    if not most or most <= 1:
        return "nb"
    con.execute(
        f"CREATE TEMP TABLE b0 AS SELECT * FROM nb WHERE rid IN "
        f"(SELECT max(rid) FROM nb GROUP BY {group})"
    )
    rows = "b0"
    if cfg.validity_column:
        _refuse_unordered(con, kl, cfg.validity_column, table_uri)
        # a key's only row stays whatever its validity (NULL included): nothing to order
        con.execute(
            f"CREATE TEMP TABLE b1 AS SELECT * FROM b0 WINDOW w AS (PARTITION BY {kl}) "
            f"QUALIFY count(*) OVER w = 1 OR v = max(v) OVER w"
        )
        rows = "b1"
    several = f"SELECT {kl} FROM {rows} GROUP BY {kl} HAVING count(*) > 1"
    bad = scalar(con, f"SELECT count(*) FROM ({several})")
    if bad:
        example = describe_key(con, f"{several} ORDER BY ALL")
        how = (
            f"their latest {cfg.validity_column!r} ties"
            if cfg.validity_column
            else "no `validity_column` orders them"
        )
        raise LoadError(
            f"{bad} key(s) appear more than once in the file with different values and "
            f"{how}, so which row wins is undefined (first key: {example}); "
            f"{table_uri} is untouched",
            bad_rows=True,
        )
    return rows


def _refuse_unordered(
    con: duckdb.DuckDBPyConnection, kl: str, validity: str, table_uri: str
) -> None:
    """Rows of one key with different values, one of them without a validity: NULL is
    no time, neither earlier nor later (SQL engines sort it first or last as they
    please), so which row wins is undefined. Never dropped: refused."""
    several = f"SELECT {kl} FROM b0 GROUP BY {kl} HAVING count(*) > 1 AND count(v) < count(*)"
    bad = scalar(con, f"SELECT count(*) FROM ({several})")
    if bad:
        example = describe_key(con, f"{several} ORDER BY ALL")
        raise LoadError(
            f"{bad} key(s) appear more than once in the file with different values and "
            f"a NULL {validity!r} in at least one row, so which row wins is undefined "
            f"(first key: {example}); {table_uri} is untouched",
            bad_rows=True,  # the loader adds the repair: correct the source, re-extract
        )


def _changed_rows(
    con: duckdb.DuckDBPyConnection,
    rows: str,
    snapshot: pa.dataset.Dataset,
    data: pa.Table,
    keys: list[str],
    compared: list[str],
) -> pa.Table:
    """rid, del, hit of the rows that differ from the table (NULL-safe): inserts, updates
    and deletes of keys the table has (`hit`: it has the key). Nothing else goes into the
    merge."""
    target = snapshot.schema
    K = [f"k{i}" for i in range(len(keys))]
    C = [f"c{i}" for i in range(len(compared))]
    snap = read_snapshot(snapshot, [*keys, *(c for c in compared if c in target.names)])
    m = snap.num_rows
    cur_arrays = [snap.column(k).cast(data.schema.field(k).type) for k in keys]
    for c in compared:
        t = data.schema.field(c).type
        cur_arrays.append(snap.column(c).cast(t) if c in target.names else pa.nulls(m, t))
    cur = pa.table(cur_arrays, names=[f"t{k}" for k in K] + [f"t{c}" for c in C])
    con.register("cur", cur.append_column("hit", pa.repeat(pa.scalar(True), m)))
    on = " AND ".join(f"b.{k} = c.t{k}" for k in K)
    same = null_safe_equal([f"b.{c}" for c in C], [f"c.t{c}" for c in C])
    changed: pa.Table = con.sql(
        f"SELECT b.rid, b.del, c.hit IS NOT NULL AS hit FROM {rows} b LEFT JOIN cur c ON {on} "
        f"WHERE CASE WHEN b.del THEN c.hit IS NOT NULL "
        f"ELSE c.hit IS NULL OR NOT ({same}) END ORDER BY b.rid"
    ).to_arrow_table()
    return changed


def _merge(
    dt: deltalake.DeltaTable,
    data: pa.Table,
    changed: pa.Table,
    keys: list[str],
    new_columns: bool,
    commit_properties: Any,
) -> int:
    source = data.take(changed.column("rid"))
    deletes = bool(pc.any(changed.column("del")).as_py())
    if deletes:
        source = source.append_column(DELETE_FLAG, changed.column("del"))
    mapping = {dq(c): f"s.{dq(c)}" for c in data.column_names}
    merger = dt.merge(
        source,
        predicate=" AND ".join(f"t.{dq(k)} = s.{dq(k)}" for k in keys),
        source_alias="s",
        target_alias="t",
        merge_schema=new_columns,
        commit_properties=commit_properties,
    )
    if deletes:
        merger = merger.when_matched_delete(predicate=f"s.{dq(DELETE_FLAG)}")
    merger.when_matched_update(updates=mapping).when_not_matched_insert(updates=mapping).execute()
    return int(dt.version())


def apply_merge(
    table_uri: str,
    batch: pa.Table,
    cfg: LoadConfig,
    *,
    commit_properties: deltalake.CommitProperties | None = None,
    storage_options: dict[str, str] | None = None,
    table: deltalake.DeltaTable | None = OPEN_LATEST,
    create_empty: bool = False,
) -> MergeOutcome:
    """Upsert one batch into the Delta table; return the new version (None when nothing
    differs) and the rows inserted, updated and deleted.

    Exactly one commit (carrying ``commit_properties``) when something differs, none
    otherwise. Every error is raised before the commit, so the table is untouched.
    `table` is the snapshot to plan and commit against (None: there is no table yet).
    With `create_empty`, a batch with nothing to insert while there is no table yet (empty,
    or deletes only) still creates it, empty, in one commit.
    """
    keys = list(cfg.primary_key)
    check_keys(batch, keys, table_uri)
    if DELETE_FLAG in batch.column_names:
        raise LoadError(f"the file has a column named {DELETE_FLAG!r}, which onceflow reserves")
    flags = _delete_flags(batch, cfg, table_uri)
    data = batch.drop_columns([cfg.delete_column]) if cfg.delete_column else batch
    validity = _validity(data, cfg, table_uri)
    dt = open_table(table_uri, storage_options) if table is OPEN_LATEST else table
    # one dataset for the schema and the read: building it lists the snapshot's files
    snapshot = snapshot_dataset(dt) if dt is not None else None
    target = snapshot.schema if snapshot is not None else None
    if target is not None:
        missing = [k for k in keys if k not in target.names]
        if missing:
            raise LoadError(f"{table_uri} has no primary key column(s) {', '.join(missing)}")
    data, new = conform_batch(data, target, table_uri)
    compared = [c for c in data.column_names if c not in keys and c not in AUDIT_COLUMNS]
    kl = ", ".join(f"k{i}" for i in range(len(keys)))
    group = ", ".join(
        [*(f"k{i}" for i in range(len(keys))), *(f"c{i}" for i in range(len(compared))), "del"]
    )
    with duck() as con:
        con.register("nb", _narrow(data, keys, compared, flags, validity))
        rows = _one_row_per_key(con, kl, group, cfg, table_uri)
        if dt is None:
            picked = con.sql(f"SELECT rid FROM {rows} WHERE NOT del ORDER BY rid").to_arrow_table()
            if picked.num_rows == 0 and not create_empty:
                return MergeOutcome(None)
            version = create_table(
                table_uri,
                data.take(picked.column("rid")),
                storage_options=storage_options,
                commit_properties=commit_properties,
            )
            return MergeOutcome(version, inserted=picked.num_rows)
        assert snapshot is not None
        changed = _changed_rows(con, rows, snapshot, data, keys, compared)
    if changed.num_rows == 0:
        return MergeOutcome(None)
    version = _merge(dt, data, changed, keys, bool(new), commit_properties)
    gone, hit = changed.column("del"), changed.column("hit")
    deleted = int(pc.sum(pc.cast(gone, pa.int64())).as_py() or 0)
    updated = int(pc.sum(pc.cast(pc.and_(hit, pc.invert(gone)), pa.int64())).as_py() or 0)
    return MergeOutcome(version, changed.num_rows - updated - deleted, updated, deleted)
