"""Small helpers shared by the CLI modules."""

from __future__ import annotations

from collections.abc import Sequence


def split_list(values: Sequence[str] | None) -> list[str]:
    """`-t a,b -t c` -> ['a', 'b', 'c']: repeated options, each comma-separated."""
    return [part.strip() for item in values or [] for part in item.split(",") if part.strip()]
