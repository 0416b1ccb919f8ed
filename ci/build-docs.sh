#!/usr/bin/env bash
# Build the documentation: fresh venv, install gpumask with its docs extras from
# this checkout (a real, non-editable install), then sphinx-build with warnings as
# errors.  Every notebook in examples/ is executed (myst-nb); a failing cell fails
# the build.  The real data of the examples is read from ../shared/data when
# present (GPUMASK_DATA overrides); without it the notebooks use the built-in
# demo data.  Output: docs/_build/html (or the folder given as $1).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$repo/docs/_build/html}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install --quiet --upgrade pip
"$py" -m pip install --quiet "$repo[docs]"
if [ -z "${GPUMASK_DATA:-}" ] && [ -d "$repo/../shared/data" ]; then
  export GPUMASK_DATA="$repo/../shared/data"
fi
# no MPLBACKEND here: the notebook kernels must keep their inline backend (figures)
unset MPLBACKEND
export GPUMASK_PROGRESS=0
# the notebooks' kernel is this venv's python
"$py" -m ipykernel install --prefix "$work/venv" --name python3 --display-name "Python 3" >/dev/null
export JUPYTER_PATH="$work/venv/share/jupyter"
echo "== docs: sphinx-build (warnings are errors, notebooks executed)"
"$py" -m sphinx -b html -W --keep-going -n -q "$repo/docs" "$out"
echo "== docs built in $out"
