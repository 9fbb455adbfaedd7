"""Options shared by several commands, declared once (with their environment variables)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="ONCEFLOW_CONFIG",
        help="Path to onceflow.yml (default ./onceflow.yml).",
    ),
]
DateOpt = Annotated[
    str | None,
    typer.Option("--date", "-d", help="Run date YYYY-MM-DD, 'today' or 'yesterday' (default)."),
]
RunIdOpt = Annotated[
    str | None, typer.Option("--run-id", help="Override the deterministic run id.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
TablesOpt = Annotated[
    list[str] | None,
    typer.Option("--tables", "-t", help="Table keys or names (repeat, or comma-separate)."),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option("--workers", "-w", min=1, envvar="ONCEFLOW_WORKERS", help="Parallel tables."),
]
VerifyOpt = Annotated[
    str, typer.Option("--verify", help="fast (size) or deep (checksum) skip verification.")
]
ForceReprocessOpt = Annotated[
    bool, typer.Option("--force-reprocess", help="Re-extract even committed tables.")
]
LockTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--lock-timeout",
        envvar="ONCEFLOW_LOCK_TIMEOUT",
        min=0,
        help="Seconds to wait for a lock held by another process.",
    ),
]
SafeAgeOpt = Annotated[
    float,
    typer.Option(
        "--safe-age", min=0, help="Only touch temp/uncommitted files older than this (s)."
    ),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
AllowPartialOpt = Annotated[
    bool,
    typer.Option(
        "--allow-partial",
        help="Extract a window that has not ended yet, marked partial (extracted again by "
        "every run until it has ended).",
    ),
]


def split_list(values: Sequence[str] | None) -> list[str]:
    """`-t a,b -t c` -> ['a', 'b', 'c']: repeated options, each comma-separated."""
    return [part.strip() for item in values or [] for part in item.split(",") if part.strip()]
