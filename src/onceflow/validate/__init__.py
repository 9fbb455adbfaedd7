"""Validate: declarative data-quality rules, one fused scan per table, cached and resumable.

`validate(config, run_date)` checks the configured tables; `Validator` validates any data
(`DataValidator` is its seed name, `ValidationState` its seed `_state`); `Gate` is the
loader's pre-load hook. See docs/validate.md for the semantics.
"""

from onceflow.validate.api import (
    DataValidator,
    Gate,
    ValidationState,
    Validator,
    quarantine_location,
    reset_validation_state,
    rule_warnings,
    table_location,
    validate,
    validation_status,
)
from onceflow.validate.results import (
    OUTCOMES,
    SCHEMA_PATH,
    RuleResult,
    TableReport,
    ValidationReport,
)
from onceflow.validate.rules_file import load_validation_config

__all__ = [
    "OUTCOMES",
    "SCHEMA_PATH",
    "DataValidator",
    "Gate",
    "RuleResult",
    "TableReport",
    "ValidationReport",
    "ValidationState",
    "Validator",
    "load_validation_config",
    "quarantine_location",
    "reset_validation_state",
    "rule_warnings",
    "table_location",
    "validate",
    "validation_status",
]
