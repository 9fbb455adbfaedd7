from __future__ import annotations

from datetime import date
from pathlib import Path

from onceflow.extract.sql import ReadSpec, build_select, to_positional
from onceflow.lake.paths import (
    is_unity_catalog_volume,
    normalize_lake_path,
    output_path,
    safe_component,
    sidecar_path,
)
from onceflow.windows import window_for

WINDOW = window_for(date(2025, 1, 23))


def test_table_names_are_quoted_not_interpolated() -> None:
    sql, names = build_select(ReadSpec('x"; drop table y; --', None, None, None))
    assert sql == 'SELECT * FROM "x""; drop table y; --"'
    assert names == []


def test_schema_qualified_table_is_quoted_part_by_part() -> None:
    sql, _ = build_select(ReadSpec("public.orders", None, None, None), "`")
    assert sql == "SELECT * FROM `public`.`orders`"


def test_incremental_window_uses_bound_parameters() -> None:
    sql, names = build_select(ReadSpec("orders", None, "updated_at", WINDOW))
    assert names == ["window_start", "window_end"]
    assert "2025" not in sql
    assert to_positional(sql, "dollar").endswith('"updated_at" >= $1 AND "updated_at" < $2')
    assert to_positional(sql, "qmark").endswith('"updated_at" >= ? AND "updated_at" < ?')


def test_custom_query_markers_are_bound_in_order() -> None:
    query = "select * from t where b < :window_end and a >= :window_start"
    sql, names = build_select(ReadSpec(None, query, "a", WINDOW))
    assert sql == query
    assert names == ["window_end", "window_start"]
    assert to_positional(sql, "format") == "select * from t where b < %s and a >= %s"


def test_custom_query_without_markers_is_wrapped() -> None:
    sql, names = build_select(ReadSpec(None, "select * from t;", "ts", WINDOW))
    assert sql.startswith("SELECT * FROM (select * from t) onceflow_q WHERE")
    assert names == ["window_start", "window_end"]


def test_percent_signs_survive_format_style() -> None:
    assert to_positional("select '50%' where a >= :window_start", "format") == (
        "select '50%%' where a >= %s"
    )


def test_output_layout() -> None:
    path = output_path("/lake", "shop", "public.orders", date(2025, 1, 23), "daily_20250123")
    assert path == Path("/lake/shop/public.orders/202501/23/daily_20250123.parquet")
    assert sidecar_path(path).name == "daily_20250123_metadata.json"


def test_hostile_table_names_stay_inside_the_lake() -> None:
    assert safe_component("../../etc").startswith("etc-")
    assert "/" not in safe_component('x"; drop table y; --')
    # A changed name carries a hash of the original: distinct tables never share a folder.
    assert safe_component("../../etc") != safe_component("etc") == "etc"
    assert safe_component("order items") != safe_component("order_items")


def test_databricks_paths() -> None:
    assert normalize_lake_path("dbfs:/mnt/raw") == "/dbfs/mnt/raw"
    assert normalize_lake_path("dbfs:///mnt/raw") == "/dbfs/mnt/raw"
    volume = "/Volumes/main/bronze/landing/lake"
    assert normalize_lake_path(volume) == volume
    assert is_unity_catalog_volume(volume)
    assert not is_unity_catalog_volume("/tmp/lake")
    path = output_path("dbfs:/mnt/raw", "s", "t", date(2025, 1, 2), "r")
    assert str(path) == "/dbfs/mnt/raw/s/t/202501/02/r.parquet"
