"""SCD2 scenarios; the invariants are checked after every scenario."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable

from onceflow.config import LoadConfig
from onceflow.errors import LoadError
from onceflow.load import scd2
from onceflow.load.scd2 import apply_scd2
from onceflow.warehouse import open_table, read_table
from onceflow.warehouse.duck import parquet_scan

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


def cfg(**kw: Any) -> LoadConfig:
    kw.setdefault("primary_key", ["id"])
    return LoadConfig(strategy="scd2", **kw)


def rows(uri: str) -> list[dict[str, Any]]:
    out = read_table(uri).to_pylist()
    return sorted(out, key=lambda r: tuple(str(v) for v in r.values()))


def check_invariants(
    uri: str,
    keys: list[str],
    eff_from: str = "_effective_from",
    eff_to: str = "_effective_to",
    current: str = "_is_current",
) -> None:
    by_key: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in read_table(uri).to_pylist():
        by_key.setdefault(tuple(r[k] for k in keys), []).append(r)
    for key, versions in by_key.items():
        currents = [v for v in versions if v[current]]
        assert len(currents) <= 1, f"key {key}: {len(currents)} current rows"
        for v in versions:
            assert v[eff_from] is not None
            assert (v[eff_to] is None) == bool(v[current]), f"key {key}: {v}"
            if v[eff_to] is not None:
                assert v[eff_to] >= v[eff_from], f"key {key}: ends before it starts: {v}"
        ordered = sorted(versions, key=lambda v: v[eff_from])
        for a, b in itertools.pairwise(ordered):
            assert a[eff_to] is not None, f"key {key}: open version before another: {a}"
            assert a[eff_to] <= b[eff_from], f"key {key}: overlapping {a} and {b}"


def load(uri: str, batch: pa.Table, c: LoadConfig, when: datetime, **kw: Any) -> int | None:
    """apply_scd2, then the invariants, then a rerun that must change nothing."""
    version = apply_scd2(uri, batch, c, as_of=when, **kw).version
    keys = list(c.primary_key)
    names = dict(
        eff_from=c.effective_from_column, eff_to=c.effective_to_column, current=c.is_current_column
    )
    check_invariants(uri, keys, **names)
    before = DeltaTable(uri).version()
    assert apply_scd2(uri, batch, c, as_of=when + timedelta(hours=1)).version is None
    assert DeltaTable(uri).version() == before
    check_invariants(uri, keys, **names)
    return version


def current(uri: str, c: str = "_is_current") -> dict[Any, dict[str, Any]]:
    return {r["id"]: r for r in read_table(uri).to_pylist() if r[c]}


@pytest.fixture(params=["duckdb-reads-parquet", "arrow-delta-dataset"])
def uri(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every scenario twice: the planner reading the table's Parquet files in DuckDB, and
    through Arrow's Delta dataset (what remote, partitioned or reader-v2+ tables use)."""
    if request.param == "arrow-delta-dataset":
        monkeypatch.setattr(scd2, "parquet_scan", lambda dt: None)
    return str(tmp_path / "dim")


def test_new_keys_create_the_table_in_one_commit(uri: str) -> None:
    batch = pa.table({"id": [1, 2], "name": ["a", "b"]})
    assert load(uri, batch, cfg(), day(0)) == 0
    cur = current(uri)
    assert {k: v["name"] for k, v in cur.items()} == {1: "a", 2: "b"}
    assert all(v["_effective_from"] == day(0) and v["_effective_to"] is None for v in cur.values())
    # more new keys later
    assert load(uri, pa.table({"id": [1, 3], "name": ["a", "c"]}), cfg(), day(1)) == 1
    assert sorted(current(uri)) == [1, 2, 3]
    assert current(uri)[3]["_effective_from"] == day(1)
    assert len(rows(uri)) == 3


def test_changes_close_and_insert(uri: str) -> None:
    apply_scd2(uri, pa.table({"id": [1, 2], "name": ["a", "b"]}), cfg(), as_of=day(0))
    v = load(uri, pa.table({"id": [1, 2], "name": ["a", "B"]}), cfg(), day(1))
    assert v == 1
    history = [r for r in rows(uri) if r["id"] == 2]
    assert len(history) == 2
    old = next(r for r in history if not r["_is_current"])
    new = next(r for r in history if r["_is_current"])
    assert (old["name"], old["_effective_from"], old["_effective_to"]) == ("b", day(0), day(1))
    assert (new["name"], new["_effective_from"], new["_effective_to"]) == ("B", day(1), None)
    assert len([r for r in rows(uri) if r["id"] == 1]) == 1


def test_no_changes_make_no_commit(uri: str) -> None:
    batch = pa.table({"id": [1, 2], "name": ["a", "b"]})
    apply_scd2(uri, batch, cfg(), as_of=day(0))
    assert apply_scd2(uri, batch, cfg(), as_of=day(5)).version is None
    assert DeltaTable(uri).version() == 0
    check_invariants(uri, ["id"])


def test_tracking_columns_ignore_other_changes(uri: str) -> None:
    c = cfg(tracking_columns=["name"])
    apply_scd2(uri, pa.table({"id": [1], "name": ["a"], "note": ["x"]}), c, as_of=day(0))
    again = pa.table({"id": [1], "name": ["a"], "note": ["y"]})
    assert apply_scd2(uri, again, c, as_of=day(1)).version is None
    assert load(uri, pa.table({"id": [1], "name": ["b"], "note": ["y"]}), c, day(2)) == 1
    assert current(uri)[1]["note"] == "y"


@pytest.mark.parametrize("mode", ["ignore", "close"])
def test_deletes_in_a_full_extract(uri: str, mode: str) -> None:
    c = cfg(hard_deletes=mode)
    apply_scd2(uri, pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]}), c, as_of=day(0))
    result = load(uri, pa.table({"id": [1, 3], "name": ["a", "c"]}), c, day(1))
    if mode == "ignore":
        assert result is None
        assert sorted(current(uri)) == [1, 2, 3]
    else:
        assert result == 1
        assert sorted(current(uri)) == [1, 3]
        closed = next(r for r in rows(uri) if r["id"] == 2)
        assert closed["_effective_to"] == day(1) and closed["_is_current"] is False
        # the key comes back: a new version after the gap
        assert load(uri, pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]}), c, day(3)) == 2
        assert current(uri)[2]["_effective_from"] == day(3)
        assert len([r for r in rows(uri) if r["id"] == 2]) == 2


def test_a_business_time_delete_closes_at_the_snapshot_of_the_first_file_without_the_key(
    uri: str,
) -> None:
    # issue 8, case 9: not at the newest business time in the file (day 2), which would
    # close key 2 before day 9's extract that still held it
    c = cfg(hard_deletes="close", validity_column="updated_at")
    first = pa.table({"id": [1, 2], "name": ["a", "b"], "updated_at": [day(0), day(0)]})
    apply_scd2(uri, first, c, as_of=day(9))
    load(uri, pa.table({"id": [1], "name": ["a2"], "updated_at": [day(2)]}), c, day(10))
    closed = next(r for r in rows(uri) if r["id"] == 2)
    assert closed["_effective_to"] == day(10)


