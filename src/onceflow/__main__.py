"""`python -m onceflow` runs the CLI."""

from onceflow.cli import run

run()
