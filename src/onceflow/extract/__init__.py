"""Extraction: source -> Arrow batches -> Parquet + metadata sidecar (the lake format).

Names are imported on first use: the extraction command imports `extract.early` (which
opens the source connection in a thread) before the extractor and Arrow load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from onceflow.lazy import lazy_exports as _lazy_exports

if TYPE_CHECKING:
    from onceflow.extract.api import (
        ExtractSummary,
        RunContext,
        extract,
        extraction_entry,
        is_extraction_needed,
        run_context,
        select_tables,
    )
    from onceflow.extract.databricks import databricks_storage, require_databricks
    from onceflow.extract.extractor import ExtractionResult
    from onceflow.extract.reports import (
        create_extraction_report,
        find_run,
        force_reprocess_table,
        get_extraction_summary,
        reset_failed_extractions,
        resolve_run,
        validate_window_consistency,
    )
    from onceflow.extract.tables_file import TableSelection, read_tables_file

_WHERE = {
    "ExtractSummary": "onceflow.extract.api",
    "ExtractionResult": "onceflow.extract.extractor",
    "RunContext": "onceflow.extract.api",
    "TableSelection": "onceflow.extract.tables_file",
    "create_extraction_report": "onceflow.extract.reports",
    "databricks_storage": "onceflow.extract.databricks",
    "extract": "onceflow.extract.api",
    "extraction_entry": "onceflow.extract.api",
    "find_run": "onceflow.extract.reports",
    "force_reprocess_table": "onceflow.extract.reports",
    "get_extraction_summary": "onceflow.extract.reports",
    "is_extraction_needed": "onceflow.extract.api",
    "read_tables_file": "onceflow.extract.tables_file",
    "require_databricks": "onceflow.extract.databricks",
    "reset_failed_extractions": "onceflow.extract.reports",
    "resolve_run": "onceflow.extract.reports",
    "run_context": "onceflow.extract.api",
    "select_tables": "onceflow.extract.api",
    "validate_window_consistency": "onceflow.extract.reports",
}

__all__ = [
    "ExtractSummary",
    "ExtractionResult",
    "RunContext",
    "TableSelection",
    "create_extraction_report",
    "databricks_storage",
    "extract",
    "extraction_entry",
    "find_run",
    "force_reprocess_table",
    "get_extraction_summary",
    "is_extraction_needed",
    "read_tables_file",
    "require_databricks",
    "reset_failed_extractions",
    "resolve_run",
    "run_context",
    "select_tables",
    "validate_window_consistency",
]

__getattr__, __dir__ = _lazy_exports(__name__, _WHERE, globals())