def test_a_key_twice_in_one_batch_is_chained(uri: str) -> None:
    c = cfg(validity_column="updated_at")
    apply_scd2(uri, pa.table({"id": [1], "name": ["a"], "updated_at": [day(0)]}), c, as_of=day(0))
    batch = pa.table(
        {
            "id": [1, 1, 1, 1, 2, 2],
            "name": ["c", "b", "b", "b", "x", "x"],  # unsorted; an identical duplicate
            "updated_at": [day(3), day(1), day(1), day(2), day(1), day(1)],
        }
    )
    assert load(uri, batch, c, day(4)) == 1
    history = sorted((r for r in rows(uri) if r["id"] == 1), key=lambda r: r["_effective_from"])
    got = [(r["name"], r["_effective_from"], r["_effective_to"]) for r in history]
    # b@day2 repeats b@day1 (no change): it is not a new version
    assert got == [("a", day(0), day(1)), ("b", day(1), day(3)), ("c", day(3), None)]
    assert [r["name"] for r in rows(uri) if r["id"] == 2] == ["x"]


@pytest.mark.parametrize(
    ("batch_rows", "expected"),
    [
        # back to the current value after a change: the last row equals the current
        # version, yet it is a new version (a -> b -> a)
        ([("b", 1), ("a", 2)], [("a", 0, 1), ("b", 1, 2), ("a", 2, None)]),
        # the current value repeated first, then a change: a stays until day 2
        ([("a", 1), ("b", 2)], [("a", 0, 2), ("b", 2, None)]),
        # a change sent twice, identically
        ([("b", 1), ("b", 1)], [("a", 0, 1), ("b", 1, None)]),
        # only repeats of the current version: nothing changes
        ([("a", 1), ("a", 2)], [("a", 0, None)]),
    ],
)
def test_a_key_whose_other_row_equals_the_current_version_is_still_chained(
    uri: str, batch_rows: list[tuple[str, int]], expected: list[tuple[str, int, int | None]]
) -> None:
    c = cfg(validity_column="updated_at")
    first = {"id": [1, 2], "name": ["a", "k"], "updated_at": [day(0), day(0)]}
    apply_scd2(uri, pa.table(first), c, as_of=day(0))
    batch = pa.table(
        {
            "id": [1] * len(batch_rows) + [2],
            "name": [name for name, _ in batch_rows] + ["k"],  # key 2: unchanged
            "updated_at": [day(d) for _, d in batch_rows] + [day(1)],
        }
    )
    version = load(uri, batch, c, day(3))
    assert version == (None if len(expected) == 1 else 1)
    history = sorted((r for r in rows(uri) if r["id"] == 1), key=lambda r: r["_effective_from"])
    got = [(r["name"], r["_effective_from"], r["_effective_to"]) for r in history]
    assert got == [(n, day(f), None if t is None else day(t)) for n, f, t in expected]
    assert [r["name"] for r in rows(uri) if r["id"] == 2] == ["k"]


def test_chained_batch_into_a_new_table(uri: str) -> None:
    c = cfg(validity_column="updated_at")
    batch = pa.table({"id": [1, 1], "name": ["b", "a"], "updated_at": [day(2), day(1)]})
    assert load(uri, batch, c, day(3)) == 0
    history = sorted(rows(uri), key=lambda r: r["_effective_from"])
    assert [(r["name"], r["_effective_to"]) for r in history] == [("a", day(2)), ("b", None)]


def test_ambiguous_duplicates_are_rejected(uri: str) -> None:
    c = cfg(validity_column="updated_at")
    apply_scd2(uri, pa.table({"id": [9], "name": ["z"], "updated_at": [day(0)]}), c, as_of=day(0))
    batch = pa.table({"id": [1, 1], "name": ["a", "b"], "updated_at": [day(1), day(1)]})
    # the example names the validity as an instant, not as a Python datetime's repr
    example = r"first: key and validity 1, 2024-01-02T00:00:00\+00:00\)"
    with pytest.raises(LoadError, match=example):
        apply_scd2(uri, batch, c, as_of=day(2))
    assert DeltaTable(uri).version() == 0
    # without a validity column every row has the load time: same rule
    example = r"first: key and validity 1, 2024-01-03T00:00:00\+00:00\)"
    with pytest.raises(LoadError, match=example):
        apply_scd2(uri, pa.table({"id": [1, 1], "name": ["a", "b"]}), cfg(), as_of=day(2))
    assert DeltaTable(uri).version() == 0


def test_late_row_is_rejected_or_skipped_and_counted(uri: str) -> None:
    reject = cfg(validity_column="updated_at", late_rows="reject")
    apply_scd2(
        uri,
        pa.table({"id": [1, 2], "name": ["a", "b"], "updated_at": [day(5)] * 2}),
        reject,
        as_of=day(5),
    )
    late = pa.table({"id": [1, 2], "name": ["old", "b2"], "updated_at": [day(3), day(6)]})
    with pytest.raises(LoadError, match="1 late row"):
        apply_scd2(uri, late, reject, as_of=day(7))
    assert DeltaTable(uri).version() == 0
    # the default skips it, and says how many (issue 8, case 11)
    outcome = apply_scd2(uri, late, cfg(validity_column="updated_at"), as_of=day(7))
    assert (outcome.version, outcome.rows_skipped) == (1, 1)
    cur = current(uri)
    assert cur[1]["name"] == "a" and cur[2]["name"] == "b2"
    assert len([r for r in rows(uri) if r["id"] == 1]) == 1
    check_invariants(uri, ["id"])


def test_a_silent_change_is_a_version_from_the_snapshot_not_a_late_row(uri: str) -> None:
    # issue 8, case 11: the source changed a row without moving its timestamp
    for late_rows in ("skip", "reject"):
        c = cfg(validity_column="updated_at", late_rows=late_rows)
        table = f"{uri}_{late_rows}"
        first = pa.table({"id": [1, 2], "name": ["a", "b"], "updated_at": [day(5)] * 2})
        apply_scd2(table, first, c, as_of=day(5))
        silent = pa.table({"id": [1, 2], "name": ["a", "b2"], "updated_at": [day(5)] * 2})
        outcome = apply_scd2(table, silent, c, as_of=day(8))
        assert (outcome.version, outcome.rows_skipped) == (1, 0)
        versions = sorted(
            (r["_effective_from"], r["_effective_to"], r["name"])
            for r in read_table(table).to_pylist()
            if r["id"] == 2
        )
        assert versions == [(day(5), day(8), "b"), (day(8), None, "b2")]
        check_invariants(table, ["id"])


def history(uri: str, key: int = 1) -> list[tuple[Any, ...]]:
    return sorted(
        (r["_effective_from"], r["_effective_to"], r["name"])
        for r in read_table(uri).to_pylist()
        if r["id"] == key
    )


