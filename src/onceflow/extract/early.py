"""A PostgreSQL connection opened while an extraction command is still starting.

A new ADBC connection costs ~40-60 ms (the libpq handshake and the driver's query of the
type catalogue), and it waits on the network and the server with the GIL released. A
command that extracts a small window spends ~150 ms loading its modules (Arrow, the
extractor) before its reader connects; opened in a thread as soon as the configuration
is known, the connection is ready when the reader wants it. The reader takes it with
`take`, or connects as always when there is none or it failed: the error is then
raised, classified and redacted, by the reader's own connect. An unused one is closed
by `close_unused` at the end of the extraction.

Light by design (no Arrow): the command imports it before the extractor.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from onceflow.config import Config
from onceflow.dialects import without_driver
from onceflow.errors import ConfigError

_pending: dict[str, Future[tuple[Any, Any]]] = {}
_lock = threading.Lock()


def adbc_url(url: str) -> str:
    """A PostgreSQL URL as libpq takes it: the scheme `postgresql://`, without the
    SQLAlchemy `+driver` suffix that names a Python driver ADBC does not use (libpq
    takes any other scheme for a `key=value` string: `missing "=" after ...`). A suffix
    that names no driver is refused before, by the config (`scheme_problem`)."""
    rest = without_driver(url).partition("://")[2]
    return f"postgresql://{rest}"


def open_connection(url: str) -> tuple[Any, Any]:
    """An ADBC PostgreSQL database and connection (the caller closes both)."""
    import adbc_driver_manager._lib as adbc
    import adbc_driver_postgresql

    database = adbc_driver_postgresql.connect(adbc_url(url))
    try:
        return database, adbc.AdbcConnection(database)
    except BaseException:
        database.close()
        raise


def connect_early(config: Config, tables: Sequence[str] | None = None) -> None:
    """Start opening the connection the first selected PostgreSQL table will read with."""
    try:
        selected = [config.table(k) for k in tables] if tables else list(config.tables)
    except ConfigError:
        return  # the extraction itself reports the unknown table
    for table in selected:
        try:
            source = config.source(table.source)  # its URL's ${VAR} resolved
        except (ConfigError, KeyError):
            continue  # the extraction itself reports it
        if source.dialect != "postgresql" or source.reader == "sqlalchemy":
            continue
        url = config.source_url(table.source)
        future: Future[tuple[Any, Any]] = Future()
        with _lock:
            if url in _pending:
                return
            _pending[url] = future

        def run(url: str = url, future: Future[tuple[Any, Any]] = future) -> None:
            try:
                future.set_result(open_connection(url))
            except BaseException as error:  # the reader connects again and reports it
                future.set_exception(error)

        threading.Thread(target=run, name="onceflow-connect", daemon=True).start()
        return  # one: a small run reads one table; the others connect when they start


def take(url: str) -> tuple[Any, Any] | None:
    """The early connection to `url`, waiting for it; None when there is none or it failed."""
    with _lock:
        future = _pending.pop(url, None)
    if future is None:
        return None
    try:
        return future.result()
    except (KeyboardInterrupt, SystemExit):
        # a Ctrl-C while waiting on the main thread (a host that does not answer): the
        # caller ends, and the connection, if it ever opens, is closed; None would have it
        # connect again. (A table's thread sees no signal: `onceflow.pools` leaves it.)
        future.add_done_callback(_close)
        raise
    except BaseException:  # the connect failed: the reader connects again and reports it
        return None


def close_unused() -> None:
    """Close early connections no reader took (every table was already committed).

    Without waiting: a run with nothing to read must not wait for a source it does not
    need (an unreachable host would hold it until the connect times out); a connection
    still opening is closed when it is ready.
    """
    with _lock:
        futures = list(_pending.values())
        _pending.clear()
    for future in futures:
        future.add_done_callback(_close)


def _close(future: Future[tuple[Any, Any]]) -> None:
    if future.exception() is not None:
        return
    database, conn = future.result()
    with contextlib.suppress(Exception):
        conn.close()
    with contextlib.suppress(Exception):
        database.close()
