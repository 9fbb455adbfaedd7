"""SCD2 (slowly changing dimension, type 2) into a Delta table, in one commit per batch.

The change set is computed in DuckDB over narrow Arrow tables (key columns, tracked
columns, validity, row ids) and applied with ONE unconditional delta-rs merge:

* *close* rows carry their key in extra merge-key columns and the new ``effective_to``;
  they match the target's current row of that key
  (``t.key = s.merge_key AND t.is_current = true``) and the unconditional
  ``when_matched_update`` sets ``effective_to`` and ``is_current = false``;
* every other source row is a new version; its merge key is NULL, so it never matches,
  and the unconditional ``when_not_matched_insert`` inserts its table columns.

A merge with a condition on its update clause is ~10x slower in delta-rs 1.6, hence
this shape: no clause has a condition.

Semantics (issue 3):

* the primary key is one or more columns, joined column by column (never concatenated);
  a NULL key value is rejected;
* tracking columns default to every non-key column except the SCD2 columns, the
  loader's audit columns (``_source_file``, ``_load_timestamp``, ``_batch_id``) and the
  validity column (its value is the version's ``effective_from``: a row whose only
  difference is a newer timestamp is no new version); NULLs compare equal to NULL;
* a row's validity is ``cfg.validity_column`` (business time, e.g. the extraction
  cursor) or the load time;
* per key, batch rows are sorted by validity and chained: each version's
  ``effective_to`` is the next version's ``effective_from``; a row equal (in its
  tracked values) to its predecessor - the previous batch row, or the current table
  row - is no change and is dropped; identical duplicates (same key, validity and
  tracked values) collapse; same key and validity with different tracked values is
  ambiguous and raises LoadError;
* a row whose information is already in the table's history (the version valid at the
  row's validity has the same tracked values) is dropped, so a rerun of a batch changes
  nothing and returns None; any other row not newer than the key's current version is
  *late*: LoadError, or dropped with ``late_rows: skip``;
* with ``hard_deletes: close`` the current version of every key absent from the batch
  is closed at the batch's validity (the load time, or the batch's latest validity).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset

from onceflow.errors import LoadError
from onceflow.load.keyed import OPEN_LATEST, check_keys, dq
from onceflow.warehouse import (
    AUDIT_COLUMNS,
    conform_batch,
    open_table,
    read_snapshot,
    snapshot_dataset,
)
from onceflow.warehouse.duck import describe_key, duck, null_safe_equal, row_ids, scalar

if TYPE_CHECKING:
    import deltalake
    import duckdb

    from onceflow.config import LoadConfig

# what _plan decides for each batch row
KNOWN, CHAIN, NEW, OLD, LATE = range(5)
TS = pa.timestamp("us", tz="UTC")
_NO_INSERTS = pa.table(
    {
        "rid": pa.array([], pa.int64()),
        "eff_to": pa.array([], TS),
        "is_cur": pa.array([], pa.bool_()),
    }
)


# ----------------------------------------------------------------------------- scd2


@dataclass(frozen=True)
class _Cols:
    keys: list[str]
    tracked: list[str]
    eff_from: str
    eff_to: str
    current: str


def _columns(batch: pa.Table, cfg: LoadConfig, table_uri: str) -> _Cols:
    scd = [cfg.effective_from_column, cfg.effective_to_column, cfg.is_current_column]
    if len(set(scd)) != 3:
        raise LoadError("effective_from, effective_to and is_current columns must be distinct")
    clash = [c for c in scd if c in batch.column_names]
    if clash:
        raise LoadError(
            f"the file has column(s) {', '.join(map(repr, clash))}, which are the SCD2 "
            f"columns of {table_uri}; rename them or configure other SCD2 column names"
        )
    check_keys(batch, cfg.primary_key, table_uri)
    if cfg.validity_column and cfg.validity_column not in batch.column_names:
        raise LoadError(
            f"validity column {cfg.validity_column!r} missing from the file; "
            f"{table_uri} is untouched"
        )
    if cfg.tracking_columns is not None:
        missing = [c for c in cfg.tracking_columns if c not in batch.column_names]
        if missing:
            raise LoadError(
                f"tracking column(s) {', '.join(map(repr, missing))} missing from the file; "
                f"{table_uri} is untouched"
            )
        tracked = [c for c in dict.fromkeys(cfg.tracking_columns) if c not in cfg.primary_key]
    else:
        skip = set(cfg.primary_key) | set(AUDIT_COLUMNS) | {cfg.validity_column}
        tracked = [c for c in batch.column_names if c not in skip]
    return _Cols(list(cfg.primary_key), tracked, *scd)


def _validity(batch: pa.Table, cfg: LoadConfig, load_time: datetime) -> pa.Array:
    if cfg.validity_column is None:
        return pa.repeat(pa.scalar(load_time, TS), batch.num_rows)
    column = batch.column(cfg.validity_column).combine_chunks()
    name = cfg.validity_column
    if column.null_count:
        raise LoadError(f"validity column {name!r} has {column.null_count} NULL value(s)")
    t = column.type
    try:
        if pa.types.is_timestamp(t):
            if t.tz is None:  # naive business time is taken as UTC
                column = column.cast(pa.timestamp("us")).cast(TS)
            else:
                column = column.cast(pa.timestamp("us", tz=t.tz)).cast(TS)
        elif pa.types.is_date(t):
            column = column.cast(pa.timestamp("us")).cast(TS)
        else:
            raise LoadError(f"validity column {name!r} must be a timestamp or a date, not {t}")
    except pa.ArrowInvalid as error:
        raise LoadError(f"validity column {name!r}: {error}") from None
    return column


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def apply_scd2(
    table_uri: str,
    batch: pa.Table,
    cfg: LoadConfig,
    *,
    load_time: datetime,
    commit_properties: deltalake.CommitProperties | None = None,
    storage_options: dict[str, str] | None = None,
    table: deltalake.DeltaTable | None = OPEN_LATEST,
    create_empty: bool = False,
) -> int | None:
    """Apply one batch as SCD2 to the Delta table; return the new version, or None.

    Exactly one commit (carrying ``commit_properties``) when something changed, none
    otherwise. Every error is raised before the commit, so the table is untouched.
    `table` is the snapshot to plan and commit against (None: there is no table yet),
    so a commit made by someone else since is a conflict, not silently built upon.
    With `create_empty`, a batch that changes nothing while there is no table yet still
    creates it, empty, in one commit (the loader's markers then name the file in the log).
    """
    from deltalake import write_deltalake

    load_time = _aware(load_time)
    dt = open_table(table_uri, storage_options) if table is OPEN_LATEST else table
    # one dataset for the schema and every read: building it lists the snapshot's files
    dataset = snapshot_dataset(dt) if dt is not None else None
    target = dataset.schema if dataset is not None else None
    cols = _columns(batch, cfg, table_uri)
    if target is not None:
        missing_scd = [
            c for c in (cols.eff_from, cols.eff_to, cols.current) if c not in target.names
        ]
        if missing_scd:
            raise LoadError(
                f"{table_uri} has no column(s) {', '.join(map(repr, missing_scd))}: it is not "
                "an SCD2 table with these column names"
            )
        missing_keys = [k for k in cols.keys if k not in target.names]
        if missing_keys:
            raise LoadError(
                f"{table_uri} has no primary key column(s) {', '.join(map(repr, missing_keys))}"
            )
    batch, _new = conform_batch(batch, target, table_uri)
    validity = _validity(batch, cfg, load_time)

    plan = _plan(dataset, batch, validity, cols, cfg, load_time, table_uri)
    if plan is None and not (create_empty and dt is None):
        return None
    inserts, closes = plan if plan is not None else (_NO_INSERTS, None)

    if dt is None:
        data = _insert_rows(batch, validity, inserts, cols, None)
        write_deltalake(
            table_uri,
            data,
            mode="error",  # created meanwhile by someone else: fail, do not add to it
            commit_properties=commit_properties,
            storage_options=storage_options,
        )
        created = open_table(table_uri, storage_options)
        assert created is not None
        return int(created.version())

    assert target is not None
    new_rows = _insert_rows(batch, validity, inserts, cols, target)
    close_rows = _close_rows(closes, new_rows.schema, cols)
    # The join runs on merge-key columns: a close row carries its key there, a new version
    # NULL, which joins nothing. Joined on the key itself, every new version of a changed
    # key would meet that key's current row, only for a source-side filter to drop the
    # pair (~5% of the merge at 10% changed rows).
    merge_keys = [f"__onceflow_merge_key_{i}" for i in range(len(cols.keys))]
    taken = [m for m in merge_keys if m in new_rows.column_names]
    if taken:
        raise LoadError(f"the file has column(s) {', '.join(taken)}, which onceflow reserves")
    columns = new_rows.column_names
    for key, name in zip(cols.keys, merge_keys, strict=True):
        key_type = new_rows.schema.field(key).type
        new_rows = new_rows.append_column(name, pa.nulls(new_rows.num_rows, key_type))
        close_rows = close_rows.append_column(name, close_rows.column(key))
    source = pa.concat_tables([new_rows, close_rows])
    on = " AND ".join(f"t.{dq(k)} = s.{dq(m)}" for k, m in zip(cols.keys, merge_keys, strict=True))
    (
        dt.merge(
            source,
            predicate=f"{on} AND t.{dq(cols.current)} = true",
            source_alias="s",
            target_alias="t",
            merge_schema=bool(_new),  # with an explicit insert, only the columns it names
            commit_properties=commit_properties,
        )
        .when_matched_update(
            updates={dq(cols.eff_to): f"s.{dq(cols.eff_to)}", dq(cols.current): "false"}
        )
        .when_not_matched_insert(updates={dq(c): f"s.{dq(c)}" for c in columns})
        .execute()
    )
    return int(dt.version())


def _insert_rows(
    batch: pa.Table,
    validity: pa.Array,
    inserts: pa.Table,
    cols: _Cols,
    target: pa.Schema | None,
) -> pa.Table:
    """The new versions: batch rows by id, plus effective_from/to and is_current."""
    rids = inserts.column("rid")
    rows = batch.take(rids)
    n = rows.num_rows
    data: dict[str, pa.ChunkedArray | pa.Array] = {}
    fields: list[pa.Field] = []
    scd = {cols.eff_from, cols.eff_to, cols.current}
    if target is not None:
        for field in target:
            if field.name in scd:
                continue
            if field.name in rows.column_names:
                data[field.name] = rows.column(field.name)
            else:
                data[field.name] = pa.nulls(n, field.type)
            fields.append(field.with_nullable(True))
    for field in rows.schema:
        if field.name not in data:
            data[field.name] = rows.column(field.name)
            fields.append(field.with_nullable(True))
    data[cols.eff_from] = validity.take(rids)
    data[cols.eff_to] = inserts.column("eff_to").cast(TS)
    data[cols.current] = inserts.column("is_cur")
    fields += [pa.field(cols.eff_from, TS), pa.field(cols.eff_to, TS)]
    fields.append(pa.field(cols.current, pa.bool_()))
    if target is not None:  # keep the table's column order
        order = [f.name for f in target] + [f.name for f in fields if f.name not in target.names]
        by_name = {f.name: f for f in fields}
        fields = [by_name[name] for name in order]
    schema = pa.schema(fields)
    return pa.table([data[f.name] for f in schema], schema=schema)


def _close_rows(closes: pa.Table, schema: pa.Schema, cols: _Cols) -> pa.Table:
    """Close rows: key columns + effective_to, is_current NULL, everything else NULL."""
    n = closes.num_rows
    arrays = []
    for field in schema:
        if field.name in cols.keys:
            arrays.append(closes.column(field.name).cast(field.type))
        elif field.name == cols.eff_to:
            arrays.append(closes.column("close_at").cast(TS))
        else:
            arrays.append(pa.nulls(n, field.type))
    return pa.table(arrays, schema=schema)


def _plan(
    snapshot: pa.dataset.Dataset | None,
    batch: pa.Table,
    validity: pa.Array,
    cols: _Cols,
    cfg: LoadConfig,
    load_time: datetime,
    table_uri: str,
) -> tuple[pa.Table, pa.Table] | None:
    """(new versions: rid, eff_to, is_cur; closes: key columns, close_at) or None."""
    nk, nt = len(cols.keys), len(cols.tracked)
    K = [f"k{i}" for i in range(nk)]
    C = [f"c{i}" for i in range(nt)]
    # narrow batch: k*, c*, v, rid
    narrow = pa.table(
        [batch.column(k) for k in cols.keys]
        + [batch.column(c) for c in cols.tracked]
        + [validity, row_ids(batch.num_rows)],
        names=[*K, *C, "v", "rid"],
    )
    target_names = set(snapshot.schema.names) if snapshot is not None else set()
    cur_names = [f"c{k}" for k in K] + [f"c{c}" for c in C] + ["cf"]

    def current_rows() -> pa.Table:
        """The target's current rows: ck*, cc*, cf, crid."""
        if snapshot is None:
            cur = pa.table(
                [pa.array([], batch.schema.field(k).type) for k in cols.keys]
                + [pa.array([], batch.schema.field(c).type) for c in cols.tracked]
                + [pa.array([], TS)],
                names=cur_names,
            )
            return cur.append_column("crid", row_ids(0))
        wanted = [*cols.keys, *[c for c in cols.tracked if c in target_names], cols.eff_from]
        snap = read_snapshot(snapshot, wanted, pc.field(cols.current) == True)  # noqa: E712
        m = snap.num_rows
        arrays = [snap.column(k).cast(batch.schema.field(k).type) for k in cols.keys]
        for c in cols.tracked:
            t = batch.schema.field(c).type
            arrays.append(snap.column(c).cast(t) if c in target_names else pa.nulls(m, t))
        arrays.append(snap.column(cols.eff_from).cast(TS))
        return pa.table(arrays, names=cur_names).append_column("crid", row_ids(m))

    kl = ", ".join(K)
    on = " AND ".join(f"b.{k} = c.c{k}" for k in K)
    same_cur = null_safe_equal([f"b.{c}" for c in C], [f"c.c{c}" for c in C])

    def classify(con: duckdb.DuckDBPyConnection, chained: bool, source: str) -> None:
        """Join the batch with the current rows; table j: the rows left to decide.

        kind: KNOWN already in the table, CHAIN newer than the current version, NEW key
        without a current version, OLD older than the current version, LATE rejected.
        With one row per key, a row equal to the current version is KNOWN at once; in a
        chain it may not be (B, then back to A), so the chain step decides. KNOWN rows
        are not kept: nothing after this needs them.
        """
        known_now = "same_cur" if not chained else "FALSE"
        tracked = f", {', '.join(C)}" if chained and C else ""
        con.execute("DROP TABLE IF EXISTS j")
        con.execute(
            f"CREATE TEMP TABLE j AS SELECT rid, v, cf, crid, has_cur, same_cur, CASE "
            f"WHEN has_cur AND v > cf THEN CASE WHEN {known_now} THEN {KNOWN} ELSE {CHAIN} END "
            f"WHEN has_cur AND v = cf THEN CASE WHEN same_cur THEN {KNOWN} ELSE {LATE} END "
            f"WHEN has_cur THEN {OLD} ELSE {NEW} END AS kind, {kl}{tracked} FROM ("
            f"SELECT b.*, c.cf, c.crid, c.crid IS NOT NULL AS has_cur, "
            f"({same_cur}) AS same_cur FROM {source} b LEFT JOIN cur c ON {on}) "
            f"WHERE kind <> {KNOWN}"  # typically most rows: keep only the rest
        )

    with duck() as con:
        con.register("nb", narrow)
        cur = current_rows()
        con.register("cur", cur)
        source = "nb"
        classify(con, chained=False, source=source)
        # ---- several rows of one key in the batch? Only keys of rows left to decide
        # matter: a key whose rows are all KNOWN has every row equal to its current
        # version, which the plain path gets right. So the batch is probed against those
        # keys (typically the changed ones) instead of grouping every batch row by key.
        # Each such key has one batch row exactly when the probe finds as many batch rows
        # as there are distinct keys.
        jk = f"(SELECT DISTINCT {kl} FROM j) d"
        semi = " AND ".join(f"b.{k} = d.{k}" for k in K)
        chained = bool(
            scalar(
                con,
                f"SELECT (SELECT count(*) FROM nb b SEMI JOIN {jk} ON {semi}) "
                f"- (SELECT count(*) FROM {jk})",
            )
        )
        if chained:
            dups = scalar(
                con, f"SELECT count(*) FROM (SELECT 1 FROM nb GROUP BY {kl}, v HAVING count(*) > 1)"
            )
            if dups:
                group = ", ".join([*K, *C, "v"])
                con.execute(
                    f"CREATE TEMP TABLE b1 AS SELECT * FROM nb WHERE rid IN "
                    f"(SELECT max(rid) FROM nb GROUP BY {group})"
                )
                source = "b1"
                bad = scalar(
                    con,
                    f"SELECT count(*) FROM (SELECT 1 FROM b1 GROUP BY {kl}, v HAVING count(*) > 1)",
                )
                if bad:
                    example = describe_key(
                        con,
                        f"SELECT {kl}, v FROM b1 GROUP BY {kl}, v HAVING count(*) > 1 "
                        f"ORDER BY ALL LIMIT 1",
                    )
                    raise LoadError(
                        f"ambiguous order: {bad} key(s) appear more than once in the file with "
                        f"the same validity and different tracked values (first: key and "
                        f"validity {example}); {table_uri} is untouched"
                    )
            classify(con, chained=True, source=source)
        settle, late = con.execute(
            f"SELECT count(*) FILTER (WHERE kind IN ({OLD}, {NEW})), "
            f"count(*) FILTER (WHERE kind = {LATE}) FROM j"
        ).fetchall()[0]
        if snapshot is not None and settle:
            _history(con, snapshot, batch, cols, K, C, target_names, source)
            late = scalar(con, f"SELECT count(*) FROM j WHERE kind = {LATE}")
        if late and cfg.late_rows == "reject":
            example = describe_key(
                con,
                f"SELECT {', '.join(f'b.{k}' for k in K)}, j.v, j.cf FROM j "
                f"JOIN {source} b USING (rid) WHERE kind = {LATE} ORDER BY ALL",
            )
            raise LoadError(
                f"{late} late row(s): not newer than the version already in {table_uri} "
                f"(first: key, validity, current version's start = {example}); "
                f"set `late_rows: skip` to drop them; the table is untouched"
            )
        # ---- chain the remaining rows per key
        if chained:
            prev = null_safe_equal(C, [f"p{c}" for c in C])
            lag = ", ".join(f"lag({c}) OVER w AS p{c}" for c in C) or "NULL AS p_"
            con.execute(
                f"CREATE TEMP TABLE kept AS SELECT rid, v, crid, has_cur, {kl} FROM ("
                f"SELECT j.*, row_number() OVER w AS rn, {lag} FROM j "
                f"WHERE kind IN ({CHAIN}, {NEW}) WINDOW w AS (PARTITION BY {kl} ORDER BY v)) "
                f"WHERE NOT (CASE WHEN rn = 1 THEN has_cur AND same_cur ELSE {prev} END)"
            )
            inserts = con.sql(
                f"SELECT rid, lead(v) OVER w AS eff_to, lead(v) OVER w IS NULL AS is_cur "
                f"FROM kept WINDOW w AS (PARTITION BY {kl} ORDER BY v) ORDER BY rid"
            ).to_arrow_table()
            close_sql = "SELECT crid, min(v) AS close_at FROM kept WHERE has_cur GROUP BY crid"
        else:
            # in row order: take() then reads the batch front to back (~2x faster)
            inserts = con.sql(
                f"SELECT rid, NULL::TIMESTAMPTZ AS eff_to, TRUE AS is_cur FROM j "
                f"WHERE kind IN ({CHAIN}, {NEW}) ORDER BY rid"
            ).to_arrow_table()
            close_sql = f"SELECT crid, v AS close_at FROM j WHERE kind = {CHAIN}"
        if cfg.hard_deletes == "close" and snapshot is not None:
            at = load_time
            if cfg.validity_column is not None and batch.num_rows:
                at = pc.max(validity).as_py()
            con.execute("CREATE TEMP TABLE del_at AS SELECT $1::TIMESTAMPTZ AS del_time", [at])
            close_sql += (
                f" UNION ALL SELECT crid, greatest(cf, (SELECT del_time FROM del_at)) FROM cur c "
                f"WHERE NOT EXISTS (SELECT 1 FROM nb b WHERE {on})"
            )
        closes = con.sql(f"{close_sql} ORDER BY crid").to_arrow_table()
    if inserts.num_rows == 0 and closes.num_rows == 0:
        return None
    close_keys = cur.select([f"c{k}" for k in K]).take(closes.column("crid"))
    close_table = pa.table(
        [close_keys.column(f"c{k}") for k in K] + [closes.column("close_at")],
        names=[*cols.keys, "close_at"],
    )
    return inserts, close_table


def _history(
    con: duckdb.DuckDBPyConnection,
    snapshot: pa.dataset.Dataset,
    batch: pa.Table,
    cols: _Cols,
    K: list[str],
    C: list[str],
    target_names: set[str],
    source: str,
) -> None:
    """Settle rows that are not newer than the current version, against closed versions.

    'old' rows (older than the key's current version) and 'new' rows of keys that have
    only closed versions: known when the version valid at the row's validity has the
    same tracked values, late otherwise; a 'new' row at or after the key's last close
    stays new (the key reappears).
    """
    wanted = [*cols.keys, *[c for c in cols.tracked if c in target_names]]
    wanted += [cols.eff_from, cols.eff_to]
    snap = read_snapshot(snapshot, wanted, pc.field(cols.current) == False)  # noqa: E712
    m = snap.num_rows
    arrays = [snap.column(k).cast(batch.schema.field(k).type) for k in cols.keys]
    for c in cols.tracked:
        t = batch.schema.field(c).type
        arrays.append(snap.column(c).cast(t) if c in target_names else pa.nulls(m, t))
    arrays += [snap.column(cols.eff_from).cast(TS), snap.column(cols.eff_to).cast(TS)]
    hist = pa.table(arrays, names=[*[f"h{k}" for k in K], *[f"h{c}" for c in C], "hf", "ht"])
    con.register("hist", hist)
    on = " AND ".join(f"b.{k} = h.h{k}" for k in K)
    same = null_safe_equal([f"b.{c}" for c in C], [f"h.h{c}" for c in C])
    # versions covering the row's validity, and each key's closed span
    con.execute(
        f"CREATE TEMP TABLE settled AS SELECT b.rid, j.kind, j.v, "
        f"bool_or(h.hf <= j.v AND j.v < h.ht AND {same}) AS known, "
        f"max(h.ht) AS last_close, count(h.hf) AS versions "
        f"FROM j JOIN {source} b USING (rid) LEFT JOIN hist h ON {on} "
        f"WHERE j.kind IN ({OLD}, {NEW}) GROUP BY b.rid, j.kind, j.v"
    )
    con.execute(
        f"UPDATE j SET kind = CASE "
        f"WHEN s.kind = {NEW} AND (s.versions = 0 OR s.v >= s.last_close) THEN {NEW} "
        f"WHEN s.known THEN {KNOWN} ELSE {LATE} END "
        f"FROM settled s WHERE j.rid = s.rid"
    )