def stamped(name: str, at: datetime, key: int = 1) -> pa.Table:
    return pa.table({"id": [key], "name": [name], "updated_at": [at]})


def test_a_silent_change_seen_again_the_next_day_is_known_not_late(uri: str) -> None:
    # found against dbt snapshots: the version of a silent change starts at its snapshot,
    # after its own updated_at; the next file still has that row and must match it
    c = cfg(validity_column="updated_at", late_rows="reject")
    t10 = day(0) + timedelta(hours=10)
    load(uri, stamped("gold", t10), c, day(1))
    load(uri, stamped("platinum", t10), c, day(2))
    outcome = apply_scd2(uri, stamped("platinum", t10), c, as_of=day(3))
    assert (outcome.version, outcome.rows_skipped) == (None, 0)
    assert history(uri) == [(t10, day(2), "gold"), (day(2), None, "platinum")]


def test_a_second_silent_change_is_a_version_too(uri: str) -> None:
    c = cfg(validity_column="updated_at", late_rows="reject")
    t10 = day(0) + timedelta(hours=10)
    for n, name in enumerate(["gold", "platinum", "diamond"], start=1):
        load(uri, stamped(name, t10), c, day(n))
    assert history(uri) == [
        (t10, day(2), "gold"),
        (day(2), day(3), "platinum"),
        (day(3), None, "diamond"),
    ]


def test_a_silent_change_back_to_an_earlier_value_is_a_version(uri: str) -> None:
    c = cfg(validity_column="updated_at", late_rows="reject")
    t10 = day(0) + timedelta(hours=10)
    for n, name in enumerate(["gold", "platinum", "gold"], start=1):
        load(uri, stamped(name, t10), c, day(n))
    assert history(uri) == [
        (t10, day(2), "gold"),
        (day(2), day(3), "platinum"),
        (day(3), None, "gold"),
    ]


def test_a_key_back_with_an_old_timestamp_is_known_on_the_following_days(uri: str) -> None:
    c = cfg(validity_column="updated_at", hard_deletes="close", late_rows="reject")
    t10 = day(0) + timedelta(hours=10)
    both = pa.table({"id": [1, 2], "name": ["a", "b"], "updated_at": [t10, t10]})
    load(uri, both, c, day(1))
    load(uri, stamped("a", t10), c, day(2))
    back = pa.table({"id": [1, 2], "name": ["a", "gold"], "updated_at": [t10, day(1)]})
    load(uri, back, c, day(3))
    outcome = apply_scd2(uri, back, c, as_of=day(4))
    assert (outcome.version, outcome.rows_skipped) == (None, 0)
    assert history(uri, 2) == [(t10, day(2), "b"), (day(3), None, "gold")]


def test_old_row_already_in_history_is_not_late(uri: str) -> None:
    c = cfg(validity_column="updated_at")
    apply_scd2(uri, pa.table({"id": [1], "name": ["a"], "updated_at": [day(0)]}), c, as_of=day(0))
    apply_scd2(uri, pa.table({"id": [1], "name": ["b"], "updated_at": [day(4)]}), c, as_of=day(4))
    # a re-extract of day 2 shows 'a', which is what the table says was valid on day 2
    known = pa.table({"id": [1], "name": ["a"], "updated_at": [day(2)]})
    outcome = apply_scd2(uri, known, c, as_of=day(5))
    assert (outcome.version, outcome.rows_skipped) == (None, 0)
    other = pa.table({"id": [1], "name": ["q"], "updated_at": [day(2)]})
    assert apply_scd2(uri, other, c, as_of=day(5)).rows_skipped == 1
    with pytest.raises(LoadError, match="late"):
        apply_scd2(uri, other, cfg(validity_column="updated_at", late_rows="reject"), as_of=day(5))
    check_invariants(uri, ["id"])


def test_composite_keys_are_joined_column_by_column(uri: str) -> None:
    c = cfg(primary_key=["a", "b"])
    batch = pa.table({"a": ["a", "ab"], "b": ["bc", "c"], "v": [1, 2]})
    assert load(uri, batch, c, day(0)) == 0
    assert len(rows(uri)) == 2
    change = pa.table({"a": ["a", "ab"], "b": ["bc", "c"], "v": [1, 3]})
    assert load(uri, change, c, day(1)) == 1
    got = sorted((r["a"], r["b"], r["v"], r["_is_current"]) for r in rows(uri))
    assert got == [("a", "bc", 1, True), ("ab", "c", 2, False), ("ab", "c", 3, True)]
    check_invariants(uri, ["a", "b"])


def test_null_values_compare_equal(uri: str) -> None:
    batch = pa.table({"id": [1, 2, 3], "name": [None, "b", None], "n": [1, None, None]})
    apply_scd2(uri, batch, cfg(), as_of=day(0))
    assert apply_scd2(uri, batch, cfg(), as_of=day(1)).version is None
    changed = pa.table({"id": [1, 2, 3], "name": ["a", None, None], "n": [1, None, None]})
    assert load(uri, changed, cfg(), day(2)) == 1
    assert len(rows(uri)) == 5
    assert current(uri)[1]["name"] == "a" and current(uri)[2]["name"] is None


def test_null_key_is_rejected(uri: str) -> None:
    with pytest.raises(LoadError, match="NULL"):
        apply_scd2(uri, pa.table({"id": [1, None], "x": [1, 2]}), cfg(), as_of=day(0))


def test_custom_column_names(uri: str) -> None:
    c = cfg(
        primary_key=["Customer Id"],
        effective_from_column="ValidFrom",
        effective_to_column="valid to",
        is_current_column="IsCurrent",
    )
    apply_scd2(uri, pa.table({"Customer Id": [1], "Name": ["a"]}), c, as_of=day(0))
    load(uri, pa.table({"Customer Id": [1], "Name": ["b"]}), c, day(1))
    got = sorted(rows(uri), key=lambda r: r["ValidFrom"])
    assert [(r["Name"], r["valid to"], r["IsCurrent"]) for r in got] == [
        ("a", day(1), False),
        ("b", None, True),
    ]
    assert "_effective_from" not in DeltaTable(uri).schema().to_arrow().names


def test_missing_primary_key_leaves_the_table_untouched(uri: str) -> None:
    apply_scd2(uri, pa.table({"id": [1], "name": ["a"]}), cfg(), as_of=day(0))
    with pytest.raises(LoadError, match=r"primary key column.*'id'.*missing"):
        apply_scd2(uri, pa.table({"ident": [1], "name": ["b"]}), cfg(), as_of=day(1))
    assert DeltaTable(uri).version() == 0


def test_incompatible_type_change_leaves_the_table_untouched(uri: str) -> None:
    apply_scd2(uri, pa.table({"id": [1], "amount": [10]}), cfg(), as_of=day(0))
    with pytest.raises(LoadError, match="incompatible type change"):
        apply_scd2(uri, pa.table({"id": [1], "amount": ["ten"]}), cfg(), as_of=day(1))
    assert DeltaTable(uri).version() == 0
    # a compatible widening is fine
    ok = pa.table({"id": pa.array([1], pa.int32()), "amount": pa.array([11], pa.int32())})
    assert load(uri, ok, cfg(), day(1)) == 1


