"""The engine interface: register data under a name, describe it, run a query.

Rules never see an engine's API: they compile to sqlglot expressions rendered in the
engine's `dialect`, and every statement goes through `query`, which counts it (tests and
the report count statements), times it, and retries transient errors (I/O, a lock, a lost
connection) with exponential backoff and jitter. A permanent error (bad SQL, a missing
column, a bad regex) raises QueryError at once, so only the rule it belongs to errors.
An interrupted statement (Ctrl-C) raises KeyboardInterrupt, never an error a rule would
keep: each engine translates its own form of it.
"""

from __future__ import annotations

import logging
import random
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from onceflow.errors import plain_message

log = logging.getLogger(__name__)


class QueryError(Exception):
    """A statement failed: `transient` when retries were exhausted on a transient error."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Statement:
    """One statement an engine ran: what for (`kind`), its SQL and its duration."""

    kind: str
    sql: str
    seconds: float
    rules: tuple[str, ...] = ()


class Engine(ABC):
    """A SQL engine the validator drives; one per table validation (not thread-safe)."""

    name: ClassVar[str] = ""
    dialect: ClassVar[str] = ""

    @classmethod  # noqa: B027 - optional: most engines need nothing ahead
    def prepare(cls) -> None:
        """Start, on a thread, what a new engine will need (a database), so that it
        overlaps the caller's work until the engine is made."""

    def __init__(self, *, max_retries: int = 3, retry_delay: float = 1.0) -> None:
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.statements: list[Statement] = []
        self.retries = 0

    # -- data -------------------------------------------------------------------------
    @abstractmethod
    def register_arrow(self, name: str, data: Any) -> None:
        """Make an Arrow table, dataset or data frame queryable as `name` (no copy)."""

    @abstractmethod
    def register_parquet(self, name: str, paths: list[str], *, union_by_name: bool = False) -> None:
        """Make Parquet files queryable as `name` (columns matched by name across files
        with `union_by_name`, a missing one read as NULL)."""

    @abstractmethod
    def create_view(self, name: str, sql: str) -> None:
        """A view `name` over `sql` (e.g. the rows of this run's batches)."""

    @abstractmethod
    def columns(self, name: str) -> dict[str, str]:
        """The relation's columns and their types, in the engine's type names."""

    def case_clashes(self, name: str) -> frozenset[str]:
        """The relation's source column names that differ from another only in case,
        which an engine with case-insensitive names cannot tell apart (after `columns`)."""
        return frozenset()

    def syntax_error(self, sql: str) -> str | None:
        """The engine's own parser's complaint about `sql`, parsed and not run (None when
        it parses, or when the engine cannot parse without running): sqlglot accepts text
        the engine refuses, and reads it as something else (`v > > 1` as `v >> 1`)."""
        return None

    def fork(self) -> Engine | None:
        """A second engine over the same registered data, for queries in another thread,
        counting its statements with this one's; None when there is none (its queries
        then run one after another on this engine)."""
        return None

    # -- statements -------------------------------------------------------------------
    @abstractmethod
    def _execute(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one statement: column names and rows."""

    @abstractmethod
    def _execute_arrow(self, sql: str) -> Any:
        """Run one statement: its result as an Arrow table."""

    @abstractmethod
    def is_transient(self, error: BaseException) -> bool:
        """Whether retrying may help (I/O, a lock, a lost connection)."""

    @abstractmethod
    def close(self) -> None:
        """Release the engine's connection."""

    def query(
        self, sql: str, *, kind: str = "data", rules: tuple[str, ...] = ()
    ) -> list[dict[str, Any]]:
        """Run `sql` and return its rows as dicts; counted, timed, retried when transient."""
        names, rows = self._run(self._execute, sql, kind, rules)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def query_arrow(self, sql: str, *, kind: str = "data", rules: tuple[str, ...] = ()) -> Any:
        """Run `sql` and return its result as an Arrow table (counted, retried)."""
        return self._run(self._execute_arrow, sql, kind, rules)

    def _run(self, run: Any, sql: str, kind: str, rules: tuple[str, ...]) -> Any:
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                out = run(sql)
            except Exception as error:
                transient = self.is_transient(error)
                text = _one_line(str(error))
                if not transient or attempt >= self.max_retries:
                    self.statements.append(
                        Statement(kind, sql, time.perf_counter() - started, rules)
                    )
                    raise QueryError(text, transient=transient) from None
                # exponential backoff with jitter, so that retrying workers spread out
                delay = self.retry_delay * (2**attempt) * random.uniform(0.5, 1.5)
                attempt += 1
                self.retries += 1
                log.warning(
                    "transient engine error (%s); retry %d of %d in %.2f s",
                    text[:200],
                    attempt,
                    self.max_retries,
                    delay,
                )
                time.sleep(delay)
                continue
            self.statements.append(Statement(kind, sql, time.perf_counter() - started, rules))
            return out

    @property
    def data_queries(self) -> int:
        """Statements that read data (not schema probes)."""
        return sum(1 for s in self.statements if s.kind != "probe")

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _one_line(text: str) -> str:
    """An engine message on one line (DuckDB adds the SQL with a caret below)."""
    first = plain_message(text).strip().split("\n\n", 1)[0]
    lines = [line.strip() for line in first.splitlines() if line.strip()]
    kept = [line for line in lines if not line.startswith(("LINE ", "^"))]
    return " ".join(kept)[:500]
