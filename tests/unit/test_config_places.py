"""The lake and the warehouse (and every Delta table) live in folders apart: a lake file in
a Delta table's folder is deleted by a Spark or Databricks VACUUM, as a file no commit names."""

from __future__ import annotations

import pytest

from onceflow.config import config_from_dict
from onceflow.errors import ConfigError

BASE = {
    "sources": {"shop": {"url": "postgresql://app@localhost/shop"}},
    "tables": [{"source": "shop", "table": "orders"}],
}


def _refusal(**top: object) -> ConfigError:
    with pytest.raises(ConfigError) as refused:
        config_from_dict({**BASE, **top}, base_dir="/x", origin="onceflow.yml")
    return refused.value


@pytest.mark.parametrize(
    "places",
    [
        {"lake": "./data", "warehouse": "./data"},
        {"lake": "./data/", "warehouse": "/x/data"},
        {"lake": "./lake/../wh", "warehouse": "./wh"},
        {"lake": "dbfs:/mnt/d", "warehouse": "/dbfs/mnt/d"},
    ],
)
def test_a_lake_that_is_the_warehouse_is_refused_naming_both_and_the_fix(
    places: dict[str, str],
) -> None:
    refused = _refusal(**places)
    assert refused.field == "lake"
    message = str(refused)
    assert message.startswith("onceflow.yml: lake: the lake and the warehouse are one folder (")
    assert "VACUUM" in message
    assert message.endswith("(e.g. `lake: ./lake`, `warehouse: ./warehouse`)")


@pytest.mark.parametrize(
    "places",
    [{"lake": "./warehouse/pg"}, {"warehouse": "."}, {"warehouse": "/"}],
)
def test_a_lake_inside_the_warehouse_is_refused(places: dict[str, str]) -> None:
    refused = _refusal(**places)
    assert refused.field == "lake"
    assert "is inside the warehouse (" in str(refused)


def test_a_warehouse_inside_the_lake_is_refused() -> None:
    refused = _refusal(warehouse="./lake/wh")
    assert refused.field == "warehouse"
    assert str(refused).startswith(
        "onceflow.yml: warehouse: the warehouse (/x/lake/wh) is inside the lake (/x/lake)"
    )


@pytest.mark.parametrize("field", ["lake", "warehouse"])
@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_lake_or_warehouse_is_refused(field: str, value: str) -> None:
    """'' was the config's own folder: a lake holding the warehouse and the state store."""
    refused = _refusal(**{field: value})
    assert refused.field == field
    assert str(refused) == f"onceflow.yml: {field}: is empty: give a folder, e.g. ./{field}"


@pytest.mark.parametrize(
    ("target", "said"),
    [
        ("/x/lake/shop/orders", "sit inside the lake"),
        ("../lake", "be the lake's folder"),
        ("/x", "hold the lake"),
    ],
)
def test_a_table_target_inside_or_around_the_lake_is_refused(target: str, said: str) -> None:
    tables = [{"source": "shop", "table": "orders", "load": {"target": target}}]
    refused = _refusal(tables=tables)
    assert refused.field == "tables[0].load.target"
    assert "the Delta table of 'shop.orders' " in str(refused)
    assert f"would {said} (/x/lake)" in str(refused)


def test_folders_side_by_side_or_sharing_a_prefix_are_accepted() -> None:
    for places in (
        {"lake": "./lake", "warehouse": "./warehouse"},
        {"lake": "./data/lake", "warehouse": "./data/lake2"},
        {"lake": "/mnt/lake", "warehouse": "s3://bucket/wh"},
    ):
        config = config_from_dict({**BASE, **places}, base_dir="/x")
        assert config.lake == places["lake"]
    beside = [{"source": "shop", "table": "orders", "load": {"target": "/x/lake_tables/o"}}]
    assert config_from_dict({**BASE, "tables": beside}, base_dir="/x").tables


def test_a_one_step_config_does_not_compare_the_folder_it_does_not_use() -> None:
    """`extract --url --lake .` writes no warehouse, `load --path --warehouse .` reads no
    lake: the other is only a default, and a refusal would name a field never given."""
    from onceflow.config import single_table_config, standalone_config

    extract = single_table_config("sqlite:///s.db", "s", "t", lake=".", base_dir="/x")
    assert extract.resolve(extract.lake) == "/x"
    load = standalone_config(warehouse=".", base_dir="/x")
    assert load.resolve(load.warehouse) == "/x"
    with pytest.raises(ConfigError, match="inside the warehouse"):
        config_from_dict({"warehouse": "."}, base_dir="/x")
