#!/usr/bin/env bash
# Sets up and runs the whole test suite: lint, format check, types, tests
# (SQLite and PostgreSQL, smoke tests on the embedded model). Arguments go to
# pytest (`scripts/test.sh tests/unit -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
scripts/services.sh
export THREADLINE_REQUIRE_POSTGRES=${THREADLINE_REQUIRE_POSTGRES:-1}
export THREADLINE_REQUIRE_SANDBOX=${THREADLINE_REQUIRE_SANDBOX:-1}
export THREADLINE_REQUIRE_BROWSER=${THREADLINE_REQUIRE_BROWSER:-1}
.venv/bin/ruff check src tests bench scripts
.venv/bin/ruff format --check src tests bench scripts
.venv/bin/mypy
.venv/bin/lint-imports
pytest=(.venv/bin/pytest -p no:cacheprovider)
# Each folder of tests collects on its own: none leans on another's helpers or
# on the order pytest visits them in.
for folder in $(find tests -name 'test_*.py' -printf '%h\n' | sort -u); do
  if ! out=$("${pytest[@]}" --collect-only -q "$folder" 2>&1); then
    echo "$out" >&2
    echo "test.sh: $folder does not collect on its own" >&2
    exit 1
  fi
done
status=0
"${pytest[@]}" "$@" || status=$?
if [ "$status" -eq 5 ]; then
  # pytest's 5: it collected nothing (a path or -k that matches no test).
  echo "test.sh: no tests were collected (arguments: ${*:-none}); that is a failure" >&2
  exit 1
fi
exit "$status"