def test_new_nullable_column_evolves_the_schema(uri: str) -> None:
    apply_scd2(uri, pa.table({"id": [1, 2], "name": ["a", "b"]}), cfg(), as_of=day(0))
    batch = pa.table({"id": [1, 2], "name": ["a", "b"], "email": [None, "b@x"]})
    assert load(uri, batch, cfg(), day(1)) == 1
    assert "email" in DeltaTable(uri).schema().to_arrow().names
    cur = current(uri)
    # key 1: email NULL before and after -> unchanged; key 2: NULL -> value = a change
    assert cur[1]["_effective_from"] == day(0) and cur[1]["email"] is None
    assert cur[2]["_effective_from"] == day(1) and cur[2]["email"] == "b@x"


def test_a_column_missing_from_the_batch_is_null_in_new_versions(uri: str) -> None:
    c = cfg(tracking_columns=["name"])
    apply_scd2(uri, pa.table({"id": [1], "name": ["a"], "note": ["x"]}), c, as_of=day(0))
    assert load(uri, pa.table({"id": [1], "name": ["b"]}), c, day(1)) == 1
    assert current(uri)[1]["note"] is None


def test_commit_properties_are_carried(uri: str) -> None:
    props = CommitProperties(custom_metadata={"onceflow.file": "f1.parquet"})
    apply_scd2(uri, pa.table({"id": [1], "x": [1]}), cfg(), as_of=day(0), commit_properties=props)
    props2 = CommitProperties(custom_metadata={"onceflow.file": "f2.parquet"})
    apply_scd2(uri, pa.table({"id": [1], "x": [2]}), cfg(), as_of=day(1), commit_properties=props2)
    history = DeltaTable(uri).history()
    assert [h.get("onceflow.file") for h in history] == ["f2.parquet", "f1.parquet"]


def test_an_empty_batch_commits_nothing_unless_hard_deletes_close_every_key(uri: str) -> None:
    empty = pa.table({"id": pa.array([], pa.int64()), "x": pa.array([], pa.int64())})
    assert apply_scd2(uri, empty, cfg(), as_of=day(0)).version is None
    apply_scd2(uri, pa.table({"id": [1], "x": [1]}), cfg(), as_of=day(0))
    assert apply_scd2(uri, empty, cfg(), as_of=day(1)).version is None
    assert load(uri, empty, cfg(hard_deletes="close"), day(1)) == 1
    assert current(uri) == {}


def test_audit_columns_are_not_tracked(uri: str) -> None:
    apply_scd2(uri, pa.table({"id": [1], "x": [1], "_source_file": ["f1"]}), cfg(), as_of=day(0))
    again = pa.table({"id": [1], "x": [1], "_source_file": ["f2"]})
    assert apply_scd2(uri, again, cfg(), as_of=day(1)).version is None


def test_a_batch_planned_on_a_stale_snapshot_conflicts_instead_of_building_on_newer_data(
    tmp_path: Path,
) -> None:
    from deltalake.exceptions import CommitFailedError

    uri = str(tmp_path / "t")
    c = cfg()
    first = pa.table({"id": pa.array([1, 2], pa.int64()), "v": ["a", "b"]})
    apply_scd2(uri, first, c, as_of=datetime(2025, 1, 1, tzinfo=UTC))
    stale = DeltaTable(uri)
    newer = pa.table({"id": pa.array([1], pa.int64()), "v": ["B"]})
    apply_scd2(uri, newer, c, as_of=datetime(2025, 1, 2, tzinfo=UTC))
    late = pa.table({"id": pa.array([1], pa.int64()), "v": ["C"]})
    with pytest.raises(CommitFailedError):
        apply_scd2(
            uri,
            late,
            c,
            as_of=datetime(2025, 1, 3, tzinfo=UTC),
            commit_properties=CommitProperties(max_commit_retries=0),
            table=stale,
        )
    assert DeltaTable(uri).version() == 1


def test_column_names_with_spaces_and_capitals_are_quoted_everywhere(uri: str) -> None:
    c = cfg(primary_key=["Customer ID"])
    first = pa.table({"Customer ID": pa.array([1, 2], pa.int64()), "Full Name": ["a", "b"]})
    apply_scd2(uri, first, c, as_of=day(1))
    second = pa.table({"Customer ID": pa.array([1, 2], pa.int64()), "Full Name": ["A", "b"]})
    assert apply_scd2(uri, second, c, as_of=day(2)).version == 1
    rows = sorted(read_table(uri).to_pylist(), key=lambda r: (r["Customer ID"], r["_is_current"]))
    assert [(r["Customer ID"], r["Full Name"], r["_is_current"]) for r in rows] == [
        (1, "a", False),
        (1, "A", True),
        (2, "b", True),
    ]
    assert not any(name.startswith("__onceflow") for name in rows[0])


def test_a_key_that_comes_back_identical_after_a_delete_is_a_new_version(uri: str) -> None:
    # issue 8, case 8: with business time and hard deletes, a returning row equal to its
    # closed version was dropped as a replay, leaving a live key with no current row
    c = cfg(validity_column="updated_at", hard_deletes="close")
    both = pa.table({"id": [1, 2], "name": ["a", "b"], "updated_at": [day(0), day(0)]})
    load(uri, both, c, day(1))
    load(uri, pa.table({"id": [1], "name": ["a"], "updated_at": [day(0)]}), c, day(2))
    assert 2 not in current(uri)
    assert load(uri, both, c, day(3)) is not None
    assert current(uri)[2]["name"] == "b"
    # its updated_at (day 0) is before the delete (day 2): it counts from the snapshot
    assert current(uri)[2]["_effective_from"] == day(3)
    history = sorted((r["_effective_from"], r["_effective_to"]) for r in rows(uri) if r["id"] == 2)
    assert history == [(day(0), day(2)), (day(3), None)]
    check_invariants(uri, ["id"])


def test_a_key_back_after_a_delete_with_rows_on_both_sides_of_it_is_current_at_the_latest(
    uri: str,
) -> None:
    # the key returns with a row stamped after its delete and an older one stamped before
    # it (listed second). The older row was moved to the snapshot instant, after the newer
    # one, and became the current version
    c = cfg(validity_column="updated_at", hard_deletes="close")
    first = pa.table({"id": [1, 2], "name": ["a", "z"], "updated_at": [day(0), day(0)]})
    apply_scd2(uri, first, c, as_of=day(1))
    apply_scd2(uri, first.slice(1), c, as_of=day(2))  # key 1 deleted: closed at day 2
    back = pa.table(
        {"id": [1, 1, 2], "name": ["new", "old", "z"], "updated_at": [day(3), day(1), day(0)]}
    )
    outcome = apply_scd2(uri, back, c, as_of=day(4))
    # "old" (day 1) is neither the version then ("a") nor after the delete: a late row
    assert outcome.rows_skipped == 1
    history = sorted((r for r in rows(uri) if r["id"] == 1), key=lambda r: r["_effective_from"])
    got = [(r["name"], r["_effective_from"], r["_effective_to"]) for r in history]
    assert got == [("a", day(0), day(2)), ("new", day(3), None)]
    check_invariants(uri, ["id"])
    assert apply_scd2(uri, back, c, as_of=day(5)).version is None  # seen again: no change


