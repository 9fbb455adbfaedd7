"""`python -m onceflow` runs the CLI."""

from onceflow.console import run

run()
