"""The seed validator's JSON state file: read once, reported, never taken as results.

The seed kept `pipeline: {state_file: "pipeline_state.json"}`: per table a status, per
rule a status and its last result, in two formats (the old `{"table1": "completed"}` and
the nested one with `rules:`). onceflow keeps its state in the SQLite store beside it
(`pipeline_state.db`, see config.py) and its cache is keyed by the data's fingerprint: a
result stands for one rule definition on one version of the data. The seed's entries
name neither, so none of them can say that a rule holds on the data validated now;
importing them as results would serve a stale pass. Nor are they imported as history:
a pass rate with no data source would draw a point in every table's chart that belongs
to none of them.

So "migrating" the file means: the first time a validator of that config opens the
store, read the file, say in one log line what it held and that those rules run again
(their results are then cached by fingerprint), leave the file untouched (the seed may
still be in use beside onceflow, and a rollback needs it), and record in the store that
this content was seen, so it is said once; a file that changes is said again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from onceflow.state import Store

log = logging.getLogger(__name__)


def note_seed_state_file(path: str | None, store: Store, pipeline: str) -> bool:
    """Report the seed's state file at `path` once per content; True when it did now.
    A file that is not there (the seed never ran here) or cannot be read says nothing
    and records nothing (a warning for the latter, every time: it is a problem)."""
    if path is None:
        return False
    file = Path(path)
    try:
        content = file.read_bytes()
    except FileNotFoundError:
        return False
    except OSError as error:
        log.warning("%s: the seed validator's state file cannot be read (%s)", path, error)
        return False
    digest = hashlib.sha256(content).hexdigest()
    summary = describe(content)
    if not store.rules.note_seed_file(pipeline, str(file), digest, summary):
        return False
    log.info(
        "%s: the seed validator's state file holds %s. Its entries name no data version, "
        "so they cannot stand for a validation of the data now: those rules run again at "
        "their next validation, and their results are cached by data fingerprint from "
        "then on. The file is left as it is.",
        path,
        summary,
    )
    return True


def describe(content: bytes) -> str:
    """What a seed state file holds, in a phrase: its tables with their status and how
    many of their rules were completed (both of the seed's formats)."""
    try:
        data = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        return f"no JSON onceflow can read ({str(error)[:80]})"
    if not isinstance(data, dict):
        return f"no table entries (a JSON {type(data).__name__})"
    if not data:
        return "no tables"
    parts = [_table(str(name), entry) for name, entry in data.items()]
    shown = "; ".join(parts[:10]) + (f"; and {len(parts) - 10} more" if len(parts) > 10 else "")
    return f"{len(parts)} table(s): {shown}"


def _table(name: str, entry: Any) -> str:
    if isinstance(entry, str):  # the old format: {"table1": "completed"}
        return f"{name} {entry}"
    if not isinstance(entry, dict):
        return f"{name} (unreadable entry)"
    text = f"{name} {entry.get('status', 'no status')}"
    rules = entry.get("rules")
    if isinstance(rules, dict) and rules:
        done = sum(
            1 for r in rules.values() if isinstance(r, dict) and r.get("status") == "completed"
        )
        text += f", {done} of {len(rules)} rule(s) completed"
    return text


__all__ = ["describe", "note_seed_state_file"]
