"""Nothing lost, nothing twice where windows meet: the windows of consecutive run dates
must tile (a changed timezone would leave a gap or an overlap), and one table's window is
committed once in the lake, whatever run id extracted it. Both refusals come before
anything is written; validate-windows reports gaps and overlaps among stored runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onceflow.errors import ConfigError
from onceflow.lake import sidecar_path
from tests.helpers.extract import shop_pipeline

NY = "America/New_York"


def _files(tmp_path: Path, day: str) -> list[str]:
    return sorted(p.name for p in (tmp_path / "lake").rglob(f"{day}/*.parquet"))


def test_a_date_in_a_new_timezone_beside_a_stored_date_is_refused_naming_the_gap(tmp_path):
    utc = shop_pipeline(tmp_path)
    assert utc.extract("2025-01-22").ok and utc.extract("2025-01-23").ok
    moved = shop_pipeline(tmp_path, timezone=NY)

    with pytest.raises(ConfigError) as refused:
        moved.extract("2025-01-24")
    message = str(refused.value)
    assert refused.value.field == "timezone"
    assert "gap between run daily_extract_20250123" in message
    assert "2025-01-24T00:00:00+00:00 → 2025-01-24T05:00:00+00:00 is in neither window" in message
    assert "Put back the timezone" in message and "Nothing was written" in message
    assert moved.store.runs.get("daily_extract_20250124") is None
    assert not list((tmp_path / "lake").rglob("24/*"))


def test_re_windowing_a_stored_date_between_others_is_refused_not_duplicated(tmp_path):
    utc = shop_pipeline(tmp_path)
    for day in ("2025-01-22", "2025-01-23", "2025-01-24"):
        assert utc.extract(day).ok
    orders = next((tmp_path / "lake").rglob("23/daily_extract_20250123.parquet"))
    before = sidecar_path(orders).read_text()
    moved = shop_pipeline(tmp_path, timezone=NY)

    with pytest.raises(ConfigError) as refused:
        moved.extract("2025-01-23", force_reprocess=True)
    message = str(refused.value)
    # the old recommended fix would leave a gap before the 23rd and an overlap after it
    assert "gap between run daily_extract_20250122" in message
    assert "overlap between run daily_extract_20250123" in message
    assert "2025-01-24T00:00:00+00:00 → 2025-01-24T05:00:00+00:00 is in both windows" in message
    assert sidecar_path(orders).read_text() == before
    assert moved.store.runs.get("daily_extract_20250123").window_start.endswith("+00:00")
    assert utc.validate_windows("2025-01-23")["consistent"]


def test_a_lone_run_date_may_still_move_to_the_new_timezone_as_a_whole(tmp_path):
    assert shop_pipeline(tmp_path).extract("2025-01-23").ok
    moved = shop_pipeline(tmp_path, timezone=NY)
    assert moved.extract("2025-01-23", force_reprocess=True).ok
    assert moved.extract("2025-01-24").ok  # its neighbour now tiles with it
    assert moved.validate_windows("2025-01-24")["consistent"]


def test_validate_windows_reports_gaps_and_overlaps_among_stored_runs(tmp_path):
    pipeline = shop_pipeline(tmp_path)
    assert pipeline.extract("2025-01-23").ok
    # a run stored before the check existed, in another timezone
    pipeline.store.runs.begin(
        "daily_extract_20250124",
        "daily_extract",
        "2025-01-24",
        ("2025-01-24T00:00:00-05:00", "2025-01-25T00:00:00-05:00"),
    )
    report = pipeline.validate_windows("2025-01-23")
    assert not report["consistent"] and not report["inconsistent"]
    assert report["seams"] == [
        {
            "kind": "gap",
            "earlier_run": "daily_extract_20250123",
            "earlier_end": "2025-01-24T00:00:00+00:00",
            "later_run": "daily_extract_20250124",
            "later_start": "2025-01-24T00:00:00-05:00",
        }
    ]


def test_a_second_run_id_for_a_window_the_lake_holds_is_refused_naming_the_file(tmp_path):
    pipeline = shop_pipeline(tmp_path)
    assert pipeline.extract("2025-01-23").ok
    for force in (False, True):
        with pytest.raises(ConfigError) as refused:
            pipeline.extract("2025-01-23", run_id="adhoc1", force_reprocess=force)
        message = str(refused.value)
        assert refused.value.field == "run_id"
        assert "shop.orders under run daily_extract_20250123" in message
        assert "shop/orders/202501/23/daily_extract_20250123.parquet" in message
        assert "leave out --run-id" in message and "Nothing was written" in message
        assert pipeline.store.runs.get("adhoc1") is None
        assert _files(tmp_path, "23") == ["daily_extract_20250123.parquet"] * 2
    # the run that holds the window extracts it again, in place
    assert pipeline.extract("2025-01-23", force_reprocess=True).ok


def test_the_default_run_id_is_refused_when_another_run_id_holds_the_window(tmp_path):
    pipeline = shop_pipeline(tmp_path)
    assert pipeline.extract("2025-01-23", run_id="adhoc1").ok
    with pytest.raises(ConfigError, match=r"under run adhoc1 .*--run-id adhoc1"):
        pipeline.extract("2025-01-23")
    # a table not yet in the lake for that window is not refused
    assert pipeline.extract("2025-01-24", run_id="adhoc2").ok
    sidecars = [json.loads(p.read_text()) for p in (tmp_path / "lake").rglob("*_metadata.json")]
    assert {s["run_id"] for s in sidecars} == {"adhoc1", "adhoc2"}
