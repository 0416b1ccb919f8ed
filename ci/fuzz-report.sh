#!/usr/bin/env bash
# A long fuzz campaign (not part of CI): the tests/fuzz suite with N examples per
# test (default 1000), then the table of outcomes per suite: cases tried, clean
# errors, results (checked), crashes, hangs, oversize allocations, silent wrong
# results. Usage: bash ci/fuzz-report.sh [N] [pytest args...]
# Uses $PYTHON (default: python on PATH), a dev install with the test extras.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
n="${1:-1000}"; shift || true
report=$(mktemp --suffix=.json)
trap 'rm -f "$report"' EXIT
export GPUMASK_BACKEND="${GPUMASK_BACKEND:-numpy}"
export GPUMASK_TEST_DATA="${GPUMASK_TEST_DATA:-$repo/../shared/data}"
cd "$(mktemp -d)"
GPUMASK_FUZZ_EXAMPLES="$n" GPUMASK_FUZZ_REPORT="$report" "${PYTHON:-python}" -m pytest "$repo/tests/fuzz" \
  -c "$repo/pyproject.toml" --rootdir "$repo" -q -p no:randomly "$@"
status=$?
"${PYTHON:-python}" - "$report" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
cols = ["cases", "clean_error", "ok", "ok_with_warning", "crash", "hang", "oversize", "wrong"]
print("| suite | " + " | ".join(cols) + " |")
print("|---" * (len(cols) + 1) + "|")
total = {c: 0 for c in cols}
for suite, counts in data.items():
    print(f"| {suite} | " + " | ".join(str(counts.get(c, 0)) for c in cols) + " |")
    for c in cols:
        total[c] += counts.get(c, 0)
print("| all | " + " | ".join(str(total[c]) for c in cols) + " |")
PY
exit $status
