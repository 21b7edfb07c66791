#!/usr/bin/env bash
# Runs every test tailgate has, doing its own set-up first.
#
#   scripts/test.sh            # all tests
#   scripts/test.sh -p tailgate-proto   # extra arguments go to `cargo test`
#
# Set-up: a Python venv in .venv with the interop clients (opentelemetry-sdk exporters, grpcio) when
# scripts/requirements-interop.txt exists; the interop tests find it through TAILGATE_PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -f scripts/requirements-interop.txt ]; then
  if [ ! -x .venv/bin/python ] || ! cmp -s scripts/requirements-interop.txt .venv/.requirements; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-interop.txt
    cp scripts/requirements-interop.txt .venv/.requirements
  fi
  export TAILGATE_PYTHON="$PWD/.venv/bin/python"
fi

cargo test --workspace "$@"
