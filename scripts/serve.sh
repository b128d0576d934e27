#!/usr/bin/env bash
# Sets everything up and starts the server on its embedded defaults:
# SQLite in ./data, the local model, http://127.0.0.1:8000/v1
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/threadline serve "$@"
