#!/usr/bin/env bash
# Creates .venv and installs threadline with everything it needs. Idempotent:
# a second run only installs what changed. Usage: scripts/setup.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
extras="local"
if [ "${1:-}" = "--dev" ]; then extras="local,dev"; fi
stamp=".venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-${extras/,/-}"
if [ ! -f "$stamp" ]; then
  # llama-cpp-python ships only as source: build it without the multimodal tools.
  export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}"
  echo "installing threadline[$extras] (the first time builds the local model runtime, ~5 min)" >&2
  .venv/bin/python -m pip install -q -e ".[$extras]"
  touch "$stamp"
fi
