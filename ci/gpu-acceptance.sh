#!/usr/bin/env bash
# GPU acceptance for one CUDA node, in one command: the whole test suite on real CuPy
# (ci/test-gpu.sh: no gpu-marked test may skip, the emulator is never used), then
# every benchmark timing gpumask on cupy and numpy against gammapy in one process,
# and one report: $OUT_DIR/report.md (pytest summary, the benchmark tables with
# their cupy/numpy/gammapy ratios, and the time each step took).
#
# Usage: bash ci/gpu-acceptance.sh [OUT_DIR] [cuda13|cuda12]
#   OUT_DIR defaults to ./gpu-acceptance.  Budget: 8 minutes on one H100/H200.
# Environment:
#   GPUMASK_NO_INSTALL=1   test the Python environment as it is (no network: install
#                          the wheels beforehand, e.g. pip install --no-index
#                          --find-links wheels/ cupy-cuda13x gammapy ...); the
#                          checkout goes on PYTHONPATH
#   PYTHON                 interpreter (default python3)
#   GPUMASK_TEST_DATA      shared data (default ../shared/data beside the checkout)
#   GPUMASK_BENCH_FULL=1   full-size benchmarks instead of --quick (longer than 8 min)
#   GPUMASK_PYTEST_ARGS    pytest arguments (default "-q -p no:randomly"); e.g. add
#                          "-m gpu -n 8" (pytest-xdist) to run only the CuPy cases, in parallel
#   GPUMASK_BENCH_TIMEOUT  seconds each benchmark may take (default 180)
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$(mkdir -p "${1:-gpu-acceptance}" && cd "${1:-gpu-acceptance}" && pwd)
extra="${2:-cuda13}"
export GPUMASK_TEST_DATA="${GPUMASK_TEST_DATA:-$repo/../shared/data}"
export CUPY_CACHE_DIR="${CUPY_CACHE_DIR:-$HOME/.cupy/kernel_cache}"
export PYTHONUNBUFFERED=1
unset GPUMASK_EMULATE_CUPY GPUMASK_BACKEND
py="${PYTHON:-python3}"
t0=$(date +%s)

if [ -z "${GPUMASK_NO_INSTALL:-}" ]; then
  "$py" -m venv "$out/venv" && py="$out/venv/bin/python"
  "$py" -m pip install --quiet --upgrade pip
  "$py" -m pip install --quiet "$repo[test,$extra]" || { echo "install failed"; exit 1; }
fi
export PYTHON="$py" GPUMASK_NO_INSTALL=1
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"

report="$out/report.md"
{
  echo "# gpumask GPU acceptance"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1 || echo 'nvidia-smi not found')"
  echo
  echo '```'
  "$py" -c 'import gpumask; print(gpumask.info())' 2>&1 | head -30
  echo '```'
} >"$report"

# 1. the whole suite on real CuPy
t1=$(date +%s)
# shellcheck disable=SC2086  # the arguments are split on purpose
bash "$repo/ci/test-gpu.sh" "$extra" ${GPUMASK_PYTEST_ARGS:--q -p no:randomly} 2>&1 | tee "$out/pytest.log"
rc_tests=${PIPESTATUS[0]}
t2=$(date +%s)
{
  echo
  echo "## Test suite (ci/test-gpu.sh), exit $rc_tests, $((t2 - t1)) s"
  echo
  echo '```'
  grep -E "^(FAILED|ERROR)" "$out/pytest.log" | head -40
  tail -1 "$out/pytest.log"
  echo '```'
} >>"$report"

# 2. benchmarks: cupy, numpy and gammapy in one process each
quick="--quick"; [ -n "${GPUMASK_BENCH_FULL:-}" ] && quick=""
rc_bench=0
for bench in "$repo"/benchmarks/bench_*.py; do
  name=$(basename "$bench" .py)
  b0=$(date +%s)
  (cd "$out" && timeout "${GPUMASK_BENCH_TIMEOUT:-180}" "$py" "$bench" $quick --out "$out/$name.md") >"$out/$name.log" 2>&1
  rc=$?
  b1=$(date +%s)
  [ $rc -ne 0 ] && rc_bench=1
  {
    echo
    echo "## $name (exit $rc, $((b1 - b0)) s)"
    echo
    if [ -s "$out/$name.md" ]; then sed '1{/^# /d}' "$out/$name.md"; else tail -20 "$out/$name.log"; fi
  } >>"$report"
done

t3=$(date +%s)
total=$((t3 - t0))
{
  echo
  echo "## Total: ${total} s (budget 480 s: $([ $total -le 480 ] && echo within || echo EXCEEDED))"
} >>"$report"
echo "report: $report"
[ $rc_tests -eq 0 ] && [ $rc_bench -eq 0 ]
