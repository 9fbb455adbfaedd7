"""Ctrl-C during a DuckDB statement stops it and reaches the caller as KeyboardInterrupt:
never a rule's error (which would be stored), never retried as a transient one."""

from __future__ import annotations

import threading

import pytest

from onceflow.validate.engines import make_engine


def test_an_interrupted_statement_is_a_keyboard_interrupt_not_a_rule_error() -> None:
    engine = make_engine("duckdb", max_retries=3, retry_delay=0)
    try:
        slow = "SELECT count(*) FROM range(50000000000) WHERE hash(range) = 0"
        threading.Timer(0.3, engine.con.interrupt).start()
        with pytest.raises(KeyboardInterrupt):
            engine.query(slow)
        assert engine.retries == 0  # not retried as if transient
        assert engine.is_interrupt(RuntimeError("Query interrupted"))  # the client's form
        assert not engine.is_interrupt(RuntimeError("Query failed"))
        assert engine.query("SELECT 1 AS one") == [{"one": 1}]  # still usable
    finally:
        engine.close()