def test_a_key_back_after_a_delete_with_rows_all_before_it_returns_as_its_latest(
    uri: str,
) -> None:
    # every row is stamped before the delete: the key comes back from the snapshot
    # instant with its latest row ("b", listed first), whatever the rows' order in the file
    c = cfg(validity_column="updated_at", hard_deletes="close")
    first = pa.table({"id": [1, 2], "name": ["a", "z"], "updated_at": [day(0), day(0)]})
    apply_scd2(uri, first, c, as_of=day(1))
    apply_scd2(uri, first.slice(1), c, as_of=day(2))
    back = pa.table(
        {"id": [1, 1, 2], "name": ["b", "a", "z"], "updated_at": [day(1), day(0), day(0)]}
    )
    outcome = apply_scd2(uri, back, c, as_of=day(4))
    assert outcome.rows_skipped == 0  # "a" at day 0 is the version then: known
    history = sorted((r for r in rows(uri) if r["id"] == 1), key=lambda r: r["_effective_from"])
    got = [(r["name"], r["_effective_from"], r["_effective_to"]) for r in history]
    assert got == [("a", day(0), day(2)), ("b", day(4), None)]
    check_invariants(uri, ["id"])


@pytest.mark.parametrize("windowed", [True, False], ids=["incremental", "full"])
def test_a_window_read_before_the_window_ahead_of_it(uri: str, windowed: bool) -> None:
    # windows 1, 2, 3 of one key; window 3 was read (day 3) before window 2 (day 4)
    c = cfg()
    for name, read in (("a", day(1)), ("b", day(4))):
        apply_scd2(uri, pa.table({"id": [1], "name": [name]}), c, as_of=read, windowed=windowed)
    third_window = pa.table({"id": [1], "name": ["c"]})
    third = apply_scd2(uri, third_window, c, as_of=day(3), windowed=windowed)
    history = sorted((r["_effective_from"], r["_effective_to"], r["name"]) for r in rows(uri))
    check_invariants(uri, ["id"])
    if windowed:
        # its rows changed after window 2's (the cursor says so), whenever it was read:
        # they start a microsecond after the table's latest instant
        after = day(4) + timedelta(microseconds=1)
        assert third.rows_skipped == 0
        assert history == [(day(1), day(4), "a"), (day(4), after, "b"), (after, None, "c")]
    else:
        # a full extract is the whole table as read then: the newest read (window 2's,
        # day 4) is the truth, and the older read's different value is late
        assert third.rows_skipped == 1
        assert history == [(day(1), day(4), "a"), (day(4), None, "b")]


def test_a_window_read_after_the_table_keeps_its_snapshot_instant(uri: str) -> None:
    c = cfg()
    apply_scd2(uri, pa.table({"id": [1], "name": ["a"]}), c, as_of=day(1), windowed=True)
    apply_scd2(uri, pa.table({"id": [1], "name": ["b"]}), c, as_of=day(2), windowed=True)
    # read at the very instant of the table's latest version: a tie would be ambiguous
    apply_scd2(uri, pa.table({"id": [1], "name": ["c"]}), c, as_of=day(2), windowed=True)
    history = sorted((r["_effective_from"], r["name"]) for r in rows(uri))
    assert history == [(day(1), "a"), (day(2), "b"), (day(2) + timedelta(microseconds=1), "c")]
    check_invariants(uri, ["id"])


def test_a_windowed_file_with_a_validity_column_keeps_its_business_time(uri: str) -> None:
    c = cfg(validity_column="updated_at")
    late = pa.table({"id": [1], "name": ["a"], "updated_at": [day(5)]})
    apply_scd2(uri, late, c, as_of=day(6), windowed=True)
    older = pa.table({"id": [1], "name": ["b"], "updated_at": [day(3)]})
    outcome = apply_scd2(uri, older, c, as_of=day(7), windowed=True)
    assert (outcome.version, outcome.rows_skipped) == (None, 1)  # business time decides
    assert [r["_effective_from"] for r in rows(uri)] == [day(5)]


def test_without_a_business_time_validity_is_the_files_snapshot_instant(uri: str) -> None:
    # issue 8, case 10: five days loaded in one go keep five days of history
    c = cfg()
    for n, name in enumerate(["a", "b", "c", "d", "e"]):
        apply_scd2(uri, pa.table({"id": [1], "name": [name]}), c, as_of=day(n))
    history = sorted((r["_effective_from"], r["name"]) for r in rows(uri))
    assert history == [(day(n), name) for n, name in enumerate("abcde")]
    check_invariants(uri, ["id"])


def test_hard_deletes_new_record_inserts_a_deletion_version_that_a_return_closes(
    uri: str,
) -> None:
    c = cfg(hard_deletes="new_record")
    load(uri, pa.table({"id": [1, 2], "name": ["a", "b"]}), c, day(0))
    deleted = load(uri, pa.table({"id": [1], "name": ["a"]}), c, day(1))
    assert deleted == 1
    two = sorted(
        (r["_effective_from"], r["_is_deleted"], r["_is_current"], r["name"])
        for r in rows(uri)
        if r["id"] == 2
    )
    assert two == [(day(0), False, False, "b"), (day(1), True, True, "b")]
    # deleted again: nothing more (the deletion version is current already)
    assert apply_scd2(uri, pa.table({"id": [1], "name": ["a"]}), c, as_of=day(2)).version is None
    back = load(uri, pa.table({"id": [1, 2], "name": ["a", "b"]}), c, day(3))
    assert back == 2
    two = sorted(
        (r["_effective_from"], r["_effective_to"], r["_is_deleted"])
        for r in rows(uri)
        if r["id"] == 2
    )
    assert two == [(day(0), day(1), False), (day(1), day(3), True), (day(3), None, False)]
    check_invariants(uri, ["id"])


