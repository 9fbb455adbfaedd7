"""A table keeps the strategy and key it was created with (onceflow.load.settings).

Before, a standalone `load --path` without `--strategy` appended to a merge table (its
keys twice, exit 0), `--strategy overwrite` replaced an append table's rows, and `status`
said `append` for every standalone table; a config table whose strategy changed in
onceflow.yml was loaded with the new one over rows the old one made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from onceflow.config import Config, LoadConfig, standalone_config
from onceflow.errors import ConfigError
from onceflow.lake import discover_path
from onceflow.load import check_settings, load, load_status, loader, settings
from onceflow.load.settings import PROPERTY, Settings
from onceflow.state import open_store
from onceflow.warehouse.markers import forget_cached_markers
from tests.helpers.lake import (
    done,
    make_config,
    read_table,
    table_uri,
    write_extracted,
)


def _drop(folder: Path, name: str, ids: list[int], values: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": ids, "v": values}), folder / name)


def _standalone(tmp_path: Path) -> Config:
    return standalone_config(
        state=f"sqlite:///{tmp_path / 'state.db'}",
        warehouse=str(tmp_path / "warehouse"),
        base_dir=str(tmp_path),
    )


def _rows(cfg: Config, target: str) -> list[tuple[Any, ...]]:
    table = read_table(cfg.resolve_target(target)).select(["id", "v"])
    return sorted(zip(*table.to_pydict().values(), strict=True))


def _status(cfg: Config) -> dict[str, dict[str, Any]]:
    return {row["table"]: row for row in load_status(cfg)}


def test_a_standalone_load_without_strategy_loads_with_the_recorded_one(tmp_path: Path) -> None:
    cfg, drop = _standalone(tmp_path), tmp_path / "drop"
    _drop(drop, "e0.parquet", [1, 2, 3], ["a", "b", "c"])
    _drop(drop, "e1.parquet", [3, 4], ["C", "d"])
    first = load(cfg, path=str(drop), target="dims/customer", strategy="merge", primary_key=["id"])
    assert first.ok and first.results[0].settings_note is None
    uri = cfg.resolve_target("dims/customer")
    assert DeltaTable(uri).metadata().configuration[PROPERTY] == Settings("merge", ("id",)).dumps()
    _drop(drop, "e2.parquet", [4], ["D"])
    again = load(cfg, path=str(drop), target="dims/customer")  # no --strategy
    [result] = again.results
    assert again.ok and result.strategy == "merge" and result.changes()["updated"] == 1
    assert (
        result.settings_note == "loaded with strategy merge, primary key id, as the table records"
    )
    assert _rows(cfg, "dims/customer") == [(1, "a"), (2, "b"), (3, "C"), (4, "D")]
    row = _status(cfg)["dims/customer"]
    assert (row["strategy"], row["primary_key"], row["settings_recorded"]) == (
        "merge",
        ["id"],
        True,
    )


def test_another_strategy_for_a_standalone_table_is_refused_and_the_table_unchanged(
    tmp_path: Path,
) -> None:
    cfg, drop = _standalone(tmp_path), tmp_path / "drop"
    _drop(drop, "e0.parquet", [1, 2, 3], ["a", "b", "c"])
    _drop(drop, "e1.parquet", [3, 4], ["C", "d"])
    assert load(cfg, path=str(drop), target="raw/events").ok  # append, the default: recorded
    uri = cfg.resolve_target("raw/events")
    version = DeltaTable(uri).version()
    _drop(drop, "e2.parquet", [4], ["D"])
    with pytest.raises(ConfigError) as refused:
        load(cfg, path=str(drop), target="raw/events", strategy="overwrite")
    assert str(refused.value).startswith(
        "--strategy overwrite: raw/events was created with strategy append (recorded in the table)"
    )
    assert DeltaTable(uri).version() == version and read_table(uri).num_rows == 5
    assert _status(cfg)["raw/events"]["strategy"] == "append"


def test_after_the_state_store_is_lost_the_table_still_says_its_strategy(tmp_path: Path) -> None:
    cfg, drop = _standalone(tmp_path), tmp_path / "drop"
    _drop(drop, "e0.parquet", [1, 2], ["a", "b"])
    assert load(cfg, path=str(drop), target="dims/c", strategy="merge", primary_key=["id"]).ok
    (tmp_path / "state.db").unlink()  # the state store is gone: only the table knows
    forget_cached_markers()
    _drop(drop, "e1.parquet", [2, 3], ["B", "c"])
    again = load(cfg, path=str(drop), target="dims/c")
    [result] = again.results
    assert again.ok and done(result.counts()) == {"skipped": 1, "loaded": 1}
    assert result.strategy == "merge" and result.settings_note is not None
    assert _rows(cfg, "dims/c") == [(1, "a"), (2, "B"), (3, "c")]  # no key twice
    assert _status(cfg)["dims/c"]["strategy"] == "merge"


def test_a_table_restored_to_before_its_record_is_read_from_its_creating_commit(
    tmp_path: Path,
) -> None:
    cfg, drop = _standalone(tmp_path), tmp_path / "drop"
    _drop(drop, "e0.parquet", [1, 2], ["a", "b"])
    assert load(cfg, path=str(drop), target="dims/c", strategy="merge", primary_key=["id"]).ok
    uri = cfg.resolve_target("dims/c")
    DeltaTable(uri).restore(0)  # a RESTORE to version 0 drops the property, not the data
    assert PROPERTY not in DeltaTable(uri).metadata().configuration
    assert _status(cfg)["dims/c"]["strategy"] == "merge"
    _drop(drop, "e1.parquet", [2], ["B"])
    out = load(cfg, path=str(drop), target="dims/c")
    assert out.ok and out.results[0].strategy == "merge"
    assert _rows(cfg, "dims/c") == [(1, "a"), (2, "B")]
    # the load wrote the property back
    assert DeltaTable(uri).metadata().configuration[PROPERTY] == Settings("merge", ("id",)).dumps()


def test_a_kill_before_the_property_leaves_the_creating_commit_to_say_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, drop = _standalone(tmp_path), tmp_path / "drop"
    _drop(drop, "e0.parquet", [1, 2], ["a", "b"])

    def killed(_dt: Any, _settings: Settings) -> None:
        raise OSError("killed")

    monkeypatch.setattr(loader, "write_record", killed)
    assert load(cfg, path=str(drop), target="dims/c", strategy="merge", primary_key=["id"]).ok
    uri = cfg.resolve_target("dims/c")
    assert PROPERTY not in DeltaTable(uri).metadata().configuration
    monkeypatch.undo()
    _drop(drop, "e1.parquet", [2], ["B"])
    assert load(cfg, path=str(drop), target="dims/c").results[0].strategy == "merge"
    assert PROPERTY in DeltaTable(uri).metadata().configuration
    assert _rows(cfg, "dims/c") == [(1, "a"), (2, "B")]


def _older_onceflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Load as onceflow did before tables recorded their settings."""
    monkeypatch.setattr(loader, "creation_metadata", lambda _settings: None)
    monkeypatch.setattr(loader, "_record_settings", lambda _tgt, _check, _dt=None: None)


