"""SQLite's split read: a column whose storage classes decide its type is read as its
class and its value of each class, then joined back into one exact column.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from onceflow.errors import SourceError
from onceflow.extract.readers.sqlite_types import sqlite_affinity, sqlite_type
from onceflow.extract.sql import quote_ident

# A column whose declared type does not settle its values' storage class (none, or
# NUMERIC affinity), or a DECIMAL(p,s) read as a decimal, is read "split": its storage
# class and its value of each class in columns of their own, none of them ever NULL. The
# driver types a column from its first batch and then converts what follows (an integer
# beyond 2**53 to a rounded double, a real to 15 or 6 digits of text) or fails on it
# (an int64 column, NULL through its first batch, meeting a real); a split column gives
# it one class per driver column, typed from the first row.
_CLASSES = ("integer", "real", "text", "blob")
_NULL, _REAL, _BLOB = 0, 2, 4
_CLASS_CODE = (
    "CASE typeof({c}) WHEN 'null' THEN 0 WHEN 'integer' THEN 1 WHEN 'real' THEN 2 "
    "WHEN 'text' THEN 3 ELSE 4 END"
)
_AS_REAL = "CASE WHEN typeof({c}) IN ('integer', 'real') THEN CAST({c} AS REAL) ELSE 0.0 END"
_AS_TEXT = "CASE WHEN typeof({c}) IN ('integer', 'text') THEN CAST({c} AS TEXT) ELSE '' END"
_AS_BLOB = "CASE WHEN typeof({c}) = 'blob' THEN {c} ELSE x'' END"
# every integer of magnitude up to 2**53 is exactly a double
_EXACT_IN_DOUBLE = 2**53


def sqlite_unsettled(declared: dict[str, str], table: bool) -> list[str]:
    """The columns whose storage classes decide their type: no declared type, or NUMERIC
    affinity (`NUMERIC`, `DECIMAL`, a query's `DECIMAL(p,s)`), where no declaration is
    applied."""
    return [
        column
        for column, kind in declared.items()
        if sqlite_affinity(kind) is None and not (table and sqlite_type(kind) is not None)
    ]


def sqlite_classes(cur: Any, sql: str, values: list[str], columns: list[str]) -> list[Any]:
    """For each column, whether it holds integers, reals, text, blobs, and integers a
    double cannot hold: one aggregate pass over the result (in the read's transaction)."""
    parts = []
    for column in columns:
        c = f"q.{quote_ident(column)}"
        parts += [f"max(typeof({c}) = '{kind}')" for kind in _CLASSES]
        parts.append(
            f"max(typeof({c}) = 'integer' AND ({c} > {_EXACT_IN_DOUBLE} "
            f"OR {c} < -{_EXACT_IN_DOUBLE}))"
        )
    cur.execute(f"SELECT {', '.join(parts)} FROM ({sql}) AS q", parameters=values or None)
    row = cur.fetchone() or ()
    return [bool(v) for v in row]


def sqlite_choice(where: str, column: str, found: Sequence[bool]) -> pa.DataType | None:
    """The type that holds every value of a column exactly, from the storage classes it
    holds; None for int64 (or no value), which the driver reads as it is."""
    integer, real, text, blob, big = found
    if blob and (integer or real or text):
        raise SourceError(
            f"{where}: column {column!r} holds BLOBs and other values (no declared type, "
            "or NUMERIC), which no one type holds exactly; extract the table with a "
            f"`query:` that reads it as one kind, e.g. hex({column}) or "
            f"CAST({column} AS TEXT)"
        )
    if blob:
        return pa.binary()
    if text or (real and big):
        # numbers as their exact text: an integer's digits, a real's shortest round trip
        return pa.string()
    if real:
        return pa.float64()
    return None


def _int64_scalar(value: int) -> Any:
    """An int64 scalar without pa.scalar(), which imports pandas (see adbc._text)."""
    data = pa.py_buffer(struct.pack("<q", value))
    return pa.Array.from_buffers(pa.int64(), 1, [None, data])[0]


class JoinedColumns:
    """The driver's batches with each split column joined back into one column."""

    def __init__(
        self,
        reader: pa.RecordBatchReader,
        layout: list[tuple[str, pa.DataType | None]],
        where: str,
    ) -> None:
        self._reader = reader
        self._where = where
        self._layout = layout
        self.schema = pa.schema(
            [
                (name, reader.schema.field(self._index(i)).type if wanted is None else wanted)
                for i, (name, wanted) in enumerate(layout)
            ]
        )
        self._null, self._real, self._blob = (_int64_scalar(v) for v in (_NULL, _REAL, _BLOB))

    def _index(self, position: int) -> int:
        return sum(1 if w is None else _width(w) for _, w in self._layout[:position])

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for batch in self._reader:
            yield self._join(batch)

    def _join(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        from pyarrow._compute import call_function

        columns, at = [], 0
        for name, wanted in self._layout:
            if wanted is None:
                columns.append(batch.column(at))
                at += 1
                continue
            parts = [batch.column(i) for i in range(at, at + _width(wanted))]
            at += len(parts)
            kind = parts[0]
            if pa.types.is_binary(wanted) or pa.types.is_floating(wanted):
                value = parts[1]
            else:
                # only a DECIMAL(p,s) column is read as text with a blob in it
                if call_function("any", [call_function("equal", [kind, self._blob])]).as_py():
                    raise SourceError(
                        f"{self._where}: column {name!r} holds a BLOB, which no decimal "
                        f"holds; extract the table with a `query:` that reads it as one "
                        f"kind, e.g. hex({name}), or declare the column BLOB"
                    )
                real = call_function("equal", [kind, self._real])
                value = parts[2]
                if call_function("any", [real]).as_py():
                    value = call_function("if_else", [real, parts[1].cast(pa.string()), value])
            null = call_function("equal", [kind, self._null])
            if call_function("any", [null]).as_py():
                value = call_function("if_else", [null, pa.nulls(1, value.type)[0], value])
            columns.append(value)
        return pa.RecordBatch.from_arrays(columns, schema=self.schema)


def _width(wanted: pa.DataType) -> int:
    """How many driver columns a split column takes: class, then double and/or text."""
    return 3 if pa.types.is_string(wanted) else 2


def split_select(sql: str, layout: list[tuple[str, pa.DataType | None]]) -> str:
    """`sql` with its split columns read as their class, double and text (or blob)."""
    out = []
    for name, wanted in layout:
        c = f"q.{quote_ident(name)}"
        if wanted is None:
            out.append(c)
            continue
        out.append(_CLASS_CODE.format(c=c))
        if not pa.types.is_binary(wanted):
            out.append(_AS_REAL.format(c=c))
        if pa.types.is_binary(wanted):
            out.append(_AS_BLOB.format(c=c))
        elif not pa.types.is_floating(wanted):
            out.append(_AS_TEXT.format(c=c))
    return f"SELECT {', '.join(out)} FROM ({sql}) AS q"
