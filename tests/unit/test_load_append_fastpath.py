"""The append fast path: pyarrow writes the file, one add action commits it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from onceflow.load.append import apply_append, file_stats, replace_file_rows, with_audit_columns
from onceflow.warehouse import local_root, read_table, snapshot_dataset

LOAD_TIME = datetime(2025, 1, 23, 12, tzinfo=UTC)


def _batch(start: int, n: int) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(start, start + n), pa.int64()),
            "score": pa.array([float(i) / 3 for i in range(n)]),
            "name": pa.array([f"n{i % 7}" if i % 5 else None for i in range(n)]),
            "day": pa.array([date(2025, 1, 1 + i % 28) for i in range(n)]),
        }
    )


def _append(table: object, batch: pa.Table, seq: int) -> None:
    apply_append(
        table,
        batch,
        source_file=f"/lake/f{seq}.parquet",
        load_time=LOAD_TIME,
        batch_id=f"b{seq}",
        commit_properties=CommitProperties(
            custom_metadata={"onceflow.sequence": str(seq)},
            app_transactions=[Transaction("onceflow.load:t", seq)],
            max_commit_retries=0,
        ),
    )


def test_appends_commit_one_add_action_each_with_statistics(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    first = with_audit_columns(
        _batch(0, 10), source_file="/lake/f0.parquet", load_time=LOAD_TIME, batch_id="b0"
    )
    write_deltalake(uri, first)
    for seq in (1, 2):
        table = DeltaTable(uri)
        _append(table, _batch(seq * 1000, 500), seq)
        assert table.version() == seq  # the object reports the version it committed
    table = DeltaTable(uri)
    assert table.version() == 2
    assert table.transaction_version("onceflow.load:t") == 2
    actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    newest = max(actions, key=lambda a: a["min.id"] or -1)
    assert (newest["num_records"], newest["min.id"], newest["max.id"]) == (500, 2000, 2499)
    assert newest["null_count.name"] == 100
    # the audit constants' statistics are stated, not computed by the writer
    assert newest["min._source_file"] == newest["max._source_file"] == "/lake/f2.parquet"
    assert newest["min._batch_id"] == newest["max._batch_id"] == "b2"
    assert newest["null_count._batch_id"] == newest["null_count._load_timestamp"] == 0
    picked = snapshot_dataset(table).to_table(filter=pc.field("_batch_id") == "b1")
    assert picked.num_rows == 500
    data = snapshot_dataset(table).to_table()
    assert data.num_rows == 1010
    assert sorted(data.column("_batch_id").unique().to_pylist()) == ["b0", "b1", "b2"]
    # The audit constants are written as one-entry dictionaries; they read back plain.
    assert data.schema.field("_source_file").type == pa.string()
    assert data.schema.field("_load_timestamp").type == pa.timestamp("us", tz="UTC")
    assert set(data.column("_load_timestamp").to_pylist()) == {LOAD_TIME}
    # Data skipping uses the statistics; the filtered read must still be exact.
    picked = snapshot_dataset(table).to_table(filter=pc.field("id") >= 2000)
    assert sorted(picked.column("id").to_pylist()) == list(range(2000, 2500))


def test_a_new_column_falls_back_to_schema_evolution(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    write_deltalake(
        uri, with_audit_columns(_batch(0, 5), source_file="f", load_time=LOAD_TIME, batch_id="b")
    )
    wider = _batch(10, 5).append_column("extra", pa.array(["x"] * 5))
    _append(DeltaTable(uri), wider, 1)
    data = snapshot_dataset(DeltaTable(uri)).to_table()
    assert "extra" in data.column_names
    assert data.num_rows == 10


def test_file_stats_leave_out_values_they_cannot_state_exactly(tmp_path: Path) -> None:
    path = tmp_path / "f.parquet"
    collector: list[pq.FileMetaData] = []
    pq.write_table(
        pa.table(
            {
                "long": ["x" * 100, "y" * 100],
                "ts": pa.array([LOAD_TIME, LOAD_TIME], pa.timestamp("us", tz="UTC")),
                "n": [1, 2],
            }
        ),
        path,
        metadata_collector=collector,
    )
    import json

    stats = json.loads(file_stats(collector[0]))
    assert stats["numRecords"] == 2
    assert stats["minValues"] == {"n": 1} and stats["maxValues"] == {"n": 2}


def test_fast_path_writes_into_a_table_folder_whose_name_needs_percent_encoding(
    tmp_path: Path,
) -> None:
    # delta-rs reports this table as file:///.../my%20lake/t%25x/: the data file must go
    # into the real folder, not into a folder literally named "my%20lake".
    uri = str(tmp_path / "my lake" / "t%x")
    write_deltalake(
        uri, with_audit_columns(_batch(0, 5), source_file="f", load_time=LOAD_TIME, batch_id="b")
    )
    _append(DeltaTable(uri), _batch(5, 5), 1)
    assert not (tmp_path / "my%20lake").exists()
    assert sorted(read_table(uri).column("id").to_pylist()) == list(range(10))


def test_local_root_decodes_file_uris_and_leaves_remote_tables_alone() -> None:
    assert local_root("file:///lake/my%20table/") == "/lake/my table"
    assert local_root("/lake/plain") == "/lake/plain"
    assert local_root("s3://bucket/t") is None


def test_a_replace_takes_exactly_its_files_rows_not_a_namesake_in_a_subfolder(
    tmp_path: Path,
) -> None:
    # identities as standalone and pipeline loads write them, and absolute paths as a
    # table loaded before identities were kept holds them
    held = {
        "e0.parquet": 1,
        "sub/e0.parquet": 2,
        "xe0.parquet": 3,
        "sub/xe0.parquet": 4,
        "s/t/202501/01/p_1.parquet": 5,
        "a/s/t/202501/01/p_1.parquet": 6,
        "/old/lake/s/t/202501/01/p_1.parquet": 7,
        "/old/lake/s/t/202501/01/xp_1.parquet": 8,
    }
    uri = str(tmp_path / "t")
    for source_file, value in held.items():
        rows = with_audit_columns(
            pa.table({"id": [value]}), source_file=source_file, load_time=LOAD_TIME, batch_id="b"
        )
        write_deltalake(uri, rows, mode="append")

    def replace(source_file: str, value: int) -> dict[str, list[int]]:
        replace_file_rows(
            DeltaTable(uri),
            pa.table({"id": [value]}),
            source_file=source_file,
            load_time=LOAD_TIME,
            batch_id="b2",
            commit_properties=None,
        )
        table = read_table(uri)
        out: dict[str, list[int]] = {}
        for name, id_ in zip(
            table["_source_file"].to_pylist(), table["id"].to_pylist(), strict=True
        ):
            out.setdefault(name, []).append(id_)
        return {name: sorted(ids) for name, ids in out.items()}

    after = replace("e0.parquet", 10)
    assert after == {**{k: [v] for k, v in held.items()}, "e0.parquet": [10]}
    # the extract layout's identity also takes its rows loaded under an absolute path
    after = replace("s/t/202501/01/p_1.parquet", 50)
    assert "/old/lake/s/t/202501/01/p_1.parquet" not in after
    assert after["s/t/202501/01/p_1.parquet"] == [50]
    assert after["a/s/t/202501/01/p_1.parquet"] == [6]
    assert after["/old/lake/s/t/202501/01/xp_1.parquet"] == [8]
    assert after["sub/e0.parquet"] == [2] and after["e0.parquet"] == [10]
