"""MySQL/MariaDB through `reader: sqlalchemy`: a result's Arrow types from the server's
description of it, so a `query:` is typed as a `table:` (whose types come from
reflection) and as the native reader types it.

Without them a query's types were inferred from its values: `bigint unsigned`
18446744073709551615 failed with an OverflowError naming no column, `tinyint`/`int
unsigned` were `int64`, and a date column whose rows all held zero dates (which PyMySQL
gives as their text) was a string column, with one real date a date column: the type
depended on the data. The UNSIGNED flag and the charset are in PyMySQL's field packets
(`cursor._result.fields`), as the native reader reads them; a driver without them
(mysqlclient) gets the types the description alone decides, its integers, decimals and
text still inferred.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from onceflow.extract.readers.mysql import (
    MYSQL_DECIMAL,
    MYSQL_JSON,
    MYSQL_TIMESTAMP,
    MYSQL_UNSIGNED_FLAG,
    MysqlReader,
)
from onceflow.extract.types import decimal_type

# field type code -> (signed, unsigned), as `table:` reflection types them (MEDIUMINT, 24 bits)
_INTEGERS = {
    1: (pa.int8(), pa.uint8()),
    2: (pa.int16(), pa.uint16()),
    3: (pa.int32(), pa.uint32()),
    8: (pa.int64(), pa.uint64()),
    9: (pa.int32(), pa.uint32()),
}
# decided by the code alone: FLOAT is a double as SQLAlchemy reflects it; DATE, NEWDATE,
# DATETIME; a TIMESTAMP is an instant, the session being in UTC
_BY_CODE = {
    4: pa.float64(),
    5: pa.float64(),
    10: pa.date32(),
    14: pa.date32(),
    12: pa.timestamp("us"),
    MYSQL_TIMESTAMP: pa.timestamp("us", tz="UTC"),
    MYSQL_JSON: pa.json_(pa.string()),
}
# VARCHAR/CHAR, the TEXT and BLOB family: text, or bytes in the binary charset
_TEXTS = {15, 249, 250, 251, 252, 253, 254}
_BINARY_CHARSET = 63


def mysql_declared(cursor: Any) -> dict[str, pa.DataType]:
    """The Arrow type of each column of a PyMySQL cursor's result whose type the server
    decides; the others (YEAR, BIT, TIME, spatial) are left to their values, as for a
    table."""
    description: Sequence[Any] = list(cursor.description or ())
    fields = list(getattr(getattr(cursor, "_result", None), "fields", None) or [])
    if len(fields) != len(description):
        fields = []  # not PyMySQL's: no flags, no charset
    out: dict[str, pa.DataType] = {}
    for index, (name, code, _disp, length, _prec, scale, _null) in enumerate(description):
        field = fields[index] if fields else None
        flags = getattr(field, "flags", None)
        if code in _BY_CODE:
            out[name] = _BY_CODE[code]
        elif flags is None:
            continue  # unsigned or not, binary or not: unknown
        elif code in _INTEGERS:
            out[name] = _INTEGERS[code][bool(flags & MYSQL_UNSIGNED_FLAG)]
        elif code in MYSQL_DECIMAL and length is not None:
            s = int(scale or 0)
            out[name] = decimal_type(MysqlReader._decimal_precision(int(length), s, flags), s)
        elif code in _TEXTS:
            binary = getattr(field, "charsetnr", None) == _BINARY_CHARSET
            out[name] = pa.binary() if binary else pa.string()
    return out