@pytest.mark.parametrize("mode", ["close", "new_record"])
def test_an_older_read_replayed_after_a_newer_one_neither_deletes_nor_brings_back(
    uri: str, mode: str
) -> None:
    # full extracts replayed in window order: window 5 was read (day 3) before window 4
    # (day 4), which saw key 2 new and key 3 gone. Window 5's read still holds key 3 and
    # not key 2: older evidence, so the newest read (window 4's) stays the truth
    c = cfg(hard_deletes=mode)
    apply_scd2(uri, pa.table({"id": [1, 3], "name": ["a", "c"]}), c, as_of=day(1))
    apply_scd2(uri, pa.table({"id": [1, 2], "name": ["a", "b"]}), c, as_of=day(4))
    before = DeltaTable(uri).version()
    older = apply_scd2(uri, pa.table({"id": [1, 3], "name": ["a", "c"]}), c, as_of=day(3))
    # key 2's absence is late (its version starts after the read); key 3's row is the
    # version it had then (known)
    assert (older.version, older.rows_skipped) == (None, 1)
    assert DeltaTable(uri).version() == before
    live = {k for k, r in current(uri).items() if not r.get("_is_deleted")}
    assert live == {1, 2}
    three = sorted((r["_effective_from"], r["_effective_to"]) for r in rows(uri) if r["id"] == 3)
    assert three[0] == (day(1), day(4))
    check_invariants(uri, ["id"])
    # a read after the delete does bring key 3 back, and ends key 2 where it is absent
    load(uri, pa.table({"id": [1, 3], "name": ["a", "c"]}), c, day(5))
    assert current(uri)[3]["_effective_from"] == day(5)
    assert {k for k, r in current(uri).items() if not r.get("_is_deleted")} == {1, 3}


def test_a_late_absence_is_refused_under_late_rows_reject(uri: str) -> None:
    c = cfg(hard_deletes="close", late_rows="reject")
    apply_scd2(uri, pa.table({"id": [1], "name": ["a"]}), c, as_of=day(1))
    apply_scd2(uri, pa.table({"id": [1, 2], "name": ["a", "b"]}), c, as_of=day(4))
    before = DeltaTable(uri).version()
    with pytest.raises(LoadError, match=r"1 late absent key\(s\).*first: key, version start = 2"):
        apply_scd2(uri, pa.table({"id": [1], "name": ["a"]}), c, as_of=day(3))
    assert DeltaTable(uri).version() == before
    assert sorted(current(uri)) == [1, 2]


def contracts(ids: list[int], starts: list[datetime], file: str | None = None) -> pa.Table:
    """A full read of contracts valid from `starts`; `file`: its `_source_file`, as the
    loader's audit columns give it."""
    t = pa.table({"id": ids, "name": [f"n{i}" for i in ids], "valid_from": pa.array(starts, TS)})
    return t if file is None else t.append_column("_source_file", pa.array([file] * len(ids)))


TS = pa.timestamp("us", tz="UTC")


@pytest.mark.parametrize("late_rows", ["skip", "reject"])
@pytest.mark.parametrize("mode", ["close", "new_record"])
@pytest.mark.parametrize("with_reads", [False, True])
def test_a_key_valid_from_a_later_date_that_the_next_read_misses_is_closed(
    uri: str, mode: str, late_rows: str, with_reads: bool
) -> None:
    # read on day 0: key 2 is a contract that starts on day 30; the day-1 read no longer
    # holds it (cancelled). That read is the newest: its absence is the truth, though the
    # version starts after it (a business time, not a newer read)
    c = cfg(validity_column="valid_from", hard_deletes=mode, late_rows=late_rows)
    src = "f0" if with_reads else None
    apply_scd2(uri, contracts([1, 2], [day(-5), day(30)], src), c, as_of=day(0))
    reads = {"f0": day(0)} if with_reads else None
    second = contracts([1], [day(-5)], "f1" if with_reads else None)
    out = apply_scd2(uri, second, c, as_of=day(1), reads=reads)
    deleted = 1 if mode == "new_record" else 0
    assert (out.rows_skipped, out.closed, out.deleted) == (0, 1, deleted)
    live = {k for k, r in current(uri).items() if not r.get("_is_deleted")}
    assert live == {1}
    ended = [r for r in rows(uri) if r["id"] == 2 and not r.get("_is_deleted")]
    # ended where it would have started, as before an absence was ever late: it never held
    assert [(r["_effective_from"], r["_effective_to"]) for r in ended] == [(day(30), day(30))]


def test_a_key_back_from_a_later_date_close_returns_when_the_read_is_the_newest(uri: str) -> None:
    # closed at day 30 (its start) by the day-1 read; the day-10 read holds it again,
    # valid from day 20: no read older than the close, so a return, from the close
    c = cfg(validity_column="valid_from", hard_deletes="new_record")
    apply_scd2(uri, contracts([1, 2], [day(-5), day(30)]), c, as_of=day(0))
    apply_scd2(uri, contracts([1], [day(-5)]), c, as_of=day(1))
    out = apply_scd2(uri, contracts([1, 2], [day(-5), day(20)]), c, as_of=day(10))
    assert (out.rows_skipped, out.inserted) == (0, 1)
    assert current(uri)[2]["_effective_from"] == day(30)
    assert not current(uri)[2]["_is_deleted"]


@pytest.mark.parametrize("late_rows", ["skip", "reject"])
def test_with_a_validity_column_an_older_read_replayed_knows_the_newer_read_by_its_file(
    uri: str, late_rows: str
) -> None:
    # window 5 read on day 3, replayed after window 4 read on day 4, which found key 2
    # valid from day 2: a start before the replayed read, but made by the newer read
    c = cfg(validity_column="valid_from", hard_deletes="close", late_rows=late_rows)
    apply_scd2(uri, contracts([1], [day(-5)], "w3"), c, as_of=day(1))
    apply_scd2(uri, contracts([1, 2], [day(-5), day(2)], "w4"), c, as_of=day(4))
    before = DeltaTable(uri).version()
    reads = {"w3": day(1), "w4": day(4)}
    older = contracts([1], [day(-5)], "w5")
    if late_rows == "reject":
        with pytest.raises(LoadError, match=r"1 late absent key\(s\).*version start = 2"):
            apply_scd2(uri, older, c, as_of=day(3), reads=reads)
    else:
        out = apply_scd2(uri, older, c, as_of=day(3), reads=reads)
        assert (out.version, out.rows_skipped) == (None, 1)
    assert DeltaTable(uri).version() == before
    assert sorted(current(uri)) == [1, 2]
    # without knowing the reads, a start before the file is no newer read: it ends
    assert apply_scd2(uri, older, c, as_of=day(3)).closed == 1


