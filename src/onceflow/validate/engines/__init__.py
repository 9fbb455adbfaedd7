"""Engines run the SQL the rules compile to: DuckDB now, Spark SQL next, same interface.

An engine module is imported when an engine is made, not with this package: a validation
answered from the cache starts none (DuckDB's helpers bring pyarrow.compute).
"""

import importlib

from onceflow.validate.engines.base import Engine, QueryError, Statement

#: engine name (`validation.engine`) -> "module:class"
ENGINES: dict[str, str] = {"duckdb": "onceflow.validate.engines.duckdb:DuckDBEngine"}


def engine_class(name: str) -> type[Engine]:
    """The engine class of a config name."""
    module, _, cls = ENGINES[name].partition(":")
    found: type[Engine] = getattr(importlib.import_module(module), cls)
    return found


def make_engine(name: str, *, max_retries: int = 3, retry_delay: float = 1.0) -> Engine:
    """A new engine by its config name."""
    return engine_class(name)(max_retries=max_retries, retry_delay=retry_delay)


__all__ = ["ENGINES", "Engine", "QueryError", "Statement", "engine_class", "make_engine"]
