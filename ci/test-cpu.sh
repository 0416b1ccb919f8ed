#!/usr/bin/env bash
# CPU test suite: fresh venv, install gpumask with its test extras from this
# checkout (a real, non-editable install), run pytest from a temporary directory
# so the tests import the installed package (files missing from the wheel fail).
# Two passes: the whole suite on NumPy (gpu-marked tests skip), then the
# gpu-marked tests on the emulated CuPy (tests/emulated_cupy), so every CuPy
# branch and kernel launch of gpumask runs on the CPU too.
# GPUMASK_SKIP_EMULATED=1 runs the NumPy pass only.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install --quiet --upgrade pip
"$py" -m pip install --quiet "$repo[test]"
export GPUMASK_TEST_INSTALLED=1
export GPUMASK_BACKEND="${GPUMASK_BACKEND:-numpy}"
export GPUMASK_TEST_DATA="${GPUMASK_TEST_DATA:-$repo/../shared/data}"
cd "$work"
echo "== pass 1: NumPy"
"$py" -m pytest "$repo/tests" -c "$repo/pyproject.toml" --rootdir "$repo" "$@"
if [ -z "${GPUMASK_SKIP_EMULATED:-}" ]; then
  echo "== pass 2: the gpu-marked tests on the emulated CuPy"
  GPUMASK_EMULATE_CUPY=1 "$py" -m pytest "$repo/tests" -c "$repo/pyproject.toml" --rootdir "$repo" -m gpu "$@"
fi
