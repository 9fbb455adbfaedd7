"""Extraction: source -> Arrow batches -> Parquet + metadata sidecar (the lake format)."""

from onceflow.extract.api import (
    ExtractSummary,
    RunContext,
    extract,
    extraction_entry,
    run_context,
    select_tables,
)
from onceflow.extract.extractor import ExtractionResult
from onceflow.extract.reports import (
    create_extraction_report,
    force_reprocess_table,
    get_extraction_summary,
    reset_failed_extractions,
    resolve_run,
    validate_window_consistency,
)

__all__ = [
    "ExtractSummary",
    "ExtractionResult",
    "RunContext",
    "create_extraction_report",
    "extract",
    "extraction_entry",
    "force_reprocess_table",
    "get_extraction_summary",
    "reset_failed_extractions",
    "resolve_run",
    "run_context",
    "select_tables",
    "validate_window_consistency",
]
