"""A table records the strategy and key it was created with (onceflow.load.settings): the
record itself, where it is read from, and how a standalone load's command line meets it."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, write_deltalake

from onceflow.cli.render import _strategy_cell
from onceflow.config import Config, LoadConfig
from onceflow.errors import ConfigError
from onceflow.load.api import standalone_target
from onceflow.load.settings import (
    PROPERTY,
    Settings,
    creation_metadata,
    read_record,
    write_record,
)
from onceflow.warehouse import open_table

MERGE_ID = Settings("merge", ("id",))


def _config(tmp_path: Path) -> Config:
    return Config.model_validate(
        {"pipeline": "p", "warehouse": str(tmp_path / "wh"), "base_dir": str(tmp_path)}
    )


def _table(uri: str, settings: Settings | None, *, as_property: bool = True) -> None:
    """A table created as the loader creates one: its first commit names its settings
    (none: a table of an older onceflow), then the table property."""
    metadata = creation_metadata(settings) if settings else {}
    write_deltalake(
        uri,
        pa.table({"id": [1, 2]}),
        mode="error",
        commit_properties=CommitProperties(custom_metadata=metadata),
    )
    if settings is not None and as_property:
        write_record(DeltaTable(uri), settings)


def test_settings_keep_what_the_rows_are_made_of_and_nothing_else() -> None:
    merge = LoadConfig(strategy="merge", primary_key=["id"], delete_column="gone")
    assert Settings.of(merge) == MERGE_ID  # the delete flag is not stored: not recorded
    assert Settings.of(LoadConfig()) == Settings("append")
    scd2 = Settings.of(LoadConfig(strategy="scd2", primary_key=["id"], is_current_column="cur"))
    assert scd2.strategy == "scd2" and dict(scd2.columns)["is_current_column"] == "cur"
    assert Settings.parse(scd2.dumps()) == scd2
    assert scd2.describe() == "strategy scd2, primary key id, is_current_column cur"
    assert MERGE_ID.describe() == "strategy merge, primary key id"


def test_another_strategy_key_or_scd2_column_differs_a_key_order_does_not() -> None:
    assert not Settings("merge", ("a", "b")).differs(Settings("merge", ("b", "a")))
    assert MERGE_ID.differs(Settings("append"))
    assert MERGE_ID.differs(Settings("merge", ("v",)))
    scd2 = Settings.of(LoadConfig(strategy="scd2", primary_key=["id"]))
    renamed = Settings.of(LoadConfig(strategy="scd2", primary_key=["id"], effective_to_column="t"))
    assert scd2.differs(renamed)


@pytest.mark.parametrize("text", ["", "not json", "[1]", '{"primary_key": ["id"]}', "{}"])
def test_a_record_that_is_not_one_reads_as_none(text: str) -> None:
    assert Settings.parse(text) is None


def test_the_recorded_settings_make_a_standalone_loads_config() -> None:
    scd2 = LoadConfig(strategy="scd2", primary_key=["k"], is_deleted_column="d")
    cfg = Settings.of(scd2).config()
    assert (cfg.strategy, cfg.primary_key, cfg.is_deleted_column) == ("scd2", ["k"], "d")


def test_the_property_is_read_and_the_creating_commit_stands_in_for_it(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    _table(uri, MERGE_ID)
    record = read_record(open_table(uri))
    assert record is not None and record.settings == MERGE_ID and record.in_property
    assert DeltaTable(uri).metadata().configuration[PROPERTY] == MERGE_ID.dumps()
    # a restore to version 0 takes its metadata back to before the property
    DeltaTable(uri).restore(0)
    assert PROPERTY not in DeltaTable(uri).metadata().configuration
    record = read_record(open_table(uri))
    assert record is not None and record.settings == MERGE_ID and not record.in_property


def test_a_table_of_an_older_onceflow_records_nothing(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    _table(uri, None)
    assert read_record(open_table(uri)) is None
    assert read_record(None) is None


def test_a_standalone_load_without_strategy_takes_the_recorded_one_and_says_so(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    _table(config.resolve_target("dims/c"), MERGE_ID)
    tgt, note = standalone_target(config, "dims/c", None, None)
    assert (tgt.cfg.strategy, tgt.cfg.primary_key, tgt.record) == ("merge", ["id"], True)
    assert note == "loaded with strategy merge, primary key id, as the table records"
    # the same strategy, or the same key, given again: loaded as recorded, nothing to say
    for strategy, key in (("merge", None), ("merge", ["id"]), (None, ["id"])):
        tgt, note = standalone_target(config, "dims/c", strategy, key)
        assert (tgt.cfg.strategy, tgt.cfg.primary_key) == ("merge", ["id"])
        assert note is None or strategy is None


@pytest.mark.parametrize(
    ("strategy", "key", "said"),
    [
        ("append", None, "--strategy append: "),
        ("overwrite", None, "--strategy overwrite: "),
        ("merge", ["v"], "--strategy merge --primary-key v: "),
        (None, ["v"], "--primary-key v: "),
        ("scd2", ["id"], "--strategy scd2 --primary-key id: "),
    ],
)
def test_other_standalone_settings_are_refused_naming_the_recorded_ones_and_the_fix(
    tmp_path: Path, strategy: str | None, key: list[str] | None, said: str
) -> None:
    config = _config(tmp_path)
    uri = config.resolve_target("dims/c")
    _table(uri, MERGE_ID)
    with pytest.raises(ConfigError) as refused:
        standalone_target(config, "dims/c", strategy, key)
    message = str(refused.value)
    assert refused.value.exit_code == 2 and "\n" not in message
    assert message.startswith(said)
    assert "dims/c was created with strategy merge, primary key id" in message
    assert "leave out --strategy and --primary-key to load with its own" in message
    assert f"load into a new --target, or drop the table (move {uri} away)" in message


def test_a_key_given_to_a_recorded_append_table_is_refused_as_ignored(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _table(config.resolve_target("raw/e"), Settings("append"))
    with pytest.raises(ConfigError, match="--strategy append would ignore it"):
        standalone_target(config, "raw/e", None, ["id"])


def test_a_new_table_takes_the_command_line_and_records_it(tmp_path: Path) -> None:
    config = _config(tmp_path)
    tgt, note = standalone_target(config, "raw/e", None, None)
    assert (tgt.cfg.strategy, tgt.record, note) == ("append", True, None)
    tgt, note = standalone_target(config, "dims/c", "merge", ["id"])
    assert (tgt.cfg.strategy, tgt.cfg.primary_key, tgt.record) == ("merge", ["id"], True)


def test_a_table_of_an_older_onceflow_appends_by_default_without_recording_it(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    _table(config.resolve_target("raw/e"), None)
    tgt, note = standalone_target(config, "raw/e", None, None)
    assert (tgt.cfg.strategy, tgt.record) == ("append", False)
    assert note is not None and "the table records no strategy" in note
    assert "pass --strategy to load with its own and record it" in note
    # a strategy given is recorded: the next load without one uses it
    tgt, note = standalone_target(config, "raw/e", "merge", ["id"])
    assert (tgt.cfg.strategy, tgt.record, note) == ("merge", True, None)


def test_status_shows_the_strategy_and_key_or_unknown() -> None:
    assert _strategy_cell({"strategy": "merge", "primary_key": ["id", "day"]}) == "merge (id, day)"
    assert _strategy_cell({"strategy": "append", "primary_key": []}) == "append"
    assert _strategy_cell({"strategy": "unknown", "primary_key": None}) == "unknown"
