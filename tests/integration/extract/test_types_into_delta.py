"""Source types end to end: extracted, loaded into Delta by a run, read back exactly.

Delta has no time type, no decimal past 38 digits and no unsigned integers: such
columns keep their type in the lake and are stored as the documented Delta type.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from onceflow import Pipeline
from onceflow.warehouse import AUDIT_COLUMNS, read_table
from tests.helpers.extract import make_config

UUID_TEXT = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"


def _pipeline(tmp_path: Path, url: str, tables: list[str]) -> Pipeline:
    specs = [{"source": "src", "table": t, "name": t.rsplit(".", 1)[-1]} for t in tables]
    return Pipeline(make_config(tmp_path, {"src": url}, specs, pipeline="types"))


def _delta(pipeline: Pipeline, name: str) -> pa.Table:
    table = next(t for t in pipeline.config.tables if t.display_name == name)
    data = read_table(pipeline.config.resolve_target(table.target))
    return data.drop_columns([c for c in AUDIT_COLUMNS if c in data.column_names]).sort_by("id")


@pytest.mark.postgres
def test_postgres_types_delta_lacks_load_and_read_back(pg_admin, pg_schema, pg_url, tmp_path):
    table = f'"{pg_schema}".kinds'
    pg_admin.execute(
        f"CREATE TABLE {table} (id int, huge numeric(50,10), t time, tz timetz, price money, "
        "ip inet, ends timestamptz)"
    )
    pg_admin.execute(
        f"INSERT INTO {table} VALUES (1, 1234567890123456789012345678901234567890.0123456789, "
        "'12:34:56.5', '12:34:56+05:30', 12.34, '10.0.0.1', 'infinity'), "
        "(2, 0, '24:00:00', NULL, '-0.01', NULL, '2025-01-23 12:00+00'), "
        "(3, NULL, NULL, NULL, NULL, NULL, NULL)"
    )
    pipeline = _pipeline(tmp_path, pg_url, [f"{pg_schema}.kinds"])
    for day in ("2025-01-23", "2025-01-24"):  # the first load creates, the second appends
        summary = pipeline.run(day)
        assert summary.ok, summary.error
    data = _delta(pipeline, "kinds")
    assert data.schema == pa.schema(
        [
            ("id", pa.int32()),
            ("huge", pa.string()),
            ("t", pa.string()),
            ("tz", pa.string()),
            ("price", pa.decimal128(19, 2)),
            ("ip", pa.string()),
            ("ends", pa.timestamp("us", tz="UTC")),
        ]
    )
    first, second, _nulls = data.to_pylist()[::2]
    assert first["huge"] == "1234567890123456789012345678901234567890.0123456789"
    assert (first["t"], second["t"]) == ("12:34:56.500000", "24:00:00.000000")
    assert second["huge"] == "0.0000000000"
    assert (first["tz"], first["ip"]) == ("12:34:56+05:30", "10.0.0.1/32")
    assert (first["price"], second["price"]) == (Decimal("12.34"), Decimal("-0.01"))
    assert first["ends"].year == 9999
    assert data.num_rows == 6


@pytest.mark.postgres
def test_postgres_uuid_and_arrays_of_json_and_numeric_load_every_window_as_text(
    pg_admin, pg_schema, pg_url, tmp_path
):
    """The first window used to create a table Arrow could not read (a uuid tag on
    binary), and arrays of jsonb/numeric refused every later window."""
    from onceflow.consistency import validate_consistency

    table = f'"{pg_schema}".uu'
    pg_admin.execute(
        f"CREATE TABLE {table} (id int, u uuid, us uuid[], ja jsonb[], jj json[], "
        "na numeric[], j jsonb)"
    )
    pg_admin.execute(
        f"INSERT INTO {table} VALUES (1, '{UUID_TEXT}', ARRAY['{UUID_TEXT}'::uuid], "
        "ARRAY['{\"a\": 1}'::jsonb], ARRAY['[1]'::json], ARRAY[1.5, 0.00000001], "
        "'{\"b\": 2}'), (2, NULL, NULL, NULL, NULL, NULL, NULL)"
    )
    pipeline = _pipeline(tmp_path, pg_url, [f"{pg_schema}.uu"])
    for day in ("2025-01-23", "2025-01-24"):  # the first load creates, the second appends
        summary = pipeline.run(day)
        assert summary.ok, summary.error
    data = _delta(pipeline, "uu")
    text_list = pa.list_(pa.string())
    assert data.schema == pa.schema(
        [
            ("id", pa.int32()),
            ("u", pa.string()),
            ("us", text_list),
            ("ja", text_list),
            ("jj", text_list),
            ("na", text_list),
            ("j", pa.string()),
        ]
    )
    assert data.to_pylist()[0] == {
        "id": 1,
        "u": UUID_TEXT,
        "us": [UUID_TEXT],
        "ja": ['{"a": 1}'],
        "jj": ["[1]"],
        "na": ["1.5", "0.00000001"],
        "j": '{"b": 2}',
    }
    assert data.num_rows == 4
    assert validate_consistency(pipeline.config)["consistent"]


@pytest.mark.postgres
def test_postgres_money_and_oid_arrays_intervals_and_composites_load_and_read_back(
    pg_admin, pg_schema, pg_url, tmp_path
):
    """money[] held cents, an oid above 2^31 was negative, interval[] failed its table,
    and a composite holding infinity extracted "completed" and then failed every load
    with a Delta panic naming no column: each now loads, window after window, exactly."""
    s = pg_schema
    pg_admin.execute(f'CREATE TYPE "{s}".stay AS (until timestamptz, price money)')
    pg_admin.execute(
        f'CREATE TABLE "{s}".mixed (id int, coins money[], o oid, os oid[], '
        f'spans interval[], stay "{s}".stay)'
    )
    pg_admin.execute(
        f"""INSERT INTO "{s}".mixed VALUES
        (1, '{{12.34}}', 4294967295, '{{4294967295}}', '{{"1 day"}}',
         ROW('infinity', 12.34)),
        (2, NULL, NULL, NULL, NULL, NULL)"""
    )
    pipeline = _pipeline(tmp_path, pg_url, [f"{s}.mixed"])
    for day in ("2025-01-23", "2025-01-24"):  # the first load creates, the second appends
        summary = pipeline.run(day)
        assert summary.ok, summary.error
    data = _delta(pipeline, "mixed")
    assert data.num_rows == 4
    first = data.to_pylist()[0]
    stay = pg_admin.execute(f'SELECT stay::text FROM "{s}".mixed WHERE id = 1').fetchone()[0]
    assert first == {
        "id": 1,
        "coins": [Decimal("12.34")],
        "o": 4294967295,
        "os": [4294967295],
        "spans": [{"months": 0, "days": 1, "nanoseconds": 0}],
        "stay": stay,
    }
    assert stay.startswith("(infinity,")


@pytest.mark.mysql
def test_mysql_types_delta_lacks_load_and_read_back(mysql_admin, mysql_db, tmp_path):
    db = mysql_db.rsplit("/", 1)[1]
    with mysql_admin.cursor() as cur:
        cur.execute(f"USE `{db}`")
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute(
            "CREATE TABLE kinds (id int, widest decimal(65,30), span time(6), "
            "ubig bigint unsigned, utiny tinyint unsigned, day date)"
        )
        cur.execute(
            "INSERT INTO kinds VALUES (1, "
            "12345678901234567890123456789012345.123456789012345678901234567890, "
            "'838:59:59', 18446744073709551615, 255, '0000-00-00'), "
            "(2, -1, '-00:00:01.5', 0, 0, '2025-01-23'), (3, NULL, NULL, NULL, NULL, NULL)"
        )
    pipeline = _pipeline(tmp_path, mysql_db, ["kinds"])
    for day in ("2025-01-23", "2025-01-24"):  # the first load creates, the second appends
        summary = pipeline.run(day)
        assert summary.ok, summary.error
    data = _delta(pipeline, "kinds")
    assert data.schema == pa.schema(
        [
            ("id", pa.int32()),
            ("widest", pa.string()),
            ("span", pa.string()),
            ("ubig", pa.decimal128(20, 0)),
            ("utiny", pa.int16()),
            ("day", pa.date32()),
        ]
    )
    first, second, _nulls = data.to_pylist()[::2]
    assert first == {
        "id": 1,
        "widest": "12345678901234567890123456789012345.123456789012345678901234567890",
        "span": "838:59:59.000000",
        "ubig": Decimal(2**64 - 1),
        "utiny": 255,
        "day": None,
    }
    assert (second["widest"], second["span"]) == ("-1." + "0" * 30, "-00:00:01.500000")


@pytest.mark.mysql
def test_a_table_that_panics_the_driver_fails_alone_and_the_others_load(
    mysql_admin, mysql_db, tmp_path, monkeypatch
):
    """The panic used to end the run: the extraction stayed `running` and no table
    loaded. Now its table fails, the others load, and the run is marked failed."""
    from onceflow.extract.readers import MysqlReader

    db = mysql_db.rsplit("/", 1)[1]
    with mysql_admin.cursor() as cur:
        cur.execute(f"USE `{db}`")
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute("CREATE TABLE zd_date (id int, v date)")
        cur.execute("INSERT INTO zd_date VALUES (1, '0000-00-00')")
        cur.execute("CREATE TABLE fine (id int)")
        cur.execute("INSERT INTO fine VALUES (1), (2)")
    # read every column as it is, as onceflow did before: ConnectorX panics on the zero date
    monkeypatch.setattr(MysqlReader, "_select", staticmethod(lambda sql, _cols, _reads: sql))
    pipeline = _pipeline(tmp_path, mysql_db, ["zd_date", "fine"])
    summary = pipeline.run("2025-01-23")
    assert not summary.ok
    kind, message = summary.error or ("", "")
    assert kind == "ExtractError" and "the source driver failed (a panic)" in message
    assert summary.run.status == "failed"
    assert _delta(pipeline, "fine").column("id").to_pylist() == [1, 2]


def _appending(tmp_path: Path, url: str, table: str, name: str, *, widen: bool) -> Pipeline:
    """A pipeline appending one PostgreSQL table, with `load.widen` as given."""
    spec = {"source": "src", "table": table, "name": name}
    spec["load"] = {"strategy": "append", "widen": widen}
    return Pipeline(make_config(tmp_path, {"src": url}, [spec], pipeline="types"))


@pytest.mark.postgres
def test_postgres_alter_type_bigint_loads_what_fits_then_widens_on_request(
    pg_admin, pg_schema, pg_url, tmp_path
):
    table = f'"{pg_schema}".grown'
    pg_admin.execute(f"CREATE TABLE {table} (id int, amount numeric(10,2))")
    pg_admin.execute(f"INSERT INTO {table} VALUES (1, 1.25)")

    def pipeline(widen: bool) -> Pipeline:
        return _appending(tmp_path, pg_url, f"{pg_schema}.grown", "grown", widen=widen)

    assert pipeline(False).run("2025-01-23").ok
    pg_admin.execute(
        f"ALTER TABLE {table} ALTER COLUMN id TYPE bigint, ALTER COLUMN amount TYPE numeric(14,4)"
    )
    summary = pipeline(False).run("2025-01-24")  # 1 and 1.2500 fit int and numeric(10,2)
    assert summary.ok, summary.error
    types = _delta(pipeline(False), "grown").schema
    assert (types.field("id").type, types.field("amount").type) == (
        pa.int32(),
        pa.decimal128(10, 2),
    )
    pg_admin.execute(f"INSERT INTO {table} VALUES (5000000000, 0.0001)")
    failed = pipeline(False).run("2025-01-25")
    assert not failed.ok and failed.error is not None
    assert "column 'id'" in failed.error[1] and "5000000000" in failed.error[1]
    assert "`load: {widen: true}`" in failed.error[1]
    assert _delta(pipeline(False), "grown").num_rows == 2  # unchanged

    widened = pipeline(True).run("2025-01-25")
    assert widened.ok, widened.error
    data = _delta(pipeline(True), "grown")
    assert (data.schema.field("id").type, data.schema.field("amount").type) == (
        pa.int64(),
        pa.decimal128(14, 4),
    )
    assert sorted(data["id"].to_pylist()) == [1, 1, 1, 5000000000]
    assert Decimal("0.0001") in data["amount"].to_pylist()


@pytest.mark.postgres
def test_postgres_numeric_crossing_38_digits_keeps_loading_and_widens_to_text_on_request(
    pg_admin, pg_schema, pg_url, tmp_path
):
    """`huge` was numeric(50,10) (text in Delta), then numeric(30,10): it used to be
    refused as number -> text. `small` went from numeric(20,2) to numeric(40,2)."""
    table = f'"{pg_schema}".crossing'
    pg_admin.execute(f"CREATE TABLE {table} (id int, huge numeric(50,10), small numeric(20,2))")
    pg_admin.execute(f"INSERT INTO {table} VALUES (1, 0.0000000001, 1.25)")

    def pipeline(widen: bool) -> Pipeline:
        return _appending(tmp_path, pg_url, f"{pg_schema}.crossing", "crossing", widen=widen)

    assert pipeline(False).run("2025-01-23").ok
    pg_admin.execute(
        f"ALTER TABLE {table} ALTER COLUMN huge TYPE numeric(30,10), "
        "ALTER COLUMN small TYPE numeric(40,2)"
    )
    summary = pipeline(False).run("2025-01-24")  # each small value fits numeric(20,2)
    assert summary.ok, summary.error
    data = _delta(pipeline(False), "crossing")
    assert (data.schema.field("huge").type, data.schema.field("small").type) == (
        pa.string(),
        pa.decimal128(20, 2),
    )
    assert data["huge"].to_pylist() == 2 * ["0.0000000001"]  # the same text, not 1E-10
    big = "1" + "0" * 30 + ".00"
    pg_admin.execute(f"INSERT INTO {table} VALUES (2, 1, {big})")
    failed = pipeline(False).run("2025-01-25")
    assert not failed.ok and failed.error is not None
    assert "column 'small'" in failed.error[1] and big in failed.error[1]
    widened = pipeline(True).run("2025-01-25")
    assert widened.ok, widened.error
    data = _delta(pipeline(True), "crossing")
    assert data.schema.field("small").type == pa.string()
    assert sorted(data["small"].to_pylist()) == ["1.25", "1.25", "1.25", big]