@pytest.mark.parametrize("late_rows", ["skip", "reject"])
@pytest.mark.parametrize("mode", ["close", "new_record"])
def test_with_a_validity_column_an_older_read_never_brings_back_what_the_newest_read_deleted(
    uri: str, mode: str, late_rows: str
) -> None:
    # key 2 valid from day 30; the newest read (day 10) no longer holds it and ends it at
    # its start, day 30. A read from day 3, replayed after it, holds key 2 with the same
    # validity: not before the close, but older evidence: history (late), not a return
    c = cfg(validity_column="valid_from", hard_deletes=mode, late_rows=late_rows)
    apply_scd2(uri, contracts([1, 2], [day(-5), day(30)]), c, as_of=day(1))
    apply_scd2(uri, contracts([1], [day(-5)]), c, as_of=day(10), reads={"w1": day(1)})
    before = DeltaTable(uri).version()
    older = contracts([1, 2], [day(-5), day(30)])
    reads = {"w1": day(1), "w2": day(10)}
    if late_rows == "reject":
        with pytest.raises(LoadError, match=r"1 late row\(s\)"):
            apply_scd2(uri, older, c, as_of=day(3), reads=reads)
    else:
        out = apply_scd2(uri, older, c, as_of=day(3), reads=reads)
        assert (out.version, out.rows_skipped) == (None, 1)
    assert DeltaTable(uri).version() == before
    assert {k for k, r in current(uri).items() if not r.get("_is_deleted")} == {1}
    # read after the newest read, the same row is a return, from the close
    back = apply_scd2(uri, older, c, as_of=day(11), reads=reads)
    assert (back.rows_skipped, back.inserted) == (0, 1)
    assert current(uri)[2]["_effective_from"] == day(30)


@pytest.mark.parametrize("late_rows", ["skip", "reject"])
@pytest.mark.parametrize("mode", ["close", "new_record"])
@pytest.mark.parametrize("validity", [None, "valid_from"])
def test_an_older_read_replayed_never_adds_a_key_the_newest_read_did_not_hold(
    uri: str, mode: str, late_rows: str, validity: str | None
) -> None:
    # window 3 read on day 3 (keys 1 and 2), replayed after window 2 read on day 4 (key 1
    # only): key 2 has no version at all, so the newest read did not hold it: late
    c = cfg(validity_column=validity, hard_deletes=mode, late_rows=late_rows)
    apply_scd2(uri, contracts([1], [day(-5)]), c, as_of=day(4))
    before = DeltaTable(uri).version()
    older = contracts([1, 2], [day(-5), day(-5)])
    late = 1 if validity else 2  # without one, key 1's row too: before its version
    if late_rows == "reject":
        with pytest.raises(LoadError, match=rf"{late} late row\(s\)"):
            apply_scd2(uri, older, c, as_of=day(3), reads={"w2": day(4)})
    else:
        out = apply_scd2(uri, older, c, as_of=day(3), reads={"w2": day(4)})
        assert (out.version, out.rows_skipped) == (None, late)
    assert DeltaTable(uri).version() == before
    assert sorted(current(uri)) == [1]


def test_under_hard_deletes_ignore_an_older_read_adds_a_key_the_newest_read_did_not_hold(
    uri: str,
) -> None:
    # an absence says nothing under ignore: the newest read did not decide key 2
    c = cfg(hard_deletes="ignore")
    apply_scd2(uri, pa.table({"id": [1], "name": ["a"]}), c, as_of=day(4))
    older = pa.table({"id": [1, 2], "name": ["a", "b"]})
    out = apply_scd2(uri, older, c, as_of=day(3), reads={"w2": day(4)})
    assert (out.inserted, out.rows_skipped) == (1, 1)
    assert sorted(current(uri)) == [1, 2]


@pytest.mark.parametrize("mode", ["close", "new_record"])
@pytest.mark.parametrize("validity", [None, "valid_from"])
def test_an_older_read_replayed_keeps_the_values_and_keys_the_newest_read_confirmed(
    uri: str, mode: str, validity: str | None
) -> None:
    # keys 1 and 2 read on day 1, read again unchanged on day 5 (the newest read: their
    # versions still start at day 1, or at their validity); a day-3 read replayed after it
    # has another value of key 1 at the same validity and misses key 2: both are older
    # than what the newest read found, so late, not a change and a delete
    c = cfg(validity_column=validity, hard_deletes=mode)
    both = pa.table({"id": [1, 2], "name": ["a", "b"], "valid_from": pa.array([day(-5)] * 2, TS)})
    apply_scd2(uri, both, c, as_of=day(1))
    assert apply_scd2(uri, both, c, as_of=day(5), reads={"w1": day(1)}).version is None
    older = pa.table({"id": [1], "name": ["c"], "valid_from": pa.array([day(-5)], TS)})
    out = apply_scd2(uri, older, c, as_of=day(3), reads={"w1": day(1), "w2": day(5)})
    assert (out.version, out.rows_skipped) == (None, 2)
    assert {k: r["name"] for k, r in current(uri).items()} == {1: "a", 2: "b"}


def test_the_outcome_counts_deletion_versions_apart_from_new_versions_and_closes(
    uri: str,
) -> None:
    c = cfg(hard_deletes="new_record")
    apply_scd2(uri, pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]}), c, as_of=day(0))
    # key 1 changes, keys 2 and 3 are gone: 1 new version, 3 closes, 2 deletion versions
    outcome = apply_scd2(uri, pa.table({"id": [1], "name": ["A"]}), c, as_of=day(1))
    assert (outcome.inserted, outcome.closed, outcome.deleted) == (1, 3, 2)
    assert sum(r["_is_deleted"] for r in rows(uri)) == outcome.deleted
    # under close, the same file ends the versions and inserts no deletion version
    closing = cfg(hard_deletes="close")
    other = uri + "_close"
    apply_scd2(other, pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]}), closing, as_of=day(0))
    ended = apply_scd2(other, pa.table({"id": [1], "name": ["A"]}), closing, as_of=day(1))
    assert (ended.inserted, ended.closed, ended.deleted) == (1, 3, 0)


@pytest.mark.parametrize("later", ["close", "ignore"])
def test_a_deletion_version_stays_a_deletion_after_a_switch_from_new_record(
    uri: str, later: str
) -> None:
    # read as a live row, the deletion version (a copy of the last values) would make the
    # returning key KNOWN: current, deleted, for good
    load(uri, pa.table({"id": [1, 2], "name": ["x", "y"]}), cfg(hard_deletes="new_record"), day(0))
    load(uri, pa.table({"id": [2], "name": ["y"]}), cfg(hard_deletes="new_record"), day(1))
    c = cfg(hard_deletes=later)
    # still absent: nothing to do, the deletion version is current already
    assert apply_scd2(uri, pa.table({"id": [2], "name": ["y"]}), c, as_of=day(2)).version is None
    assert load(uri, pa.table({"id": [1, 2], "name": ["x", "y"]}), c, day(3)) is not None
    one = sorted(
        (r["_effective_from"], r["_effective_to"], r["_is_deleted"], r["_is_current"])
        for r in rows(uri)
        if r["id"] == 1
    )
    assert one == [
        (day(0), day(1), False, False),
        (day(1), day(3), True, False),
        (day(3), None, False, True),
    ]
    check_invariants(uri, ["id"])


def test_a_table_folder_with_quotes_and_spaces_is_read_in_place(tmp_path: Path) -> None:
    uri = str(tmp_path / 'it\'s a "dim"')
    apply_scd2(uri, pa.table({"id": [1, 2], "name": ["a", "b"]}), cfg(), as_of=day(0))
    assert parquet_scan(open_table(uri)) is not None
    assert load(uri, pa.table({"id": [1, 2], "name": ["a", "B"]}), cfg(), day(1)) == 1
    assert {k: r["name"] for k, r in current(uri).items()} == {1: "a", 2: "B"}


