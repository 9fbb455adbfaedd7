"""An incremental quantile (after appends) equals DuckDB's quantile_cont over the whole
table, bit for bit: numeric types, ties, NULLs, NaN, filters, extreme quantiles, tiny and
shifted appends; and it reads a band of the column, not a sort of all of it."""

from __future__ import annotations

import math
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from onceflow import Validator
from onceflow.validate import runner
from onceflow.warehouse import read_table
from tests.helpers.validate import write_delta

TYPES = {
    "decimal": pa.decimal128(12, 2),
    "double": pa.float64(),
    "bigint": pa.int64(),
    "int": pa.int32(),
}


def values(kind: str, rows: int, rng: random.Random, shift: float = 0.0) -> pa.Table:
    """`rows` rows: ~5% NULL values, many ties, a `grp` column to filter on."""

    def one() -> Any:
        if rng.random() < 0.05:
            return None
        x = rng.gauss(500 + shift, 120)
        if kind == "decimal":
            return Decimal(f"{x:.2f}")
        if kind == "double":
            return float("nan") if rng.random() < 0.002 else round(x, 1)
        return int(x) // 7  # few distinct values: ties everywhere

    return pa.table(
        {
            "v": pa.array([one() for _ in range(rows)], TYPES[kind]),
            "grp": pa.array([rng.randrange(3) for _ in range(rows)], pa.int64()),
        }
    )


def whole_column(path: Path, q: float, where: str) -> float | None:
    """DuckDB's quantile_cont over every row of the table (the full validation's answer;
    a DECIMAL interpolated in DOUBLE, as onceflow does, rather than cut to its scale)."""
    con = duckdb.connect()
    con.register("whole", read_table(str(path)))
    filt = f" WHERE {where}" if where else ""
    kind = con.execute("SELECT typeof(v) FROM whole LIMIT 1").fetchone()
    value = "v::DOUBLE" if kind and str(kind[0]).startswith("DECIMAL") else "v"
    got = con.execute(f"SELECT quantile_cont({value}, {q}) FROM whole{filt}").fetchone()
    assert got is not None
    return None if got[0] is None else float(got[0])


def same_float(a: float | str | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    a = float(a)  # a report shows a non-finite value as text ('nan')
    return (math.isnan(a) and math.isnan(b)) or a == b


def median_validator(tmp_path: Path) -> Validator:
    """A validator of table `t` with one rule: the median of `v`, with a state store."""
    rule = {
        "name": "q",
        "type": "statistic",
        "statistic": "quantile",
        "quantile": 0.5,
        "column": "v",
        "max": 1e9,
    }
    return Validator(rules_by_table={"t": [rule]}, state=f"sqlite:///{tmp_path / 's.db'}")


CASES = [
    # kind, quantile, filter, the appends (rows, shift)
    ("decimal", 0.5, "", [(60, 0.0), (1, 0.0), (40, 0.0)]),
    ("decimal", 0.9, "grp <> 1", [(50, 0.0), (50, 300.0)]),
    ("double", 0.25, "", [(80, 0.0), (30, -200.0)]),
    ("double", 0.99, "", [(20, 0.0), (20, 0.0)]),
    ("double", 1.0, "", [(20, 0.0)]),  # NaN is the largest value: no band, the whole column
    ("bigint", 0.5, "", [(70, 0.0), (2, 0.0)]),
    ("int", 0.0, "grp = 2", [(40, 0.0), (40, 50.0)]),
    ("int", 0.37, "", [(100, 0.0), (5, 0.0)]),
]


@pytest.mark.parametrize("window", [1024, 3, 0], ids=["window", "small-window", "band"])
@pytest.mark.parametrize(("kind", "q", "where", "appends"), CASES)
def test_an_incremental_quantile_equals_the_whole_columns_exactly(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    q: float,
    where: str,
    appends: list[tuple[int, float]],
    window: int,
) -> None:
    """The first append reads a band of the table, which leaves a window of the sorted
    column; later ones read the window and the new rows when it holds the ranks (1024
    values a side, or 3: it often misses, and a band answers again), or, without a
    window (0), the band."""
    monkeypatch.setattr(runner, "WINDOW", window)
    rng = random.Random(f"{kind}-{q}-{where}")
    path = tmp_path / "t"
    write_delta(path, values(kind, 2000, rng))
    rule: dict[str, Any] = {
        "name": "q",
        "type": "statistic",
        "statistic": "quantile",
        "quantile": q,
        "column": "v",
        "min": -1e9,
    }
    if where:
        rule["filter"] = where
    validator = Validator(rules_by_table={"t": [rule]}, state=f"sqlite:///{tmp_path / 's.db'}")
    first = validator.validate_table(path, "t").result("q")
    assert same_float(first.observed, whole_column(path, q, where))
    banded = windowed = 0
    for rows, shift in appends:
        write_delta(path, values(kind, rows, rng, shift), mode="append")
        got = validator.validate_table(path, "t").result("q")
        assert got.incremental
        assert same_float(got.observed, whole_column(path, q, where)), (rows, shift)
        banded += any("LIST_SORT" in s for s in got.sql)
        windowed += any(s.startswith("SELECT LIST_AGGREGATE") for s in got.sql)
    if q < 1.0:
        assert banded >= 1  # the first append: the band, which leaves a window
    if window == 0:
        assert windowed == 0


def test_an_append_without_new_values_in_scope_keeps_the_quantile_without_a_query(
    tmp_path: Path,
) -> None:
    rng = random.Random(3)
    path = tmp_path / "t"
    write_delta(path, values("decimal", 500, rng))
    validator = median_validator(tmp_path)
    before = validator.validate_table(path, "t").result("q").observed
    nulls = pa.table({"v": pa.nulls(10, TYPES["decimal"]), "grp": pa.array([0] * 10, pa.int64())})
    write_delta(path, nulls, mode="append")
    report = validator.validate_table(path, "t")
    assert report.result("q").incremental and report.result("q").observed == before
    assert report.data_queries == 1  # the new rows' aggregates; no read of the old rows


@pytest.mark.parametrize("kind", ["decimal", "double"])
def test_after_a_band_later_appends_read_only_the_window_and_the_new_rows(
    tmp_path: Path, kind: str
) -> None:
    rng = random.Random(kind)
    path = tmp_path / "t"
    write_delta(path, values(kind, 20000, rng))
    validator = median_validator(tmp_path)
    validator.validate_table(path, "t")
    for append in range(4):
        write_delta(path, values(kind, 200, rng), mode="append")
        got = validator.validate_table(path, "t").result("q")
        assert got.incremental and same_float(got.observed, whole_column(path, 0.5, ""))
        if append == 0:
            assert any("LIST_SORT" in s for s in got.sql)  # the band, once
        else:  # the fused query on the new rows, and the interpolation of two values
            assert len(got.sql) == 2 and " FROM new" in got.sql[0], got.sql
            assert got.sql[1].startswith("SELECT LIST_AGGREGATE") and "FROM" not in got.sql[1]