def test_a_standalone_table_of_an_older_onceflow_appends_as_before_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, drop = _standalone(tmp_path), tmp_path / "drop"
    _drop(drop, "e0.parquet", [1, 2], ["a", "b"])
    _older_onceflow(monkeypatch)
    assert load(cfg, path=str(drop), target="dims/c", strategy="merge", primary_key=["id"]).ok
    monkeypatch.undo()
    row = _status(cfg)["dims/c"]
    assert (row["strategy"], row["settings_recorded"]) == ("unknown", False)
    _drop(drop, "e1.parquet", [3], ["c"])
    out = load(cfg, path=str(drop), target="dims/c")
    [result] = out.results
    assert out.ok and result.strategy == "append"
    assert "the table records no strategy" in (result.settings_note or "")
    assert _status(cfg)["dims/c"]["strategy"] == "unknown"  # a default is no record
    _drop(drop, "e2.parquet", [3], ["C"])
    given = load(cfg, path=str(drop), target="dims/c", strategy="merge", primary_key=["id"])
    assert given.ok and _status(cfg)["dims/c"]["strategy"] == "merge"  # given: recorded


def test_a_config_tables_changed_strategy_is_refused_until_the_table_is_rebuilt(
    tmp_path: Path,
) -> None:
    lake = tmp_path / "lake"
    write_extracted(lake, pa.table({"id": [1, 2], "v": ["a", "b"]}), day=0)
    write_extracted(lake, pa.table({"id": [2, 3], "v": ["B", "c"]}), day=1)
    appended = make_config(tmp_path, {"strategy": "append"})
    assert load(appended).ok
    uri = table_uri(tmp_path)
    assert read_table(uri).num_rows == 4  # key 2 twice, as append does
    version = DeltaTable(uri).version()
    write_extracted(lake, pa.table({"id": [2], "v": ["X"]}), day=2)
    merged = make_config(tmp_path, {"strategy": "merge", "primary_key": ["id"]})
    # a merge now would update both rows of key 2 and keep them twice
    for refuse in (lambda: load(merged), lambda: check_settings(merged)):
        with pytest.raises(ConfigError) as refused:
            refuse()
        message = str(refused.value)
        assert refused.value.field == "tables[0].load"
        assert message.startswith(
            "tables[0].load (src.orders): the config says strategy merge, primary key id, "
            "but src/orders was created with strategy append (recorded in the table)"
        )
        assert f"move {uri} away and run `onceflow load`" in message
    assert DeltaTable(uri).version() == version
    [row] = load_status(merged)
    assert (
        row["strategy"] == "append" and "the config says strategy merge" in row["settings_conflict"]
    )
    # the fix it names: the table moved away, a load rebuilds it from the lake as a merge
    Path(uri).rename(tmp_path / "orders-old")
    rebuilt = load(merged)
    assert rebuilt.ok and done(rebuilt.counts()) == {"loaded": 3}
    assert sorted(read_table(uri).select(["id", "v"]).to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "v": "a"},
        {"id": 2, "v": "X"},
        {"id": 3, "v": "c"},
    ]
    [row] = load_status(merged)
    assert (row["strategy"], row["settings_conflict"]) == ("merge", None)


