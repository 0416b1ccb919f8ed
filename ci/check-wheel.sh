#!/usr/bin/env bash
# Build the wheel and prove that every kernels/*.cu and *.cuh ships inside it as
# gpumask/kernels/, and that the installed package finds them there.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install --quiet --upgrade pip build
"$py" -m build --wheel --outdir "$work/dist" "$repo" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
wheel=$(ls "$work"/dist/gpumask-*.whl)
echo "built $(basename "$wheel")"
"$py" - "$wheel" "$repo" <<'PY'
import sys, zipfile, pathlib
wheel, repo = sys.argv[1], pathlib.Path(sys.argv[2])
names = set(zipfile.ZipFile(wheel).namelist())
sources = sorted(p.name for p in (repo / "kernels").iterdir() if p.suffix in (".cu", ".cuh"))
if not sources:
    sys.exit("no kernels/*.cu or *.cuh in the checkout")
missing = [s for s in sources if f"gpumask/kernels/{s}" not in names]
if missing:
    sys.exit(f"kernel sources missing from the wheel: {missing}")
print(f"wheel ships {len(sources)} kernel sources: {', '.join(sources)}")
PY
"$py" -m pip install --quiet "$wheel"
cd "$work"
# README's first command on the bare install (no test extras; matplotlib comes with the core install)
"$work/venv/bin/gpumask" demo --out "$work/demo" --backend numpy >"$work/demo.log" || { cat "$work/demo.log"; exit 1; }
for f in exclusion_mask.fits significance_mask.fits combined_mask.fits summary.json preview.png; do
    test -s "$work/demo/$f" || { echo "gpumask demo did not write $f"; cat "$work/demo.log"; exit 1; }
done
echo "gpumask demo ran from the bare wheel install"
"$py" - <<'PY'
import gpumask._kernels as k, pathlib, sys
d = k.kernel_dir()
assert "site-packages" in str(d), f"installed gpumask found kernels outside the package: {d}"
print(f"installed package finds its kernels in {d}")
assert "cupy" not in sys.modules
PY
# An editable install must use the live kernels/ of the checkout instead.
"$py" -m pip install --quiet --no-deps --force-reinstall --editable "$repo"
"$py" - "$repo" <<'PY'
import sys, pathlib, gpumask._kernels as k
repo = pathlib.Path(sys.argv[1]).resolve()
assert k.kernel_dir().resolve() == repo / "kernels", k.kernel_dir()
print(f"editable install finds the live kernels in {k.kernel_dir()}")
PY
echo "wheel check passed"
