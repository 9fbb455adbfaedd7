"""Source readers: each streams a ReadSpec as Arrow record batches in bounded memory.

Chosen per dialect by measurement (bench/RESULTS.md): ADBC for PostgreSQL (binary COPY,
bound parameters) and SQLite, ConnectorX for MySQL/MariaDB after a pymysql preflight
(fast credential and schema errors, declared types), SQLAlchemy for anything else.

One module per reader: `postgres` (over `adbc`), `sqlite` (over `sqlite_types` and
`sqlite_split`), `mysql`, `sqlalchemy` (anything else, Oracle included); `base` holds what
they share (Reader, `cast_batches`, the cursor check), `cursors` how a cursor column is judged.
`make_reader` picks one.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from onceflow.config import SourceConfig
from onceflow.errors import SourceError
from onceflow.extract.readers.base import Reader
from onceflow.extract.readers.mysql import MysqlReader
from onceflow.extract.readers.postgres import PostgresReader
from onceflow.extract.readers.sqlalchemy import SqlAlchemyReader
from onceflow.extract.readers.sqlite import SqliteReader, sqlite_bound

__all__ = ["MysqlReader", "PostgresReader", "SqliteReader", "make_reader", "sqlite_bound"]


def make_reader(source: SourceConfig, url: str, zone: ZoneInfo, where: str) -> Reader:
    """The reader for a source: its `reader:` setting, or the fastest for its dialect."""
    choice = source.resolved_reader
    # as `check` refuses it: an unknown scheme or driver (else SQLAlchemy's
    # NoSuchModuleError), a SQLAlchemy driver not installed (else "No module named
    # 'MySQLdb'"), each with no fix
    problem = source.reader_problem() or source.driver_problem()
    if problem:
        raise SourceError(f"{where}: {problem}")
    if choice == "sqlalchemy":
        return SqlAlchemyReader(source, url, zone, where)
    if source.dialect == "postgresql":
        return PostgresReader(source, url, zone, where)
    if source.dialect == "sqlite":
        return SqliteReader(source, url, zone, where)
    if source.dialect == "mysql":
        return MysqlReader(source, url, zone, where)
    raise SourceError(
        f"{where}: reader {choice!r} does not support {source.dialect}; use reader: sqlalchemy"
    )