def test_options_that_do_not_make_the_rows_may_change_in_the_config(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_extracted(lake, pa.table({"id": [1, 2], "v": ["a", "b"], "gone": [False, False]}), day=0)
    assert load(make_config(tmp_path, {"strategy": "merge", "primary_key": ["id"]})).ok
    write_extracted(lake, pa.table({"id": [2], "v": ["b"], "gone": [True]}), day=1)
    flagged = {"strategy": "merge", "primary_key": ["id"], "delete_column": "gone"}
    out = load(make_config(tmp_path, flagged))
    assert out.ok and out.results[0].changes()["deleted"] == 1


def test_a_config_table_of_an_older_onceflow_records_its_configs_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path / "lake"
    write_extracted(lake, pa.table({"id": [1], "v": ["a"]}), day=0)
    cfg = make_config(tmp_path, {"strategy": "merge", "primary_key": ["id"]})
    _older_onceflow(monkeypatch)
    assert load(cfg).ok
    monkeypatch.undo()
    uri = table_uri(tmp_path)
    assert settings.read_record(DeltaTable(uri)) is None
    [row] = load_status(cfg)
    assert (row["strategy"], row["settings_recorded"]) == ("merge", False)  # from the config
    again = load(cfg)  # nothing to load; the config states the settings: recorded
    assert again.ok and done(again.counts()) == {"skipped": 1}
    assert settings.recorded_settings(DeltaTable(uri)) == Settings("merge", ("id",))
    with pytest.raises(ConfigError, match="created with strategy merge, primary key id"):
        load(make_config(tmp_path, {"strategy": "append"}))


def test_a_loader_given_other_settings_than_the_table_records_fails_the_table(
    tmp_path: Path,
) -> None:
    # the check under the lock: a table another loader created meanwhile with others
    cfg, drop = _standalone(tmp_path), tmp_path / "drop"
    _drop(drop, "e0.parquet", [1], ["a"])
    assert load(cfg, path=str(drop), target="dims/c", strategy="merge", primary_key=["id"]).ok
    _drop(drop, "e1.parquet", [1], ["A"])
    store = open_store(cfg.state_url)
    uri = cfg.resolve_target("dims/c")
    tgt = loader.LoadTarget("dims/c", "dims/c", uri, LoadConfig(), "p", standalone=True)
    result = loader.load_table(
        store, tgt, discover_path(str(drop)), token="t", check_lock=lambda: None
    )
    assert not result.ok and "dims/c was created with strategy merge" in (result.error or "")
    assert _rows(cfg, "dims/c") == [(1, "a")]
