#!/usr/bin/env bash
# GPU suite for cluster nodes: everything, CuPy included (no gpu-marked test may skip).
# Usage: bash ci/test-gpu.sh [cuda13|cuda12] [pytest args...]
# Set GPUMASK_NO_INSTALL=1 to test the environment as it is (e.g. wheels carried to a
# node without network access), with the checkout on PYTHONPATH.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
extra="${1:-cuda13}"; shift || true
export GPUMASK_TEST_DATA="${GPUMASK_TEST_DATA:-$repo/../shared/data}"
export GPUMASK_REQUIRE_GPU=1
unset GPUMASK_EMULATE_CUPY  # real CuPy only: the emulator must never stand in here
# The backend fixture puts every gpu-marked case on cupy explicitly; data created
# without a backend stays on numpy, as in CPU CI, so tests that do not take the
# fixture mean the same thing on every node.
export GPUMASK_BACKEND="${GPUMASK_BACKEND:-numpy}"
export CUPY_CACHE_DIR="${CUPY_CACHE_DIR:-$HOME/.cupy/kernel_cache}"
py="${PYTHON:-python3}"
if [ -z "${GPUMASK_NO_INSTALL:-}" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "$py" -m venv "$work/venv"
  py="$work/venv/bin/python"
  "$py" -m pip install --quiet --upgrade pip
  "$py" -m pip install --quiet "$repo[test,$extra]"
  export GPUMASK_TEST_INSTALLED=1
  cd "$work"
else
  export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
fi
"$py" -c "import gpumask; print(gpumask.info())"
# pytest-benchmark (on some GPU images) refuses to run beside xdist (-n): keep it out
"$py" -m pytest "$repo/tests" -c "$repo/pyproject.toml" --rootdir "$repo" -p no:benchmark "$@"
