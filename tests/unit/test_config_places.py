"""The lake's table folders and the Delta tables live apart: a lake file in a Delta table's
folder is deleted by a Spark or Databricks VACUUM, as a file no commit names, and a Delta
file in a table's lake folder is taken for an unfinished extraction. The lake and the
warehouse folders themselves may nest (`s3://corp-data` holding `s3://corp-data/raw`)."""

from __future__ import annotations

from pathlib import Path

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
    assert (
        "each table's lake folder (<lake>/<source>/<table>) would be its Delta table's" in message
    )
    assert message.endswith("(e.g. `lake: ./lake`, `warehouse: ./warehouse`)")


@pytest.mark.parametrize(
    ("lake", "warehouse"),
    [
        ("s3://corp-data/raw", "s3://corp-data"),
        ("/data/lakehouse/landing", "/data/lakehouse"),
        ("/data", "/data/warehouse"),
        ("./warehouse/pg", "./warehouse"),
        ("./lake", "."),
        ("./lake", "/"),
        ("s3://b/lake", "s3://b/lake/wh"),
        ("file:///data/lake", "/data/lake/wh"),
    ],
)
def test_a_lake_and_a_warehouse_one_inside_the_other_are_accepted(
    lake: str, warehouse: str
) -> None:
    """Tables at <warehouse>/<source>/<table>, lake files at <lake>/<source>/<table>/...:
    no folder holds both. Refusing any nesting refused these common layouts."""
    config = config_from_dict({**BASE, "lake": lake, "warehouse": warehouse}, base_dir="/x")
    assert (config.lake, config.warehouse) == (lake, warehouse)


@pytest.mark.parametrize(
    ("lake", "warehouse", "source"),
    [
        # the source's tables land at <warehouse>/raw/<table>: inside the lake, not chosen
        ("s3://corp-data/raw", "s3://corp-data", "raw"),
        ("/data/lakehouse/landing", "/data/lakehouse", "landing"),
    ],
)
def test_a_source_named_like_the_lake_folder_is_refused_for_its_tables(
    lake: str, warehouse: str, source: str
) -> None:
    tables = [{"source": source, "table": "orders"}]
    sources = {source: {"url": "postgresql://app@localhost/shop"}}
    refused = _refusal(lake=lake, warehouse=warehouse, sources=sources, tables=tables)
    assert refused.field == "tables[0].load.target"
    assert f"the Delta table of '{source}.orders' ({lake}/orders) would sit inside the lake" in (
        str(refused)
    )


def test_a_source_named_like_a_warehouse_inside_the_lake_is_refused() -> None:
    # lake /x/data, warehouse /x/data/warehouse: a source `warehouse` has its lake folder
    # /x/data/warehouse/shop, where the Delta table of source `shop`'s table sits
    sources = {n: {"url": "postgresql://app@localhost/shop"} for n in ("shop", "warehouse")}
    tables = [{"source": "shop", "table": "orders"}, {"source": "warehouse", "table": "shop"}]
    refused = _refusal(lake="./data", warehouse="./data/warehouse", sources=sources, tables=tables)
    assert refused.field == "tables[0].load.target"
    assert str(refused).startswith(
        "onceflow.yml: tables[0].load.target: the Delta table of 'shop.orders' "
        "(/x/data/warehouse/shop/orders) would sit inside the lake folder of "
        "'warehouse.shop' (/x/data/warehouse/shop)"
    )


def test_a_target_holding_a_tables_lake_folder_is_refused() -> None:
    tables = [{"source": "shop", "table": "orders", "load": {"target": "/x/lake/shop"}}]
    refused = _refusal(tables=tables)
    assert refused.field == "tables[0].load.target"
    assert "would hold the lake folder of 'shop.orders' (/x/lake/shop/orders)" in str(refused)


