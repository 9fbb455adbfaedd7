"""The DuckDB engine: Delta snapshots, Parquet, Arrow and data frames without copying.

A cursor of onceflow's one in-process DuckDB database (`warehouse.duck`): its views and
registrations are its own and go when it closes. Arrow data (a Delta snapshot's dataset,
a table, a pandas or polars frame) is scanned in place with projection and filter
pushdown; Parquet files go through DuckDB's own reader.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from onceflow.validate.engines.base import Engine
from onceflow.warehouse.duck import NAN_SAFE, duck, prepare, q

_T = TypeVar("_T")


class DuckDBEngine(Engine):
    """DuckDB, in process."""

    name = "duckdb"
    dialect = "duckdb"

    @classmethod
    def prepare(cls) -> None:
        prepare()

    def __init__(self, *, max_retries: int = 3, retry_delay: float = 1.0) -> None:
        super().__init__(max_retries=max_retries, retry_delay=retry_delay)
        self._context: AbstractContextManager[Any] = duck()
        self.con = self._context.__enter__()
        self._keep: list[Any] = []  # registered objects must outlive the cursor's scans
        # what made the registered relations, for a fork: a cursor sees only its own views
        self._setup: list[Callable[[DuckDBEngine], None]] = []
        # each registered relation's source (Arrow data or Parquet paths) and the column
        # names in it that differ only in case (see `columns`)
        self._sources: dict[str, Any] = {}
        self._clashes: dict[str, frozenset[str]] = {}

    def syntax_error(self, sql: str) -> str | None:
        # DuckDB's parser alone: no binding, no data, not a statement of the validation
        found = self.con.execute("SELECT json_serialize_sql(?::VARCHAR)", [sql]).fetchone()
        parsed = json.loads(found[0]) if found else {}
        # only a syntax error counts: DuckDB serializes SELECTs alone (a PIVOT statement
        # parses, then is refused here) and then leaves the statement to run
        if not parsed.get("error") or parsed.get("error_type") != "parser":
            return None
        return str(parsed.get("error_message") or "syntax error").splitlines()[0]

    def register_arrow(self, name: str, data: Any) -> None:
        self._keep.append(data)
        self._sources[name] = data
        self.con.register(name, data)
        self._setup.append(lambda engine: engine.register_arrow(name, data))

    def register_parquet(self, name: str, paths: list[str], *, union_by_name: bool = False) -> None:
        if not paths:  # read_parquet needs a file: an empty relation of no columns
            self.create_view(name, "SELECT 1 AS _ WHERE FALSE")
            return
        self._sources[name] = list(paths)
        files = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
        option = ", union_by_name = true" if union_by_name else ""
        self.create_view(name, f"SELECT * FROM read_parquet([{files}]{option}{NAN_SAFE})")

    def create_view(self, name: str, sql: str) -> None:
        self._statement(lambda: self.con.execute(f"CREATE OR REPLACE TEMP VIEW {q(name)} AS {sql}"))
        self._setup.append(lambda engine: engine.create_view(name, sql))

    def fork(self) -> DuckDBEngine:
        """Another cursor of the same database with the same relations registered."""
        other = DuckDBEngine(max_retries=self.max_retries, retry_delay=self.retry_delay)
        try:
            for step in self._setup:
                step(other)
        except BaseException:
            other.close()
            raise
        other.statements = self.statements  # one count of what ran, for tests and the report
        return other

    def columns(self, name: str) -> dict[str, str]:
        rows = self._statement(
            lambda: self.con.execute(f"DESCRIBE SELECT * FROM {q(name)}").fetchall()
        )
        found = {str(r[0]): str(r[1]) for r in rows}
        if _renamed(found) and name in self._sources:
            self._clashes[name] = _same_but_case(_source_names(self._sources[name]))
        return found

    def case_clashes(self, name: str) -> frozenset[str]:
        """DuckDB's names are case-insensitive: of two source columns `id` and `ID` it
        reads the second as `ID_1`, and `"ID"` reads `id`."""
        return self._clashes.get(name, frozenset())

    def _execute(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        def run() -> tuple[list[str], list[tuple[Any, ...]]]:
            cursor = self.con.execute(sql)
            names = [d[0] for d in cursor.description or []]
            return names, cursor.fetchall()

        return self._interruptible(run)

    def _execute_arrow(self, sql: str) -> Any:
        return self._interruptible(lambda: self.con.sql(sql).to_arrow_table())

    def _interruptible(self, run: Callable[[], _T]) -> _T:
        """Run a statement so that Ctrl-C stops it at once.

        DuckDB's Python client notices SIGINT only between its tasks, and a scan can
        run to its end first (a 15 s query stopped after 15 s). In the main thread the
        statement runs on a helper thread while the main thread waits, where Python
        raises KeyboardInterrupt; the cursor is then interrupted (it stops within a
        fraction of a second) and the KeyboardInterrupt goes on.
        """
        if threading.current_thread() is not threading.main_thread():
            return self._statement(run)
        box: dict[str, Any] = {}
        done = threading.Event()

        def work() -> None:
            try:
                box["out"] = run()
            except BaseException as error:  # handed to the caller's thread
                box["error"] = error
            finally:
                done.set()

        threading.Thread(target=work, name="onceflow-duckdb", daemon=True).start()
        try:
            done.wait()
        except KeyboardInterrupt:
            self.con.interrupt()
            done.wait(10)
            raise
        if "error" in box:
            if self.is_interrupt(box["error"]):
                raise KeyboardInterrupt from None
            raise box["error"]
        result: _T = box["out"]
        return result

    def _statement(self, run: Callable[[], _T]) -> _T:
        """Run a statement here; an interrupt is a KeyboardInterrupt (the engine's
        contract), never an error a rule would keep."""
        try:
            return run()
        except Exception as error:
            if self.is_interrupt(error):
                raise KeyboardInterrupt from None
            raise

    def is_transient(self, error: BaseException) -> bool:
        import duckdb

        # OperationalError: IOException, ConnectionException, a lock; OSError from an
        # Arrow scan of a file that went away for a moment. Programming and data errors
        # (binder, parser, catalog, conversion, a bad regex) are permanent.
        if isinstance(error, duckdb.OperationalError | OSError):
            return True
        text = str(error).lower()
        return "could not set lock" in text or ("connection" in text and "lost" in text)

    def is_interrupt(self, error: BaseException) -> bool:
        """Whether DuckDB stopped the statement because it was interrupted."""
        import duckdb

        # DuckDB turns SIGINT (or an interrupt) into an exception, which would otherwise
        # read as the rule's error; its client raises RuntimeError("Query interrupted")
        return isinstance(error, duckdb.InterruptException) or (
            isinstance(error, RuntimeError) and str(error) == "Query interrupted"
        )

    def close(self) -> None:
        try:
            self._context.__exit__(None, None, None)
        finally:
            self._keep.clear()


_SUFFIXED = re.compile(r"(.+)_\d+")


def _renamed(columns: Iterable[str]) -> bool:
    """Whether a column may be DuckDB's rename of a name that clashed in case with
    another (`ID_1` beside `id`): only then are the source's own names read."""
    lowered = {c.lower() for c in columns}
    return any(
        (m := _SUFFIXED.fullmatch(c)) is not None and m[1].lower() in lowered for c in columns
    )


def _source_names(source: Any) -> list[str]:
    """The top-level column names as the source spells them."""
    if isinstance(source, list):  # Parquet paths: their footers (Arrow is loaded here)
        import pyarrow.parquet as pq

        names: dict[str, None] = {}
        for path in source:
            try:
                names.update(dict.fromkeys(pq.read_schema(path).names))
            except (OSError, ValueError):  # not local, or unreadable: the scan will say
                return []
        return list(names)
    import pyarrow as pa

    schema = getattr(source, "schema", None)
    if isinstance(schema, pa.Schema):  # a table, dataset, batch or reader
        return list(schema.names)
    return [str(c) for c in getattr(source, "columns", [])]  # a pandas or polars frame


def _same_but_case(names: Iterable[str]) -> frozenset[str]:
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(name.lower(), []).append(name)
    return frozenset(n for group in groups.values() if len(group) > 1 for n in group)
