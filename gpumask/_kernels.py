"""Locate, load and compile the CUDA sources in ``kernels/``.

The ``.cu``/``.cuh`` files live in the top-level ``kernels/`` folder of the
checkout and are shipped inside the wheel as ``gpumask/kernels``.  An editable
install therefore finds the live files of the checkout, a regular install the
copy in the package.

Compilation goes through :class:`cupy.RawModule` (NVRTC) and is memoised on
everything that changes the compiled code: the file, its contents, the kernel
name, the injected ``#define`` values and the device.  CuPy additionally keeps
a disk cache (``CUPY_CACHE_DIR``) so cluster jobs compile once per node.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

__all__ = ["kernel_dir", "kernel_source", "expanded_source", "get_kernel"]


def kernel_dir() -> Path:
    """Directory holding the CUDA sources (wheel copy first, then checkout)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "kernels", here.parent / "kernels"):
        if candidate.is_dir() and any(candidate.glob("*.cu")):
            return candidate
    raise FileNotFoundError(
        "gpumask's CUDA sources were not found: looked in "
        f"{here / 'kernels'} (installed wheel) and {here.parent / 'kernels'} "
        "(source checkout). Reinstall gpumask; the wheel must contain gpumask/kernels/."
    )


def kernel_source(filename: str) -> str:
    """Text of one kernel file, e.g. ``kernel_source("wcs.cu")``."""
    path = kernel_dir() / filename
    if not path.is_file():
        known = sorted(p.name for p in kernel_dir().glob("*.cu*"))
        raise FileNotFoundError(f"No kernel file {filename!r} in {path.parent}; known: {known}")
    return path.read_text()


_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$', re.MULTILINE)


def expanded_source(filename: str) -> str:
    """``filename`` with its local ``#include "x.cuh"`` lines replaced by the
    headers' text (each header once).

    CuPy's on-disk kernel cache keys on the source text it is given; inlining the
    headers makes a change to any of them recompile instead of reusing a stale
    binary after an upgrade.
    """
    seen = set()

    def expand(name):
        if name in seen:
            return ""
        seen.add(name)
        text = kernel_source(name)
        return _INCLUDE.sub(lambda m: expand(m.group(1)) if (kernel_dir() / m.group(1)).is_file()
                            else m.group(0), text)

    return expand(filename)


def _render_defines(defines: dict) -> str:
    lines = []
    for key, value in sorted(defines.items()):
        if not key.isupper():
            raise ValueError(f"Kernel define {key!r} must be UPPER_CASE")
        lines.append(f"#define {key} {value}")
    return "\n".join(lines) + "\n"


def get_kernel(filename: str, name: str, defines: dict | None = None, options: tuple = ()):
    """Compiled :class:`cupy.RawKernel` ``name`` from ``kernels/filename``.

    ``defines`` are injected as ``#define KEY VALUE`` lines before the source;
    ``options`` are extra NVRTC flags (e.g. ``("--fmad=false",)`` where results
    must round exactly like NumPy's).  Only call this from code that already runs
    on the cupy backend.
    """
    source = expanded_source(filename)
    rendered = _render_defines(defines or {})
    digest = hashlib.sha1((rendered + source).encode()).hexdigest()
    return _compile(filename, name, rendered, digest, tuple(options))


@functools.lru_cache(maxsize=None)
def _compile_cached(filename, name, rendered, digest, options, device_id):
    import cupy  # noqa: PLC0415 - only reached on the cupy backend

    code = rendered + expanded_source(filename)
    module = cupy.RawModule(
        code=code,
        options=("-std=c++17", f"-I{kernel_dir()}", *options),
        name_expressions=None,
    )
    return module.get_function(name)


def _compile(filename, name, rendered, digest, options=()):
    import cupy  # noqa: PLC0415

    return _compile_cached(filename, name, rendered, digest, options, cupy.cuda.Device().id)
