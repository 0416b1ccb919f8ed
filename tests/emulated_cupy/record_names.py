"""Record the public names of a real CuPy install, for the emulated backend.

The emulator (``tests/emulated_cupy``) exposes only names that the real CuPy has,
with their real keyword arguments, so a call that NumPy accepts but CuPy refuses
fails in CPU CI too.  This script reads them off a real wheel (no GPU needed:
``cupy-cuda13x`` imports without a device) and writes ``cupy_names.json`` beside
it.  Refresh it for a new CuPy with::

    python -m venv /tmp/cupy && /tmp/cupy/bin/pip install "cupy-cuda13x==14.*" scipy
    /tmp/cupy/bin/python tests/emulated_cupy/record_names.py

and commit the new JSON (its ``cupy_version`` field says which release it came from).
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path

MODULES = (
    "cupy",
    "cupy.fft",
    "cupy.linalg",
    "cupy.random",
    "cupy.cuda",
    "cupy.cuda.runtime",
    "cupy.cuda.compiler",
    "cupy.cuda.driver",
    "cupyx",
    "cupyx.scipy",
    "cupyx.scipy.fft",
    "cupyx.scipy.ndimage",
    "cupyx.scipy.special",
)
OUT = Path(__file__).with_name("cupy_names.json")


def _describe(obj) -> dict:
    import cupy  # noqa: PLC0415

    if isinstance(obj, cupy.ufunc):
        return {"kind": "ufunc", "nin": obj.nin, "nout": obj.nout,
                "methods": sorted(n for n in dir(obj) if not n.startswith("_"))}
    if inspect.ismodule(obj):
        return {"kind": "module"}
    if inspect.isclass(obj):
        return {"kind": "type"}
    if callable(obj):
        try:
            sig = inspect.signature(obj)
        except (TypeError, ValueError):
            return {"kind": "function", "params": None}
        params = [[p.name, p.kind.name] for p in sig.parameters.values()]
        return {"kind": "function", "params": params}
    return {"kind": "constant", "type": type(obj).__name__}


def record() -> dict:
    import cupy  # noqa: PLC0415

    out = {"cupy_version": cupy.__version__, "modules": {}}
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:  # e.g. cupy.cuda.driver: an attribute, not an importable module
            parent, _, leaf = name.rpartition(".")
            module = getattr(importlib.import_module(parent), leaf)
        public = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
        entries = {}
        for attr in sorted(set(public)):
            try:
                obj = getattr(module, attr)
            except AttributeError:
                continue
            entries[attr] = _describe(obj)
        out["modules"][name] = entries
    out["ndarray"] = sorted(n for n in dir(cupy.ndarray) if not n.startswith("_") or n.startswith("__"))
    return out


def main(argv=None) -> int:
    data = record()
    OUT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    counts = {m: len(v) for m, v in data["modules"].items()}
    print(f"recorded CuPy {data['cupy_version']} names into {OUT}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
