"""The file tracker: which source file is loaded into which Delta table (issue: load)."""

from __future__ import annotations


class FileTrackerMixin:
    """File-tracker queries, mixed into StateStore; uses its `transaction()`."""
