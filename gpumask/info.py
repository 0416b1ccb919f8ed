"""``gpumask.info()``: versions, the backend chosen and why, and the GPU."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys

from .backend import cupy_status, gpu_devices, selection_reason

__all__ = ["info", "InfoReport"]

_PACKAGES = ("gpumask", "numpy", "scipy", "astropy", "regions", "cupy", "gammapy", "dask")


def _version(name):
    candidates = [name] if name != "cupy" else ["cupy", "cupy-cuda13x", "cupy-cuda12x"]
    for dist in candidates:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


class InfoReport(dict):
    """What :func:`info` found; a dict that prints as a readable report."""

    def __str__(self):
        lines = ["gpumask info", ""]
        for key in ("python", "platform"):
            lines.append(f"  {key:<16s}: {self[key]}")
        lines.append("  packages:")
        for pkg, ver in self["packages"].items():
            lines.append(f"    {pkg:<14s}: {ver or 'not installed'}")
        lines.append(f"  backend         : {self['backend']}")
        lines.append(f"  chosen because  : {self['backend_reason']}")
        lines.append(f"  cupy usable     : {self['cupy_usable']} ({self['cupy_status']})")
        for gpu in self["gpus"]:
            lines.append(
                f"  GPU {gpu['id']}           : {gpu['name']}, {gpu['memory_gib']:.1f} GiB, "
                f"compute capability {gpu['compute_capability']}"
            )
        lines.append(f"  CUPY_CACHE_DIR  : {self['cupy_cache_dir']}")
        return "\n".join(lines)

    def __repr__(self):
        return str(self)

    def _repr_pretty_(self, printer, cycle):
        printer.text(str(self))


def info(backend=None) -> InfoReport:
    """Report versions, the backend that new data would use and why, and the GPUs.

    Returns an :class:`InfoReport` (a dict that prints as text).  Probing cupy
    imports it; ``import gpumask`` alone does not.
    """
    name, reason = selection_reason(backend)
    ok, status = cupy_status()
    return InfoReport(
        python=sys.version.split()[0],
        platform=platform.platform(),
        packages={pkg: _version(pkg) for pkg in _PACKAGES},
        backend=name,
        backend_reason=reason,
        cupy_usable=ok,
        cupy_status=status,
        gpus=gpu_devices(),
        cupy_cache_dir=os.environ.get("CUPY_CACHE_DIR", "~/.cupy/kernel_cache (default)"),
    )
