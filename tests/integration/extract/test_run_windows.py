"""A run is one window: a --run-id reused for another date, or a run date whose window
moved (the config's timezone changed), is refused before anything is written; a forced
re-extraction of the whole run moves it to the new window."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onceflow import Pipeline
from onceflow.errors import ConfigError, StateError
from onceflow.lake import sidecar_path
from tests.helpers.extract import shop_pipeline

DAY = "2025-01-23"


def _windows(pipeline: Pipeline, run_id: str) -> dict[str, tuple[str | None, str | None]]:
    return {
        key: (e.window_start, e.window_end)
        for key, e in pipeline.store.extractions.of_run(run_id).items()
    }


def test_a_run_id_reused_for_another_date_is_refused_naming_the_runs_date(tmp_path):
    pipeline = shop_pipeline(tmp_path)
    first = pipeline.extract("2025-01-27", run_id="daily_extract")
    assert first.ok
    before = _windows(pipeline, "daily_extract")

    with pytest.raises(ConfigError) as refused:
        pipeline.extract("2025-01-26", run_id="daily_extract")
    message = str(refused.value)
    assert refused.value.field == "run_id" and refused.value.exit_code == 2
    assert "run daily_extract is the run of 2025-01-27" in message
    assert "leave out --run-id (its run is then daily_extract_20250126)" in message
    # the 27th's run is as it was, and nothing of the 26th was written
    assert _windows(pipeline, "daily_extract") == before
    assert pipeline.validate_windows(run_id="daily_extract")["consistent"]
    assert not list((tmp_path / "lake").rglob("26/*"))
    # asking for the run by its id and another date is refused, not answered with the 27th
    with pytest.raises(StateError, match="--run-id daily_extract is the run of 2025-01-27, not"):
        pipeline.status("2025-01-26", run_id="daily_extract")


def test_a_changed_timezone_refuses_to_add_tables_to_the_run_naming_both_windows(tmp_path):
    assert shop_pipeline(tmp_path).extract(DAY, tables=["shop.customers"]).ok
    moved = shop_pipeline(tmp_path, timezone="America/New_York")

    with pytest.raises(ConfigError) as refused:
        moved.extract(DAY, tables=["shop.orders"])
    message = str(refused.value)
    assert refused.value.field == "timezone"
    assert "2025-01-23T00:00:00+00:00 → 2025-01-24T00:00:00+00:00" in message
    assert "America/New_York now gives 2025-01-23T00:00:00-05:00 → 2025-01-24T00:00:00-05:00" in (
        message
    )
    assert "--force-reprocess and no --tables" in message
    # a plain rerun of the whole run is refused too: it would re-window it unasked
    with pytest.raises(ConfigError, match="timezone: run"):
        moved.extract(DAY)
    assert moved.validate_windows(DAY)["consistent"]
    assert set(_windows(moved, f"{moved.config.pipeline}_20250123")) == {"shop.customers"}


def test_force_reprocess_of_some_tables_of_a_moved_run_is_refused_naming_the_others(tmp_path):
    assert shop_pipeline(tmp_path).extract(DAY).ok
    moved = shop_pipeline(tmp_path, timezone="America/New_York")
    with pytest.raises(ConfigError, match=r"also holds shop\.customers, which --tables leaves out"):
        moved.extract(DAY, tables=["shop.orders"], force_reprocess=True)
    assert moved.validate_windows(DAY)["consistent"]


def test_force_reprocess_of_the_whole_run_moves_it_to_the_new_window(tmp_path):
    assert shop_pipeline(tmp_path).extract(DAY).ok
    moved = shop_pipeline(tmp_path, timezone="America/New_York")

    again = moved.extract(DAY, force_reprocess=True)
    assert again.ok and {r.action for r in again.results} == {"extracted"}
    new = ("2025-01-23T00:00:00-05:00", "2025-01-24T00:00:00-05:00")
    assert (again.run.window_start, again.run.window_end) == new
    assert set(_windows(moved, again.run.run_id).values()) == {new}
    assert moved.validate_windows(DAY)["consistent"]
    for result in again.results:
        sidecar = json.loads(sidecar_path(Path(result.file_path)).read_text())
        assert (sidecar["window_start"], sidecar["window_end"]) == new
    # from now on the run is an ordinary one: a rerun skips everything
    assert {r.action for r in moved.extract(DAY).results} == {"skipped"}


def test_another_zone_name_with_the_same_window_is_the_same_run(tmp_path):
    assert shop_pipeline(tmp_path).extract(DAY).ok
    same = shop_pipeline(tmp_path, timezone="Etc/UTC")
    assert same.extract(DAY).ok
    assert same.validate_windows(DAY)["consistent"]
