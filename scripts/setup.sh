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
# Tools some tests use, from Debian's packages, only when missing (apt-get needs root;
# elsewhere those tests skip with the reason, and CI fails): Chromium renders the
# validation HTML report in its browser test; iproute2's `ip` gives the many-machines
# schedule tests their network namespaces.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if [ "${#missing[@]}" -gt 0 ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
