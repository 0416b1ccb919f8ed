#!/usr/bin/env bash
# NVRTC build check, no GPU needed: a fresh venv with the CuPy and NVRTC wheels a
# CUDA 13 node uses, this checkout installed (a real, non-editable install, so the
# kernels come from the wheel's gpumask/kernels), then ci/nvrtc_check.py compiles
# every kernel build gpumask can request (gpumask._kernels.all_builds) for sm_80 and
# sm_90 and prints registers, stack and spills per build.
# Usage: bash ci/check-nvrtc.sh [nvrtc_check.py args, e.g. --arch 80 90 100 --fail-on-spills]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install --quiet --upgrade pip
"$py" -m pip install --quiet "cupy-cuda13x==14.2.0" "nvidia-cuda-nvrtc==13.*" "$repo"
cd "$work"
"$py" - <<'PY'
import gpumask._kernels as k
assert "site-packages" in str(k.kernel_dir()), f"the check must use the installed kernels, got {k.kernel_dir()}"
PY
"$py" "$repo/ci/nvrtc_check.py" "$@"
