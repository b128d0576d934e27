#!/usr/bin/env bash
# Sets up and runs the whole test suite: lint, format check, types, tests
# (SQLite and PostgreSQL, smoke tests on the embedded model).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
scripts/services.sh
export THREADLINE_REQUIRE_POSTGRES=${THREADLINE_REQUIRE_POSTGRES:-1}
export THREADLINE_REQUIRE_SANDBOX=${THREADLINE_REQUIRE_SANDBOX:-1}
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy
.venv/bin/pytest -p no:cacheprovider "$@"
