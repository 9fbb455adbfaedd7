"""onceflow: batch data pipelines that are safe to rerun and recover from any crash.

The public face. Every CLI command is a thin call of one public function
(docs/python-api.md names each): a `Pipeline` method for the commands about one
pipeline's runs, loads and state; `check_config` for `onceflow check`; a function of
`onceflow.schedule` for the schedule commands (`run_scheduler`, `run_worker`, `up`,
`backfill`, `runs ...`, `schedule ...`, `status --tenant`); `onceflow.demo.init_project`
for `init`. `load_config` reads an onceflow.yml; `open_store` opens a state store; the
schedule step's parts (`Scheduler`, `Worker`, the seed's `PipelineStateManager`,
`QueueManager`, `ScheduleCalculator`, `RetryManager` with `RetryPolicy`); the
extractor's and loader's seed classes (`DataExtractor`, `DatabricksDataExtractor`,
`StatefulDataExtractor`, `StatefulDatabricksDataExtractor`, `DataProcessor`: thin
adapters over Pipeline); `Validator` validates data against rules and returns a
`ValidationReport` (`DataValidator` is its seed name); the errors are the one hierarchy
every command raises. Names are imported on first use, so `import onceflow` (and the
CLI) starts without loading Arrow, Delta Lake or any database driver.
"""

from __future__ import annotations

from onceflow.lazy import lazy_exports as _lazy_exports
from onceflow.version import __version__

# not `typing.TYPE_CHECKING`: importing typing costs ~20 ms, and the console scripts import
# this package before they can catch a Ctrl-C (type checkers read this name the same way)
TYPE_CHECKING = False

if TYPE_CHECKING:
    from onceflow.config import Config, load_config
    from onceflow.errors import (
        ConfigError,
        ExtractError,
        GateError,
        LeaseLostError,
        LoadError,
        LockError,
        OnceflowError,
        SourceError,
        StateError,
        TransitionError,
        ValidateError,
    )
    from onceflow.pipeline import Pipeline, RunSummary
    from onceflow.schedule import (
        PipelineStateManager,
        QueueManager,
        RetryManager,
        RetryPolicy,
        ScheduleCalculator,
        Scheduler,
        Worker,
        check_config,
    )
    from onceflow.seeds import (
        DatabricksDataExtractor,
        DataExtractor,
        DataProcessor,
        StatefulDatabricksDataExtractor,
        StatefulDataExtractor,
    )
    from onceflow.state import open_store
    from onceflow.validate import DataValidator, ValidationReport, Validator

_WHERE = {
    "Config": "onceflow.config",
    "ConfigError": "onceflow.errors",
    "DataExtractor": "onceflow.seeds",
    "DataProcessor": "onceflow.seeds",
    "DatabricksDataExtractor": "onceflow.seeds",
    "DataValidator": "onceflow.validate",
    "ExtractError": "onceflow.errors",
    "GateError": "onceflow.errors",
    "LeaseLostError": "onceflow.errors",
    "LoadError": "onceflow.errors",
    "LockError": "onceflow.errors",
    "OnceflowError": "onceflow.errors",
    "Pipeline": "onceflow.pipeline",
    "PipelineStateManager": "onceflow.schedule",
    "QueueManager": "onceflow.schedule",
    "RetryManager": "onceflow.schedule",
    "RetryPolicy": "onceflow.schedule",
    "RunSummary": "onceflow.pipeline",
    "ScheduleCalculator": "onceflow.schedule",
    "Scheduler": "onceflow.schedule",
    "SourceError": "onceflow.errors",
    "StateError": "onceflow.errors",
    "StatefulDataExtractor": "onceflow.seeds",
    "StatefulDatabricksDataExtractor": "onceflow.seeds",
    "TransitionError": "onceflow.errors",
    "ValidateError": "onceflow.errors",
    "ValidationReport": "onceflow.validate",
    "Validator": "onceflow.validate",
    "Worker": "onceflow.schedule",
    "check_config": "onceflow.schedule",
    "load_config": "onceflow.config",
    "open_store": "onceflow.state",
}

__all__ = [
    "Config",
    "ConfigError",
    "DataExtractor",
    "DataProcessor",
    "DataValidator",
    "DatabricksDataExtractor",
    "ExtractError",
    "GateError",
    "LeaseLostError",
    "LoadError",
    "LockError",
    "OnceflowError",
    "Pipeline",
    "PipelineStateManager",
    "QueueManager",
    "RetryManager",
    "RetryPolicy",
    "RunSummary",
    "ScheduleCalculator",
    "Scheduler",
    "SourceError",
    "StateError",
    "StatefulDataExtractor",
    "StatefulDatabricksDataExtractor",
    "TransitionError",
    "ValidateError",
    "ValidationReport",
    "Validator",
    "Worker",
    "__version__",
    "check_config",
    "load_config",
    "open_store",
]

__getattr__, __dir__ = _lazy_exports(__name__, _WHERE, globals())
