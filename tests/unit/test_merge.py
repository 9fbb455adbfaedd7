"""Merge (upsert) scenarios: every change is one commit, a rerun is no commit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable

from onceflow.config import LoadConfig
from onceflow.errors import LoadError
from onceflow.load.merge import MergeOutcome, apply_merge
from onceflow.warehouse import read_table

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def cfg(**kw: Any) -> LoadConfig:
    kw.setdefault("primary_key", ["id"])
    return LoadConfig(strategy="merge", **kw)


def rows(uri: str, *keys: str) -> list[dict[str, Any]]:
    keys = keys or ("id",)
    out = read_table(uri).to_pylist()
    return sorted(out, key=lambda r: tuple(r[k] for k in keys))


def merge(uri: str, batch: pa.Table, c: LoadConfig, **kw: Any) -> int | None:
    """apply_merge, then a rerun that must make no commit, and unique keys."""
    version = apply_merge(uri, batch, c, **kw).version
    before = DeltaTable(uri).version() if DeltaTable.is_deltatable(uri) else None
    assert apply_merge(uri, batch, c).version is None
    if before is not None:
        assert DeltaTable(uri).version() == before
        table = read_table(uri)
        keys = [tuple(r[k] for k in c.primary_key) for r in table.to_pylist()]
        assert len(keys) == len(set(keys)), "duplicate keys in the table"
    return version


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return str(tmp_path / "t")


def test_insert_update_and_noop(uri: str) -> None:
    assert merge(uri, pa.table({"id": [1, 2], "x": ["a", "b"]}), cfg()) == 0
    assert merge(uri, pa.table({"id": [2, 3], "x": ["B", "c"]}), cfg()) == 1
    assert [(r["id"], r["x"]) for r in rows(uri)] == [(1, "a"), (2, "B"), (3, "c")]
    assert apply_merge(uri, pa.table({"id": [1, 3], "x": ["a", "c"]}), cfg()).version is None
    assert DeltaTable(uri).version() == 1


def test_only_changed_rows_are_rewritten(uri: str) -> None:
    apply_merge(uri, pa.table({"id": list(range(100)), "x": list(range(100))}), cfg())
    dt = DeltaTable(uri)
    xs = list(range(100))
    xs[5] = -5
    apply_merge(uri, pa.table({"id": list(range(100)), "x": xs}), cfg())
    metrics = DeltaTable(uri).history(1)[0]["operationMetrics"]
    assert metrics["num_source_rows"] == 1
    assert dt.version() == 0  # the old handle is unchanged; the table moved on
    assert DeltaTable(uri).version() == 1


def test_composite_key_is_joined_column_by_column(uri: str) -> None:
    c = cfg(primary_key=["a", "b"])
    assert merge(uri, pa.table({"a": ["a", "ab"], "b": ["bc", "c"], "v": [1, 2]}), c) == 0
    assert merge(uri, pa.table({"a": ["ab"], "b": ["c"], "v": [3]}), c) == 1
    got = [(r["a"], r["b"], r["v"]) for r in rows(uri, "a", "b")]
    assert got == [("a", "bc", 1), ("ab", "c", 3)]


def test_a_delete_flag_removes_its_key_never_inserts_it_and_is_not_a_column(uri: str) -> None:
    c = cfg(delete_column="deleted")
    first = pa.table({"id": [1, 2, 3], "x": ["a", "b", "c"], "deleted": [False, False, True]})
    assert merge(uri, first, c) == 0
    assert [r["id"] for r in rows(uri)] == [1, 2]  # a deleted new key is never inserted
    assert "deleted" not in DeltaTable(uri).schema().to_arrow().names
    second = pa.table({"id": [1, 2, 4], "x": ["a", "B", "d"], "deleted": [True, None, False]})
    assert merge(uri, second, c) == 1
    assert [(r["id"], r["x"]) for r in rows(uri)] == [(2, "B"), (4, "d")]


def test_the_outcome_counts_rows_inserted_updated_and_deleted(uri: str) -> None:
    c = cfg(delete_column="deleted")
    first = pa.table({"id": [1, 2, 3], "x": ["a", "b", "c"], "deleted": [False, False, True]})
    assert apply_merge(uri, first, c) == MergeOutcome(0, inserted=2)
    # 1 unchanged, 2 updated, 3 deleted but not in the table (nothing), 4 new, 5 deleted
    apply_merge(uri, pa.table({"id": [5], "x": ["e"], "deleted": [False]}), c)
    second = pa.table(
        {
            "id": [1, 2, 3, 4, 5],
            "x": ["a", "B", "c", "d", "e"],
            "deleted": [False, False, True, False, True],
        }
    )
    assert apply_merge(uri, second, c) == MergeOutcome(2, inserted=1, updated=1, deleted=1)
    assert apply_merge(uri, second, c) == MergeOutcome(None)


def test_delete_column_missing_is_an_error(uri: str) -> None:
    apply_merge(uri, pa.table({"id": [1], "x": [1]}), cfg())
    with pytest.raises(LoadError, match="delete column"):
        apply_merge(uri, pa.table({"id": [1], "x": [2]}), cfg(delete_column="gone"))
    assert DeltaTable(uri).version() == 0


def test_duplicate_keys_collapse_when_identical_else_the_latest_wins_or_are_refused(
    uri: str,
) -> None:
    # identical duplicates collapse
    assert merge(uri, pa.table({"id": [1, 1], "x": ["a", "a"]}), cfg()) == 0
    assert len(rows(uri)) == 1
    # different values and no order: error, table untouched
    with pytest.raises(LoadError, match="undefined"):
        apply_merge(uri, pa.table({"id": [1, 1], "x": ["b", "c"]}), cfg())
    assert DeltaTable(uri).version() == 0
    # ordered by the validity column: the latest wins
    c = cfg(validity_column="ts")
    batch = pa.table(
        {
            "id": [1, 1, 1],
            "x": ["late", "early", "mid"],
            "ts": [T0 + timedelta(2), T0, T0 + timedelta(1)],
        }
    )
    assert merge(uri, batch, c) == 1
    assert rows(uri)[0]["x"] == "late"
    tie = pa.table({"id": [1, 1], "x": ["p", "q"], "ts": [T0 + timedelta(5)] * 2})
    with pytest.raises(LoadError, match="ties"):
        apply_merge(uri, tie, c)
    assert DeltaTable(uri).version() == 1


def test_a_null_validity_is_loaded_when_its_key_is_alone_in_the_file(uri: str) -> None:
    # key 1 twice (its latest wins) must not cost keys 2 and 3 their rows: a NULL
    # validity compares to nothing, but a key's only row needs no order
    c = cfg(validity_column="ts")
    batch = pa.table(
        {
            "id": [1, 1, 2, 3],
            "x": ["a", "a2", "b", "c"],
            "ts": pa.array([T0, T0 + timedelta(1), None, None], pa.timestamp("us")),
        }
    )
    assert merge(uri, batch, c) == 0
    assert [(r["id"], r["x"]) for r in rows(uri)] == [(1, "a2"), (2, "b"), (3, "c")]
    # an update with a NULL validity, beside a key that appears twice: applied
    update = pa.table(
        {
            "id": [2, 4, 4],
            "x": ["b2", "d", "d2"],
            "ts": pa.array([None, T0, T0 + timedelta(1)], pa.timestamp("us")),
        }
    )
    assert merge(uri, update, c) == 1
    got = [(r["id"], r["x"]) for r in rows(uri)]
    assert got == [(1, "a2"), (2, "b2"), (3, "c"), (4, "d2")]


@pytest.mark.parametrize(
    "ts",
    [[None, None], [None, T0], [T0, None]],
    ids=["both-null", "null-first", "null-last"],
)
def test_rows_of_one_key_one_without_validity_are_refused_not_dropped(
    uri: str, ts: list[datetime | None]
) -> None:
    c = cfg(validity_column="ts")
    assert merge(uri, pa.table({"id": [9], "x": ["keep"], "ts": [T0]}), c) == 0
    batch = pa.table(
        {
            "id": [1, 1, 2, 3],
            "x": ["a", "b", "c", "d"],
            "ts": pa.array([*ts, T0, None], pa.timestamp("us", tz="UTC")),
        }
    )
    with pytest.raises(LoadError, match=r"1 key\(s\) .* a NULL 'ts' .*first key: 1\)"):
        apply_merge(uri, batch, c)
    assert DeltaTable(uri).version() == 0
    # identical rows without validity are one row: nothing to order
    nulls = pa.array([None, None], pa.timestamp("us", tz="UTC"))
    same = pa.table({"id": [1, 1], "x": ["a", "a"], "ts": nulls})
    assert merge(uri, same, c) == 1
    assert [(r["id"], r["x"]) for r in rows(uri)] == [(1, "a"), (9, "keep")]


def test_nulls_compare_equal(uri: str) -> None:
    batch = pa.table({"id": [1, 2], "x": [None, "b"], "n": [None, None]}, schema=None)
    merge(uri, batch, cfg())
    assert merge(uri, pa.table({"id": [1, 2], "x": ["a", "b"], "n": [None, None]}), cfg()) == 1
    assert merge(uri, pa.table({"id": [1], "x": [None]}), cfg()) == 2
    assert rows(uri)[0]["x"] is None


def test_missing_key_and_type_change_leave_the_table_untouched(uri: str) -> None:
    apply_merge(uri, pa.table({"id": [1], "amount": [10]}), cfg())
    with pytest.raises(LoadError, match="primary key"):
        apply_merge(uri, pa.table({"ident": [1], "amount": [1]}), cfg())
    with pytest.raises(LoadError, match="NULL"):
        apply_merge(uri, pa.table({"id": [None, 2], "amount": [1, 2]}), cfg())
    with pytest.raises(LoadError, match="incompatible type change"):
        apply_merge(uri, pa.table({"id": [1], "amount": ["ten"]}), cfg())
    assert DeltaTable(uri).version() == 0


def test_new_column_evolves_the_schema_and_missing_columns_are_kept(uri: str) -> None:
    apply_merge(uri, pa.table({"id": [1, 2], "x": ["a", "b"], "y": [1, 2]}), cfg())
    assert merge(uri, pa.table({"id": [2, 3], "x": ["B", "c"], "email": ["e", None]}), cfg()) == 1
    got = [(r["id"], r["x"], r["y"], r["email"]) for r in rows(uri)]
    assert got == [(1, "a", 1, None), (2, "B", 2, "e"), (3, "c", None, None)]


def test_audit_columns_do_not_count_as_changes(uri: str) -> None:
    apply_merge(uri, pa.table({"id": [1], "x": [1], "_batch_id": ["b1"]}), cfg())
    assert (
        apply_merge(uri, pa.table({"id": [1], "x": [1], "_batch_id": ["b2"]}), cfg()).version
        is None
    )


def test_commit_properties_and_empty_batches(uri: str) -> None:
    empty = pa.table({"id": pa.array([], pa.int64()), "x": pa.array([], pa.int64())})
    assert apply_merge(uri, empty, cfg()).version is None
    assert not DeltaTable.is_deltatable(uri)
    props = CommitProperties(custom_metadata={"onceflow.file": "f1"})
    apply_merge(uri, pa.table({"id": [1], "x": [1]}), cfg(), commit_properties=props)
    props = CommitProperties(custom_metadata={"onceflow.file": "f2"})
    apply_merge(uri, pa.table({"id": [1], "x": [2]}), cfg(), commit_properties=props)
    assert [h.get("onceflow.file") for h in DeltaTable(uri).history()] == ["f2", "f1"]
    assert apply_merge(uri, empty, cfg()).version is None


def test_a_batch_planned_on_a_stale_snapshot_conflicts_instead_of_building_on_newer_data(
    uri: str,
) -> None:
    from deltalake.exceptions import CommitFailedError

    c = cfg()
    apply_merge(uri, pa.table({"id": pa.array([1, 2], pa.int64()), "v": ["a", "b"]}), c)
    stale = DeltaTable(uri)
    apply_merge(uri, pa.table({"id": pa.array([1], pa.int64()), "v": ["B"]}), c)
    with pytest.raises(CommitFailedError):
        apply_merge(
            uri,
            pa.table({"id": pa.array([2], pa.int64()), "v": ["C"]}),
            c,
            commit_properties=CommitProperties(max_commit_retries=0),
            table=stale,
        )
    assert DeltaTable(uri).version() == 1
