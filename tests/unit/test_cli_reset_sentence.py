"""`reset-state` says what it did in a sentence; --json prints the result itself."""

from __future__ import annotations

import pytest

from onceflow.cli.render import reset_sentence


@pytest.mark.parametrize(
    ("result", "sentence"),
    [
        (
            {"action": "reset_failed", "count": 2, "load_files": 1},
            "2 failed extraction(s) and 1 failed load file(s) back to pending: the next run "
            "retries them",
        ),
        (
            {
                "action": "reset_failed",
                "count": 3,
                "runs": [
                    {"run_id": "demo_20250122", "run_date": "2025-01-22", "count": 1},
                    {"run_id": "demo_20250123", "run_date": "2025-01-23", "count": 2},
                ],
                "load_files": 0,
            },
            "3 failed extraction(s) (run demo_20250122 of 2025-01-22: 1, run demo_20250123 of "
            "2025-01-23: 2) and 0 failed load file(s) back to pending: a run of each date "
            "retries its extractions (onceflow run --date 2025-01-22 / onceflow run --date "
            "2025-01-23), the next run the load files",
        ),
        (
            {"action": "reset_failed", "count": 0, "runs": [], "load_files": 0},
            "0 failed extraction(s) (in no run) and 0 failed load file(s) back to pending: "
            "the next run retries them",
        ),
        (
            {"action": "force_reprocess", "table": "shop.orders", "count": 1},
            "shop.orders: flagged; the next run of this date re-extracts it",
        ),
        (
            {
                "action": "force_reprocess",
                "table": "shop.orders",
                "count": 0,
                "run_id": "demo_20250123",
                "ran": False,
            },
            "shop.orders: run demo_20250123 has not run yet: nothing to reprocess, nothing "
            "flagged; its first run extracts it",
        ),
        (
            {"action": "reset_validation", "table": "shop.orders", "rule": "r", "count": 3},
            "forgot 3 stored rule result(s) of shop.orders, rule r: those rules run again "
            "on the next validation",
        ),
        (
            {"action": "forget_run", "run_id": "demo_20250123", "count": 1, "load_files": 2},
            "forgot run demo_20250123 (1 record(s)) and 2 load tracker row(s): the next run "
            "re-derives them from the sidecars and Delta logs",
        ),
        (
            {"action": "forget_run", "run_id": None, "count": 0, "load_files": 0},
            "no extraction run to forget; forgot 0 load tracker row(s): the next run "
            "re-derives them from the sidecars and Delta logs",
        ),
    ],
)
def test_each_reset_action_is_told_as_one_sentence_of_what_it_did(
    result: dict[str, object], sentence: str
) -> None:
    assert reset_sentence(result) == sentence
