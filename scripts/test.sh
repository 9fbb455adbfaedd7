#!/usr/bin/env bash
# Set up onceflow and run lint, type checks and the whole test suite (pass pytest args through).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/services.sh
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy
# two test processes by default (each test has its own database, schema and folders);
# ONCEFLOW_TEST_WORKERS=0 runs them in this one, as a debugger wants
.venv/bin/pytest -q -n "${ONCEFLOW_TEST_WORKERS:-2}" "$@"
