#!/usr/bin/env bash
# Create .venv and install onceflow with its dev tools (idempotent; fast when up to date).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.onceflow-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  touch "$stamp"
fi
# An editable install leaves onceflow's own modules uncompiled, and where
# PYTHONDONTWRITEBYTECODE is set every command would compile them again (~60 ms).
.venv/bin/python -m compileall -q src/onceflow >/dev/null
# Chromium renders the validation HTML report in its browser test. Debian's package, only
# when missing (apt-get needs root; elsewhere the test skips with the reason, CI fails).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
   && [ "$(id -u)" = "0" ]; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
