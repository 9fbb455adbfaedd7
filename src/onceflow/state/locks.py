"""Pipeline locks as lease rows (issue: load)."""

from __future__ import annotations


class LockMixin:
    """Lease-lock queries, mixed into StateStore; uses its `transaction()`."""
