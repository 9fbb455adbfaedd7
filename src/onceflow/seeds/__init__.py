"""The seeds' Python classes by their names, as thin adapters over `Pipeline`.

`DataExtractor` and `DatabricksDataExtractor` (seed 001), `StatefulDataExtractor` and
`StatefulDatabricksDataExtractor` (seed 000) and the loader's `DataProcessor` (seed 002),
so that the seeds' examples run as written after one import change (`from onceflow import
DataExtractor`; docs/python-api.md has each seed call and the onceflow call it is).
Seed 004's managers (`PipelineStateManager`, `QueueManager`, `RetryManager`) are the
schedule step's (`onceflow.schedule.managers`): they queue and cancel runs with the
scheduler's own verbs, and `onceflow.schedule` exports them, so here the two packages
would import each other.

Not a second implementation: each method builds (once) an onceflow Config from the
seed's parameters and calls one Pipeline method (`extract`, `load`, `lock`, `status`,
`force_reprocess_table`...); what it returns is onceflow's result, reshaped only where
the seed names the keys or the type (`extract_table` -> bool, `process_all_tables` ->
the seed's totals). Invariants:

- every seed parameter maps to a config field or call argument, or is refused with a
  ConfigError naming it and what onceflow does instead: none is dropped silently;
- an extractor's tables are the seed's table configs over the one connection given
  (`oracle_*=` or `url=`), or, with no connection, onceflow.yml's (`config=`, default
  ./onceflow.yml): then a table config only selects its table, and one that says
  otherwise than the config (`is_full_extract`, `incremental_column`, `custom_query`)
  is refused, as `--tables tables.json` is;
- runs, skips, retries and locks are the extract and load steps' own: a run is
  (pipeline, date), restartable, recorded in the state store.
"""

from onceflow.config import as_config
from onceflow.seeds.extractor import (
    DatabricksDataExtractor,
    DataExtractor,
    StatefulDatabricksDataExtractor,
    StatefulDataExtractor,
    databricks_lake,
)
from onceflow.seeds.processor import DataProcessor, load_results
from onceflow.seeds.tables import seed_table

__all__ = [
    "DataExtractor",
    "DataProcessor",
    "DatabricksDataExtractor",
    "StatefulDataExtractor",
    "StatefulDatabricksDataExtractor",
    "as_config",
    "databricks_lake",
    "load_results",
    "seed_table",
]
