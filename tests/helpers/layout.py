"""The import rule of onceflow's layout, read from the source with `ast`.

Layers, lowest first; a module may import its own package and any lower layer, never a
higher one, and never a sibling package of its own layer (no step imports another step):

    0  base         errors, version, clock, locations, lazy, interrupts, pools, config,
                    dialects, cronspec, durations, rules, type_names, windows, redact,
                    logs, faults, demo
    1  shared       lake (the extracted-file format), state (the store)
    2  shared       warehouse (Delta access and the table's markers; reads lake paths)
    3  steps        extract, load, validate
    4  composition  consistency (validate-consistency, fix-inconsistencies, force-unlock)
    5               pipeline (a run across the steps; status and reset-state)
    6  schedule     (runs pipelines); seeds (the seeds' classes over Pipeline)
    7  cli
    8  face         console (imports the CLI in its Ctrl-C handler), onceflow/__init__
    9               __main__

The composition layers (consistency, pipeline, schedule) use a step only through its
package face (`onceflow.load`, not `onceflow.load.loader`): a step's modules are its own to
refactor, and what two layers share is a module of a lower layer (the Delta markers are
`warehouse.markers`, read by load and consistency). The seeds' adapters and the CLI may
reach further in (a CLI option that parses a `--tables` file).

docs/development.md shows this table; change both together.

Function-level and TYPE_CHECKING imports count like any other: an import cycle hidden in
a function is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

BASE = (
    "errors",
    "version",
    "clock",
    "locations",
    "lazy",
    "interrupts",
    "pools",
    "config",
    "dialects",
    "cronspec",
    "durations",
    "rules",
    "type_names",
    "windows",
    "redact",
    "logs",
    "faults",
    "demo",
)
STEPS = ("extract", "load", "validate")
#: The layers above the steps that use them through their faces only.
FACE_ONLY = ("consistency", "pipeline", "schedule")
RANKS: dict[str, int] = {name: 0 for name in BASE} | {
    "lake": 1,
    "state": 1,
    "warehouse": 2,
    "extract": 3,
    "load": 3,
    "validate": 3,
    "consistency": 4,
    "pipeline": 5,
    "schedule": 6,
    "seeds": 6,
    "cli": 7,
    "console": 8,  # the console scripts' entry: imports the CLI inside its Ctrl-C handler
    "": 8,  # the package's own __init__: the public face
    "__main__": 9,
}


def modules(root: Path) -> dict[str, Path]:
    """Every module under `root` (the `onceflow` package folder) by dotted name."""
    out = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The known modules that `name` (at `path`) imports, anywhere in the file."""
    found: set[str] = set()
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            subs = [f"{base}.{alias.name}" for alias in node.names]
            # `from onceflow import clock` imports the module onceflow.clock, not the face
            targets = subs if all(sub in known for sub in subs) else [base, *subs]
        for target in targets:
            parts = target.split(".")
            for i in range(len(parts), 0, -1):
                candidate = ".".join(parts[:i])
                if candidate in known:
                    if candidate != name:
                        found.add(candidate)
                    break
    return found


def top(name: str) -> str:
    """The top-level part of a module name: `onceflow.load.scd2` -> `load`."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def violations(root: Path) -> list[str]:
    """Every breach of the layout rule in the package at `root`; empty when it holds."""
    found = modules(root)
    known = set(found)
    graph = {name: imports(path, name, known) for name, path in found.items()}
    problems = []
    for name, targets in sorted(graph.items()):
        own = top(name)
        if own not in RANKS:
            problems.append(f"{name}: not in a layer (add {own!r} to RANKS)")
            continue
        for target in sorted(targets):
            other = top(target)
            if other == own or (own in BASE and other in BASE):
                continue
            if name == root.name and target.startswith(name + "."):
                continue  # the face re-exports
            if other not in RANKS:
                continue  # reported on its own
            if RANKS[other] > RANKS[own]:
                problems.append(f"{name} imports {target}: a higher layer")
            elif RANKS[other] == RANKS[own]:
                problems.append(f"{name} imports {target}: a sibling of its own layer")
            elif own in FACE_ONLY and other in STEPS and target != f"{root.name}.{other}":
                problems.append(f"{name} imports {target}: a step's module, not its face")
    for component in cycles(graph):
        problems.append("import cycle: " + " -> ".join(component))
    return problems