def test_folders_are_compared_through_symlinks_and_file_uris(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "lake").mkdir(parents=True)
    (tmp_path / "link").symlink_to(real)
    for lake, target in (
        # one folder under two spellings: the table is the lake's folder
        (f"{tmp_path}/link/lake", f"{real}/lake"),
        (f"file://{real}/lake", f"{real}/lake"),
        (f"{real}/lake", f"file://{tmp_path}/link/lake/"),
    ):
        tables = [{"source": "shop", "table": "orders", "load": {"target": target}}]
        with pytest.raises(ConfigError, match="would be the lake's folder"):
            config_from_dict({**BASE, "lake": lake, "tables": tables}, base_dir="/x")
    with pytest.raises(ConfigError, match="the lake and the warehouse are one folder"):
        config_from_dict(
            {**BASE, "lake": f"{tmp_path}/link", "warehouse": f"file://{real}"}, base_dir="/x"
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
        ("/x/lake/shop/orders", "be the lake folder of 'shop.orders' (/x/lake/shop/orders)"),
        ("/x/lake/shop/orders/t", "sit inside the lake folder of 'shop.orders' (/x/lake/shop/"),
        ("/x/lake/elsewhere/t", "sit inside the lake (/x/lake)"),
        ("../lake", "be the lake's folder (/x/lake)"),
        ("/x", "hold the lake (/x/lake)"),
    ],
)
def test_a_table_target_inside_or_around_the_lake_is_refused(target: str, said: str) -> None:
    tables = [{"source": "shop", "table": "orders", "load": {"target": target}}]
    refused = _refusal(tables=tables)
    assert refused.field == "tables[0].load.target"
    assert "the Delta table of 'shop.orders' " in str(refused)
    assert f"would {said}" in str(refused)


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
    with pytest.raises(ConfigError, match="one folder"):
        config_from_dict({"warehouse": "./lake"}, base_dir="/x")


@pytest.mark.parametrize("target", ["s3://b/t/", "/data/t/", "file:///data/t/"])
def test_an_absolute_target_with_a_trailing_slash_is_not_nested_in_itself(target: str) -> None:
    tables = [
        {
            "source": "shop",
            "table": "orders",
            "load": {"target": target, "strategy": "merge", "primary_key": ["id"]},
            "quarantine": True,
        }
    ]
    config = config_from_dict({**BASE, "tables": tables}, base_dir="/x")
    assert config.tables[0].target == target


def test_two_spellings_of_one_table_folder_are_refused_as_one_table(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    sources = {"shop": {"url": "postgresql://app@localhost/shop"}}
    for first, second, said in (
        (f"{tmp_path}/real/t", f"{tmp_path}/link/t", "be the same folder as that of"),
        (f"{tmp_path}/real/t", f"file://{tmp_path}/link/t/part", "sit inside the folder of"),
    ):
        tables = [
            {"source": "shop", "table": "a", "load": {"target": first}},
            {"source": "shop", "table": "b", "load": {"target": second}},
        ]
        with pytest.raises(ConfigError, match=rf"would {said} 'shop\.a'"):
            config_from_dict({"sources": sources, "tables": tables}, base_dir="/x")


def test_a_delta_table_path_with_a_percent_escape_is_refused_naming_the_field() -> None:
    """delta-rs decodes `%20` in a local table path when it opens the table: a warehouse
    `wh data%20x` was written once, then read as `wh data x`, and every load failed."""
    refused = _refusal(warehouse="./wh data%20x")
    assert refused.field == "warehouse"
    assert "has '%20' in its folder name" in str(refused)
    target = {"source": "shop", "table": "orders", "load": {"target": "./t%41"}}
    refused = _refusal(tables=[target])
    assert refused.field == "tables[0].load.target" and "'%41'" in str(refused)
    # a `%` that is no escape, and a URL's own escapes, are fine
    for fine in ("./wh 100%", "s3://bucket/wh%20x"):
        config_from_dict({**BASE, "warehouse": fine}, base_dir="/x")