def test_partitioned_tables_are_read_through_delta_not_as_plain_parquet(tmp_path: Path) -> None:
    from deltalake import write_deltalake

    uri = str(tmp_path / "parts")
    write_deltalake(uri, pa.table({"id": [1], "region": ["eu"]}), partition_by=["region"])
    assert parquet_scan(open_table(uri)) is None


def test_a_folder_name_duckdb_would_glob_is_read_through_delta(tmp_path: Path) -> None:
    uri = str(tmp_path / "dim*")
    apply_scd2(uri, pa.table({"id": [1, 2], "name": ["a", "b"]}), cfg(), as_of=day(0))
    assert parquet_scan(open_table(uri)) is None
    assert load(uri, pa.table({"id": [1, 2], "name": ["a", "B"]}), cfg(), day(1)) == 1


def _wall(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize("zone", ["UTC", "Asia/Tokyo", "America/New_York"])
def test_a_naive_validity_is_wall_time_in_the_pipelines_zone(uri: str, zone: str) -> None:
    # as the window reads a naive cursor: 23:30 in Tokyo is in the window that ends at
    # 15:00Z, and its version starts at 14:30Z, not 9 h later (UTC: as before)
    from zoneinfo import ZoneInfo

    c = cfg(validity_column="updated_at")
    stamps = ["2025-01-02 05:00", "2025-01-02 23:30"]
    batch = pa.table({"id": [1, 1], "name": ["a", "b"], "updated_at": list(map(_wall, stamps))})
    assert apply_scd2(uri, batch, c, as_of=day(400), zone=zone).version == 0
    at = [_wall(s).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC) for s in stamps]
    got = sorted((r["name"], r["_effective_from"], r["_effective_to"]) for r in rows(uri))
    assert got == [("a", at[0], at[1]), ("b", at[1], None)]
    # the table's own naive validity is read in the same zone: the same rows are known,
    assert apply_scd2(uri, batch, c, as_of=day(401), zone=zone).version is None
    # and other values at the current version's validity are a silent change, from the
    # snapshot (not a late row, as a validity read in another zone would make it)
    silent = pa.table({"id": [1], "name": ["c"], "updated_at": [_wall(stamps[1])]})
    outcome = apply_scd2(uri, silent, c, as_of=day(402), zone=zone)
    assert (outcome.version, outcome.rows_skipped) == (1, 0)
    assert current(uri)[1]["_effective_from"] == day(402)
    check_invariants(uri, ["id"])


def test_a_naive_date_validity_starts_at_midnight_in_the_pipelines_zone(uri: str) -> None:
    c = cfg(validity_column="valid_on")
    batch = pa.table({"id": [1], "name": ["a"], "valid_on": [datetime(2025, 1, 2).date()]})
    apply_scd2(uri, batch, c, as_of=day(400), zone="Asia/Tokyo")
    assert rows(uri)[0]["_effective_from"] == datetime(2025, 1, 1, 15, tzinfo=UTC)


def test_a_naive_validity_and_snapshot_deletes_share_one_clock(uri: str) -> None:
    # Tokyo, full extracts: x then y, each stamped (wall time) just before its snapshot;
    # then the key is gone. Read as UTC, both versions moved 9 h after their snapshots and
    # the delete, observed at 10:00:03Z, closed y at its own start: a zero-length version
    c = cfg(validity_column="updated_at", hard_deletes="close")
    snap = [datetime(2025, 1, 1, 10, 0, s, tzinfo=UTC) for s in (0, 2, 3)]
    x = pa.table({"id": [1], "a": ["x"], "updated_at": [_wall("2025-01-01 18:59:59")]})
    y = pa.table({"id": [1], "a": ["y"], "updated_at": [_wall("2025-01-01 19:00:01")]})
    apply_scd2(uri, x, c, as_of=snap[0], zone="Asia/Tokyo")
    apply_scd2(uri, y, c, as_of=snap[1], zone="Asia/Tokyo")
    apply_scd2(uri, x.slice(0, 0), c, as_of=snap[2], zone="Asia/Tokyo")
    got = sorted((r["a"], r["_effective_from"], r["_effective_to"]) for r in rows(uri))
    second = datetime(2025, 1, 1, 10, 0, 1, tzinfo=UTC)
    assert got == [("x", snap[0] - timedelta(seconds=1), second), ("y", second, snap[2])]
    check_invariants(uri, ["id"])


def test_a_return_after_a_delete_west_of_utc_keeps_its_own_validity(uri: str) -> None:
    # New York: the delete is seen at 12:00Z; the key comes back stamped 09:00 local
    # (14:00Z), after it. Read as UTC (09:00Z) it was judged older than the delete and
    # moved to the snapshot instant
    c = cfg(validity_column="updated_at", hard_deletes="close")
    zone = "America/New_York"
    first = pa.table({"id": [1, 2], "a": ["p", "q"], "updated_at": [_wall("2025-01-05 01:00")] * 2})
    apply_scd2(uri, first, c, as_of=datetime(2025, 1, 5, 7, tzinfo=UTC), zone=zone)
    apply_scd2(uri, first.slice(1), c, as_of=datetime(2025, 1, 5, 12, tzinfo=UTC), zone=zone)
    back = pa.table({"id": [1, 2], "a": ["p", "q"], "updated_at": [_wall("2025-01-05 09:00")] * 2})
    apply_scd2(uri, back, c, as_of=datetime(2025, 1, 5, 20, tzinfo=UTC), zone=zone)
    history = sorted((r["_effective_from"], r["_effective_to"]) for r in rows(uri) if r["id"] == 1)
    assert history == [
        (datetime(2025, 1, 5, 6, tzinfo=UTC), datetime(2025, 1, 5, 12, tzinfo=UTC)),
        (datetime(2025, 1, 5, 14, tzinfo=UTC), None),
    ]
    check_invariants(uri, ["id"])


@pytest.mark.parametrize(
    ("table_config", "windowed"),
    [
        ({"mode": "incremental", "is_full_extract": False}, True),
        ({"mode": "full", "is_full_extract": True}, False),
        ({}, False),  # a sidecar that does not say: a read of the whole table
        (None, False),  # no sidecar (a file loaded with --path)
    ],
)
def test_a_lake_file_is_windowed_when_its_sidecar_says_incremental(
    tmp_path: Path, table_config: dict[str, Any] | None, windowed: bool
) -> None:
    from onceflow.lake import SourceFile, write_sidecar
    from onceflow.load.loader import windowed_extract

    path = tmp_path / "f.parquet"
    path.write_bytes(b"")
    if table_config is not None:
        write_sidecar(path, {"extraction_complete": True, "table_config": table_config})
    source = SourceFile(str(path), "f.parquet", 0, "2024-01-01T00:00:00+00:00", None)
    assert windowed_extract(source) is windowed
