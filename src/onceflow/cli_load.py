"""CLI commands of the load capability (load, validate-consistency, force-unlock, ...)."""

from __future__ import annotations

from typing import Any


def register(app: Any) -> None:
    """Add the load commands to the `onceflow` Typer app."""
    return None
