"""How a RESTORE by time's commit is read, and when its times settle the version it chose
(`onceflow.warehouse.restore_time`; followed end to end in
tests/integration/load/test_restore_by_time.py)."""

from __future__ import annotations

import pytest

from onceflow.warehouse.markers import external_restore
from onceflow.warehouse.restore_time import last_at_or_before, requested_time


@pytest.mark.parametrize(
    ("times", "at", "expected"),
    [
        ([10, 20, 30], 25, 1),  # the last commit at or before the time
        ([10, 20, 30], 20, 1),  # one exactly at it: that one
        ([10, 20, 30], 35, 2),
        ([10, 20, 30], 5, -1),  # before every commit
        ([10, 20, 20, 30], 20, None),  # two exactly at it: a search may stop at either
        ([10, 20, 20, 30], 25, 2),  # equal times away from the time asked for settle nothing
        ([10, 40, 20, 30], 25, None),  # out of order across it: depends on the search
        ([10, 40, 20, 30], 45, 3),  # out of order, but all before it: the last
        ([10, 5, 30], 25, 1),  # out of order on one side only: any search ends at 1
    ],
)
def test_a_time_resolves_only_where_no_binary_search_could_answer_otherwise(
    times: list[int], at: int, expected: int | None
) -> None:
    assert last_at_or_before(times, at) == expected


def test_a_delta_rs_restore_by_time_names_milliseconds_and_waits_to_be_resolved() -> None:
    info = {
        "version": 7,
        "operation": "RESTORE",
        "operationParameters": {"datetime": "1796124154092"},
        "readVersion": 6,
    }
    restore = external_restore(info)
    assert restore is not None and restore.to_version is None
    assert (restore.at_ms, restore.read_version) == (1796124154092, 6)
    assert (
        restore.at == "2026-12-01T11:22:34.092Z" == requested_time(info["operationParameters"])[1]
    )
    assert "RESTORE to the time 2026-12-01T11:22:34.092Z" in restore.describe()


def test_a_spark_restore_by_time_is_a_local_time_without_a_zone_and_cannot_be_resolved() -> None:
    restore = external_restore(
        {
            "version": 7,
            "operation": "RESTORE",
            "operationParameters": {"version": "null", "timestamp": '"2026-11-30 10:00:00.0"'},
            "readVersion": 6,
        }
    )
    assert restore is not None and restore.to_version is None and restore.at_ms is None
    assert restore.at == "2026-11-30 10:00:00.0"
    assert "without its time zone" in restore.unresolved


def test_a_restore_by_version_is_read_as_before() -> None:
    info = {"version": 5, "operation": "RESTORE", "operationParameters": {"version": "2"}}
    restore = external_restore(info)
    assert restore is not None and (restore.to_version, restore.at) == (2, None)
    assert restore.describe() == "version 5 is a RESTORE to version 2 by another writer"
