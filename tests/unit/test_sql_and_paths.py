from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from onceflow.extract.sql import (
    ReadSpec,
    build_select,
    table_parts,
    to_positional,
    to_session_settings,
    to_sqlalchemy,
    without_window,
)
from onceflow.lake.paths import (
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


@pytest.mark.parametrize(
    ("table", "parts"),
    [
        ('public."we.ird"', ["public", "we.ird"]),
        ("db.`we.ird`", ["db", "we.ird"]),
        ('"a""b".c', ['a"b', "c"]),
        ("cat.sch.tab", ["cat", "sch", "tab"]),
        # not a sequence of whole parts: split at every dot as before, quotes kept
        ('shop.x"; drop table y; --', ["shop", 'x"; drop table y; --']),
        ('public."we.ird', ["public", '"we', "ird"]),
        ("a.b.c.d", ["a.b.c.d"]),
        ("a..b", ["a..b"]),
    ],
)
def test_a_table_name_is_split_at_dots_outside_quotes(table: str, parts: list[str]) -> None:
    assert table_parts(table) == parts


def test_a_quoted_table_name_holding_a_dot_is_one_identifier() -> None:
    sql, _ = build_select(ReadSpec('public."we.ird"', None, None, None))
    assert sql == 'SELECT * FROM "public"."we.ird"'


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


def test_a_file_lives_under_source_table_month_day_with_its_sidecar_beside_it() -> None:
    path = output_path("/lake", "shop", "public.orders", date(2025, 1, 23), "daily_20250123")
    assert path == Path("/lake/shop/public.orders/202501/23/daily_20250123.parquet")
    assert sidecar_path(path).name == "daily_20250123_metadata.json"


def test_hostile_table_names_stay_inside_the_lake() -> None:
    assert safe_component("../../etc").startswith("etc-")
    assert "/" not in safe_component('x"; drop table y; --')
    # A changed name carries a hash of the original: distinct tables never share a folder.
    assert safe_component("../../etc") != safe_component("etc") == "etc"
    assert safe_component("order items") != safe_component("order_items")


def test_dbfs_paths_are_read_as_the_fuse_mount_and_volume_paths_as_written() -> None:
    assert normalize_lake_path("dbfs:/mnt/raw") == "/dbfs/mnt/raw"
    assert normalize_lake_path("dbfs:///mnt/raw") == "/dbfs/mnt/raw"
    volume = "/Volumes/main/bronze/landing/lake"
    assert normalize_lake_path(volume) == volume
    path = output_path("dbfs:/mnt/raw", "s", "t", date(2025, 1, 2), "r")
    assert str(path) == "/dbfs/mnt/raw/s/t/202501/02/r.parquet"


LITERAL_MARKERS = [
    ("postgresql", "select ':window_end' as a, x where x >= :window_start"),
    ("postgresql", "select 'it''s :window_end', \":window_end\" where x >= :window_start"),
    ("postgresql", r"select 'C:\', x where x >= :window_start"),
    ("postgresql", r"select E'\' :window_end', x where x >= :window_start"),
    ("postgresql", "select $$:window_end$$, $q$ :window_end $q$ where x >= :window_start"),
    ("postgresql", "select 1 /* a /* :window_end */ :window_end */ where x >= :window_start"),
    ("postgresql", "select 1 -- :window_end\n where x >= :window_start"),
    ("mysql", r"select 'it\'s :window_end', x where x >= :window_start"),
    ("mysql", 'select ":window_end", `:window_end` where x >= :window_start'),
    ("mysql", "select 1 # :window_end\n where x >= :window_start"),
    ("sqlite", "select [:window_end], `:window_end` where x >= :window_start"),
    ("sqlite", "select 1 /* /* :window_end */ where x >= :window_start"),
    ("oracle", "select q'[ it's :window_end ]' from dual where x >= :window_start"),
    ("", "select ':window_end', \":window_end\" where x >= :window_start"),
]


@pytest.mark.parametrize(
    ("dialect", "query"),
    LITERAL_MARKERS,
    # ids without the word the unit conftest takes for a server test
    ids=[
        f"{d or 'generic'}-{i}".replace("postgresql", "pg")
        for i, (d, _) in enumerate(LITERAL_MARKERS)
    ],
)
def test_markers_in_literals_names_and_comments_are_text(dialect: str, query: str) -> None:
    sql, names = build_select(ReadSpec(None, query, "x", WINDOW), dialect=dialect)
    assert names == ["window_start"]
    positional = to_positional(sql, "qmark", dialect=dialect)
    assert positional.count("?") == 1 + query.count("?")
    assert positional.endswith("x >= ?")
    assert without_window(sql, dialect) == query.replace("x >= :window_start", "x >= NULL")


def test_markers_in_code_around_literals_are_all_found() -> None:
    query = "select 'a'':b', \"c:d\" -- x\n where (x >= :window_start) and x<:window_end::date"
    _, names = build_select(ReadSpec(None, query, "x", WINDOW), dialect="postgresql")
    assert names == ["window_start", "window_end"]
    assert to_session_settings(query).count("current_setting") == 2


def test_mysql_executable_comments_and_dashes_without_space_are_code() -> None:
    query = "select 5--:window_start, /*! :window_end */ 1"
    assert to_positional(query, "format", dialect="mysql") == "select 5--%s, /*! %s */ 1"


def test_format_style_doubles_percent_in_literals_but_keeps_their_markers() -> None:
    query = "select '50%', ':window_end' where a >= :window_start"
    assert to_positional(query, "format", dialect="mysql") == (
        "select '50%%', ':window_end' where a >= %s"
    )


def test_sqlalchemy_text_escapes_colons_in_literals_and_keeps_markers() -> None:
    query = "select 'a:window_end', x::int where a >= :window_start"
    assert to_sqlalchemy(query, "postgresql") == (
        r"select 'a\:window_end', x\:\:int where a >= :window_start"
    )


def test_a_query_ending_in_a_line_comment_is_wrapped_after_it() -> None:
    sql, _ = build_select(ReadSpec(None, "select * from t -- note", "ts", WINDOW))
    assert "-- note\n) onceflow_q WHERE" in sql
