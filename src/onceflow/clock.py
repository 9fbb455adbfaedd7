"""The one clock of the state store and the reports: aware UTC instants and their ISO text."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)


def now_iso() -> str:
    """Now, as the ISO-8601 UTC string the state store keeps."""
    return datetime.now(UTC).isoformat()
