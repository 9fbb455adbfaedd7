"""What one load must do so that a table equals a clean, in-order load of its lake files.

The invariant: a table's content is a function of the set of committed lake files of its
windows, loaded in window order, whatever order they arrived in. Given the lake's files
(in window order) and what the table holds (`TableMarkers`), `plan_table` decides:

- append: rows of different files never interact, so order does not matter. A new file
  is appended; a file whose content changed (re-extracted) has its rows replaced in one
  commit (`replace`); everything else is already right.
- overwrite: the content is the last window's file. It is loaded when it is new or
  changed; any other new or changed file only gets its markers (it was superseded).
- merge and scd2: order matters. New files after everything the table holds are loaded in
  order. A changed file, or a new file earlier than a file the table holds (a late
  window), needs a *rewind*: the table goes back to the version before the first file
  that must move (one atomic restore commit, which also marks the undone files as not
  held), then every file from there on is applied again in window order. A rewind needs
  the undone files' commits in the log and their data in the lake; when a commit aged out,
  the table is rewound to empty and rebuilt from all its files.

A damaged lake file (its data no longer matches its sidecar, or is gone) fails when it
must be applied; a file the table already holds with that content needs nothing from the
lake (`lost` names those whose data file is gone: the lake can no longer rebuild them).
For merge and scd2, files at or after a window whose extraction is known to be missing
(failed or unfinished) wait, so that the table never runs ahead of a gap it would have
to rewind over.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from onceflow.errors import LoadError
from onceflow.lake import FileOrder, SourceFile, name_order
from onceflow.warehouse.markers import TableMarkers

ORDERED = ("merge", "scd2")


@dataclass(frozen=True)
class Step:
    """One commit: `load` a file, `replace` its rows, record its `markers`, or `fail` it."""

    kind: str
    file: SourceFile
    reason: str
    #: A `fail` whose reason says its own repair (no re-extraction hint is added).
    says_repair: bool = False


@dataclass(frozen=True)
class Rewind:
    """Undo `undone` by restoring version `to_version` (-1: rewind to an empty table).
    `cause` is the file that needs it: the late window, or the re-extracted one."""

    to_version: int
    undone: tuple[str, ...]
    reason: str
    cause: str = ""


@dataclass(frozen=True)
class Blocked:
    """A replay that cannot run: `cause` (the late or re-extracted file) needs the table
    rewound over files it holds that the lake cannot give again (`missing`: no data file,
    or one whose sidecar is unreadable, so it is not a file to load)."""

    cause: SourceFile
    reason: str
    missing: tuple[str, ...]


@dataclass
class Plan:
    """The commits of one load, in order, and what waits or stays as it is. A `blocked`
    plan commits nothing: its steps are the replay that cannot run, for the report."""

    rewind: Rewind | None = None
    blocked: Blocked | None = None
    steps: list[Step] = field(default_factory=list)
    waiting: list[SourceFile] = field(default_factory=list)
    wait_reason: str | None = None
    skipped: list[SourceFile] = field(default_factory=list)
    #: Files the table holds whose data file is gone from the lake (among `skipped`).
    lost: list[SourceFile] = field(default_factory=list)


def _state(file: SourceFile, markers: TableMarkers) -> str:
    code = markers.held.get(file.file_id, 0)
    if not code:
        return "new"
    return "held" if markers.holds(file.file_id, file.checksum) else "changed"


def _when(window_start: str | None) -> datetime:
    if not window_start:
        return datetime.min.replace(tzinfo=UTC)
    return datetime.fromisoformat(window_start).astimezone(UTC)


def _commit_order(file_id: str, markers: TableMarkers, lake: dict[str, SourceFile]) -> FileOrder:
    """Window order of a file the table holds (from the lake, else from its commit)."""
    if file_id in lake:
        return lake[file_id].order
    commit = markers.commits.get(file_id)
    return _when(commit.window_start if commit else None), name_order(file_id)


def plan_table(
    strategy: str,
    files: list[SourceFile],
    markers: TableMarkers,
    *,
    wait_from: datetime | None = None,
    wait_reason: str | None = None,
) -> Plan:
    """The plan that brings the table to a clean in-order load of `files` (window order).

    A file whose sidecar is unreadable fails, last; nothing is known of it but its place
    (the layout's day), so the files the table does not hold from there on wait behind it,
    whatever the strategy: the table never moves past a window it cannot see.
    """
    files = sorted(files, key=lambda f: f.order)
    files, twins = _one_file_per_window(files, markers)
    broken = [f for f in files if f.sidecar_unreadable]
    behind: list[SourceFile] = []
    if broken:
        behind = [
            f
            for f in files
            if not f.sidecar_unreadable
            and f.order >= broken[0].order
            and _state(f, markers) != "held"
        ]
        files = [f for f in files if not f.sidecar_unreadable and f not in behind]
    lost = [f for f in files if f.data_missing and _state(f, markers) == "held"]
    if strategy == "append":
        plan = _plan_append(files, markers)
    elif strategy == "overwrite":
        plan = _plan_overwrite(files, markers)
    elif strategy in ORDERED:
        # a held file whose data is gone is not in the lake for a replay: one over it is
        # blocked (`Blocked`), one before it leaves it in place
        kept = [f for f in files if f not in lost]
        plan = _plan_ordered(kept, markers, wait_from, wait_reason)
        plan.skipped = sorted([*plan.skipped, *lost], key=lambda f: f.order)
    else:
        raise LoadError(f"unknown load strategy {strategy!r}")
    plan.lost = lost
    plan.steps += twins
    if broken:
        plan.steps += [Step("fail", f, f.problem or "its sidecar is unreadable") for f in broken]
        plan.waiting = sorted([*plan.waiting, *behind], key=lambda f: f.order)
        plan.wait_reason = plan.wait_reason or (
            f"behind {broken[0].file_id}, whose sidecar is unreadable (re-extract its window)"
        )
    return plan


def _one_file_per_window(
    files: list[SourceFile], markers: TableMarkers
) -> tuple[list[SourceFile], list[Step]]:
    """The files to plan, and a `fail` step for each extra committed file of a window.

    A window is loaded from one file. Two committed files of one window (two run ids:
    a file copied into the lake by hand, or written by an onceflow that did not refuse a
    second run id) would load its rows twice, so the one the table does not hold fails,
    naming the other; when the table holds neither, both fail, and nothing of the window
    is loaded until one is removed. A file the table holds already is left as it is."""
    by_window: dict[tuple[str, str], list[SourceFile]] = {}
    for f in files:
        if f.window_start and f.window_end and not f.sidecar_unreadable:
            by_window.setdefault((f.window_start, f.window_end), []).append(f)
    failed: dict[str, Step] = {}
    for (start, end), group in by_window.items():
        if len(group) < 2:
            continue
        held = [f for f in group if _state(f, markers) != "new"]
        for f in group:
            if f in held:
                continue
            others = ", ".join(f"{o.file_id} (run {o.run_id or '?'})" for o in group if o is not f)
            failed[f.file_id] = Step(
                "fail",
                f,
                f"the window {start} .. {end} has another committed file, {others}: a "
                "window is loaded from one file, and both would load its rows twice; "
                "remove the one that should not count (with its sidecar), then load",
                says_repair=True,
            )
    return [f for f in files if f.file_id not in failed], list(failed.values())


def _apply(step_kind: str, file: SourceFile, reason: str) -> Step:
    if file.problem:
        return Step("fail", file, file.problem)
    return Step(step_kind, file, reason)


def _plan_append(files: list[SourceFile], markers: TableMarkers) -> Plan:
    plan = Plan()
    for file in files:
        state = _state(file, markers)
        if state == "held":
            plan.skipped.append(file)
        elif state == "changed":
            plan.steps.append(_apply("replace", file, "changed"))
        else:
            plan.steps.append(_apply("load", file, "new"))
    return plan


def _plan_overwrite(files: list[SourceFile], markers: TableMarkers) -> Plan:
    plan = Plan()
    last = files[-1] if files else None
    superseded = []
    for file in files:
        state = _state(file, markers)
        if state == "held":
            plan.skipped.append(file)
        elif file is last:
            plan.steps.append(_apply("load", file, state))
        else:
            superseded.append(Step("markers", file, "superseded by a later window"))
    # the last window first: it holds the content (and creates a new table), the others
    # only get their markers, which need a table to be committed to
    plan.steps += superseded
    return plan


def _plan_ordered(
    files: list[SourceFile],
    markers: TableMarkers,
    wait_from: datetime | None,
    wait_reason: str | None,
) -> Plan:
    plan = Plan(wait_reason=wait_reason)
    if wait_from is not None:  # files the table does not hold yet wait behind the gap
        plan.waiting = [
            f for f in files if f.order[0] >= wait_from and _state(f, markers) != "held"
        ]
        waiting = {f.file_id for f in plan.waiting}
        files = [f for f in files if f.file_id not in waiting]
    lake = {f.file_id: f for f in files}
    held = markers.held_ids()
    first_move = next((i for i, f in enumerate(files) if _state(f, markers) != "held"), None)
    if first_move is None:
        plan.skipped = files
        return plan
    pivot = files[first_move]
    pivot_state = _state(pivot, markers)
    later = [
        f for f in held if f != pivot.file_id and _commit_order(f, markers, lake) > pivot.order
    ]
    if pivot_state == "new" and not later:  # the usual case: new windows after the last one
        plan.skipped = files[:first_move]
        plan.steps = [_apply("load", f, "new") for f in files[first_move:]]
        return plan
    undone = set(later) | ({pivot.file_id} if pivot_state == "changed" else set())
    reason = (
        f"{pivot.file_id} changed"
        if pivot_state == "changed"
        else f"{pivot.file_id} is earlier than windows the table holds"
    )
    known = [markers.commits[f].version for f in undone if f in markers.commits]
    to_version = min(known) - 1 if len(known) == len(undone) else -1
    if to_version >= 0:
        # whatever the restore takes back is undone too (commits follow window order)
        undone |= {
            f for f in held if f in markers.commits and markers.commits[f].version > to_version
        }
        replay = [f for f in files if f.order >= pivot.order or f.file_id in undone]
        plan.skipped = [f for f in files if f not in replay]
    else:  # back to empty: everything the table holds is undone and applied again
        undone = set(held)
        replay = files
    plan.steps = [_apply("load", f, "replay" if f.file_id in undone else "new") for f in replay]
    missing = sorted(undone - set(lake))
    if missing:  # nothing is rewound: the loader fails the cause, naming what blocks it
        plan.blocked = Blocked(pivot, reason, tuple(missing))
        return plan
    plan.rewind = Rewind(to_version, tuple(sorted(undone)), reason, pivot.file_id)
    return plan
