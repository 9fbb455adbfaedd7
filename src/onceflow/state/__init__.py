"""The state store: an index of what happened, on SQLite or PostgreSQL."""

from onceflow.state.store import ExtractionRecord, RunRecord, StateStore, open_store

__all__ = ["ExtractionRecord", "RunRecord", "StateStore", "open_store"]
