"""Engines run the SQL the rules compile to: DuckDB now, Spark SQL next, same interface."""

from onceflow.validate.engines.base import Engine, QueryError, Statement
from onceflow.validate.engines.duckdb import DuckDBEngine

ENGINES: dict[str, type[Engine]] = {"duckdb": DuckDBEngine}


def make_engine(name: str, *, max_retries: int = 3, retry_delay: float = 1.0) -> Engine:
    """A new engine by its config name (`validation.engine`)."""
    return ENGINES[name](max_retries=max_retries, retry_delay=retry_delay)


__all__ = ["ENGINES", "DuckDBEngine", "Engine", "QueryError", "Statement", "make_engine"]
