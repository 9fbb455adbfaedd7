#!/usr/bin/env bash
# Set up onceflow and run the demo pipeline end to end on embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ONCEFLOW="$PWD/.venv/bin/onceflow"
DEMO_DIR="${1:-demo}"
"$ONCEFLOW" init "$DEMO_DIR" --force
cd "$DEMO_DIR"
"$ONCEFLOW" run
"$ONCEFLOW" run          # a rerun: everything is skipped, nothing twice
"$ONCEFLOW" up --until-idle   # scheduler + workers: catch up the 3 latest nightly ticks, exit
"$ONCEFLOW" validate --html validation.html   # the rules again: from the cache, no query
"$ONCEFLOW" status
"$ONCEFLOW" status --tenant default
