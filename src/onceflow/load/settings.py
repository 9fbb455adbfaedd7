"""What a Delta table says about how it is loaded: the strategy and key it was created with.

A table's strategy and key decide what its rows mean, so they cannot change under it
without corrupting it, silently: merging into rows an append left with one key twice keeps
both, appending to a merge table duplicates its keys, an overwrite drops every row of the
files held before, an scd2 table read as anything else loses its versions. So the table
records them when it is created, and a load with other settings is refused by name
(`Settings.differs`); a standalone load (`load --path`) given no `--strategy` loads with
the recorded ones instead of an append.

The record is the table's, not the state store's: `status`, a load after the state store
was lost, and a rebuild of the tracker all read it from the table. It is the table
property `onceflow.load` (JSON: `strategy`, `primary_key` for merge and scd2, and scd2's
column names), which lives in the table's metadata: checkpoints, log clean-up, appends,
merges, overwrites (schema included), compaction and vacuum keep it. delta-rs 1.6 refuses
a property it does not know when it creates a table ("Error parsing property"), but sets
one on a table that exists, so the property is written in a commit of its own after the
load that created the table (`record`). The commit that creates the table (version 0)
carries the same JSON in its commit metadata, atomically with its data: a kill before
the property is written, or a RESTORE to version 0 (whose metadata predates the
property; a rewind can be one), leaves the creation commit saying it, which is read
instead (while the log keeps it) and written back as the property by the next load.

Recorded are what the table's rows are made of: the strategy, the key (merge, scd2) and
scd2's column names. How a file is applied (`tracking_columns`, `hard_deletes`,
`late_rows`, `delete_column`, `validity_column`, `widen`, `max_file_retries`) may change
in a config from one load to the next, and is not recorded.

A table created before the record has none: a config table takes its config's settings
at its next load (the config states them), a standalone load given `--strategy` records
that one, and one given none appends as before, saying that the table records no
strategy (`status` shows `unknown`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from onceflow.config import LoadConfig
from onceflow.warehouse import commit_infos

log = logging.getLogger(__name__)

#: The table property, and the commit-metadata key of the creating commit, that hold it.
PROPERTY = "onceflow.load"
#: The strategies whose rows are matched by key: they record it.
KEYED = ("merge", "scd2")
#: scd2's own columns: the table is made of them, so they are recorded too.
SCD2_COLUMNS = (
    "effective_from_column",
    "effective_to_column",
    "is_current_column",
    "is_deleted_column",
)


@dataclass(frozen=True)
class Settings:
    """The settings a table was created with: its strategy, key and scd2 column names."""

    strategy: str
    primary_key: tuple[str, ...] = ()
    #: (option, column name) of scd2's columns; empty for the other strategies.
    columns: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, cfg: LoadConfig) -> Settings:
        """The settings a load with `cfg` creates a table with."""
        keyed = cfg.strategy in KEYED
        columns = (
            tuple((name, str(getattr(cfg, name))) for name in SCD2_COLUMNS)
            if cfg.strategy == "scd2"
            else ()
        )
        return cls(cfg.strategy, tuple(cfg.primary_key) if keyed else (), columns)

    @classmethod
    def parse(cls, text: str) -> Settings | None:
        """The settings in a record's JSON; None when it is not one (a hand edit)."""
        try:
            data = json.loads(text)
            strategy = data["strategy"]
            key = data.get("primary_key") or []
            columns = {name: data[name] for name in SCD2_COLUMNS if name in data}
        except (ValueError, TypeError, KeyError):
            return None
        if not isinstance(strategy, str) or not all(isinstance(k, str) for k in key):
            return None
        return cls(strategy, tuple(key), tuple((n, str(c)) for n, c in columns.items()))

    def dumps(self) -> str:
        """The record's JSON (keys in a fixed order: the same settings, the same text)."""
        data: dict[str, Any] = {"strategy": self.strategy}
        if self.primary_key:
            data["primary_key"] = list(self.primary_key)
        data.update(self.columns)
        return json.dumps(data)

    def describe(self) -> str:
        """`strategy merge, primary key id` (and scd2 columns that are not the defaults)."""
        text = f"strategy {self.strategy}"
        if self.primary_key:
            text += f", primary key {', '.join(self.primary_key)}"
        defaults = LoadConfig.model_fields
        custom = [(n, c) for n, c in self.columns if defaults[n].default != c]
        text += "".join(f", {name} {column}" for name, column in custom)
        return text

    def differs(self, other: Settings) -> bool:
        """Whether a load with `other` would change what the table's rows are made of.
        A composite key in another order is the same key."""
        return (
            self.strategy != other.strategy
            or sorted(self.primary_key) != sorted(other.primary_key)
            or dict(self.columns) != dict(other.columns)
        )

    def config(self) -> LoadConfig:
        """A standalone load's config with these settings (every other option default)."""
        data: dict[str, Any] = {"strategy": self.strategy, "primary_key": list(self.primary_key)}
        data.update(self.columns)
        return LoadConfig.model_validate(data)


@dataclass(frozen=True)
class Record:
    """A table's record: its settings, and whether the table property holds them (else
    only the creating commit does: the next load writes the property back)."""

    settings: Settings
    in_property: bool


def _creation_metadata(dt: Any) -> Mapping[str, Any]:
    """The commit metadata of the commit that created the table (version 0), or {} when
    the log no longer holds it."""
    infos = commit_infos(dt, 0, 0)
    if infos is None:  # not local, or cleaned up: a remote table answers from its history
        try:
            infos = [i for i in dt.history() if i.get("version") == 0]
        except Exception:  # a cleaned-up log
            return {}
    return infos[0] if infos else {}


def read_record(dt: Any) -> Record | None:
    """The settings the table records (None: no table, or created before the record)."""
    if dt is None:
        return None
    text = dt.metadata().configuration.get(PROPERTY)
    if text is not None:
        settings = Settings.parse(str(text))
        if settings is None:
            log.warning("%s: table property %s is not readable: %r", dt.table_uri, PROPERTY, text)
        return None if settings is None else Record(settings, True)
    created = _creation_metadata(dt).get(PROPERTY)
    settings = Settings.parse(str(created)) if created else None
    return None if settings is None else Record(settings, False)


def recorded_settings(dt: Any) -> Settings | None:
    """The settings the table records, or None (`read_record`)."""
    record = read_record(dt)
    return None if record is None else record.settings


def creation_metadata(settings: Settings) -> dict[str, str]:
    """The commit metadata the commit that creates a table carries: its settings."""
    return {PROPERTY: settings.dumps()}


def kept(name: str, recorded: Settings) -> str:
    """The middle of a refusal: what the table records, and why it keeps it."""
    return (
        f"{name} was created with {recorded.describe()} (recorded in the table), and a "
        "table keeps the strategy and key it was created with: others would apply new files "
        "to rows they did not make (keys twice, rows dropped, versions read as rows)"
    )


def write_record(dt: Any, settings: Settings) -> None:
    """Set the table property (one commit, refused over a concurrent commit as every
    loader commit is: the caller holds the table's lock, and the next load tries again)."""
    from deltalake import CommitProperties

    text = settings.dumps()
    dt.alter.set_table_properties(
        {PROPERTY: text},
        raise_if_not_exists=False,  # delta-rs checks only the names it knows
        commit_properties=CommitProperties(custom_metadata={PROPERTY: text}, max_commit_retries=0),
    )
