"""``gpumask.info()``: versions, the backend chosen and why, and the GPU."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
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


_INSTALL = "gpumask[cuda12] or gpumask[cuda13] (to match your CUDA driver)"


def _gpu_summary(ok, status):
    """``(headline, detail)`` of the GPU backend's state: the headline in plain words,
    the import or CUDA error (once) as the detail."""
    if ok:
        return f"available ({status})", None
    found = re.fullmatch(r"cupy cannot be imported \((.*)\); install .*", status, re.S)
    if found:
        detail = found.group(1)
        if detail.startswith("ModuleNotFoundError") and "'cupy'" in detail:
            return f"not available: CuPy is not installed; to use a GPU install {_INSTALL}", detail
        return f"not available: CuPy is installed but does not import; reinstall {_INSTALL}", detail
    return "not available: CuPy is installed but cannot use a CUDA device here", status


class InfoReport(dict):
    """What :func:`~gpumask.info` found; a dict that prints as a readable report.

    Keys: ``python``, ``platform``, ``packages`` (name -> version or None),
    ``backend`` (``"numpy"`` or ``"cupy"``), ``backend_reason`` (why, in words),
    ``cupy_usable`` (bool), ``cupy_status`` (the full probe message, the import or
    CUDA error included), ``gpu_backend`` (the GPU backend's state in plain words),
    ``gpus`` and ``cupy_cache_dir``.
    """

    def __str__(self):
        lines = ["gpumask info", ""]
        for key in ("python", "platform"):
            lines.append(f"  {key:<16s}: {self[key]}")
        lines.append("  packages:")
        for pkg, ver in self["packages"].items():
            lines.append(f"    {pkg:<14s}: {ver or 'not installed'}")
        kind = "GPU backend (CuPy)" if self["backend"] == "cupy" else "CPU backend (NumPy/SciPy)"
        lines.append(f"  backend         : {self['backend']}, {kind} in use")
        lines.append(f"  chosen because  : {self['backend_reason']}")
        headline, detail = _gpu_summary(self["cupy_usable"], self["cupy_status"])
        lines.append(f"  GPU backend     : {headline}")
        if detail:
            lines.append(f"    detail        : {detail}")
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

    Probing cupy imports it; ``import gpumask`` alone does not.  On a machine
    without CuPy the report says plainly that the CPU backend is in use and how to
    get the GPU one; the import error appears once, as a detail.

    Parameters
    ----------
    backend : {"numpy", "cupy", "auto"}, optional
        Report the choice for this explicit backend (default: the active context,
        ``GPUMASK_BACKEND``, else auto).

    Returns
    -------
    InfoReport
        A dict that prints as text (see :class:`~gpumask.info.InfoReport` for its keys).

    Examples
    --------
    >>> report = gpumask.info()  # doctest: +SKIP
    >>> report["backend"], report["cupy_usable"]  # doctest: +SKIP
    ('numpy', False)
    """
    name, reason = selection_reason(backend)
    ok, status = cupy_status()
    if reason.endswith(f": {status}"):  # auto: say the outcome; the probe's message is shown once, below
        reason = reason[: -len(status)] + ("CuPy and a CUDA device work" if ok else "no usable GPU backend (see "
                                           "GPU backend below)")
    return InfoReport(
        python=sys.version.split()[0],
        platform=platform.platform(),
        packages={pkg: _version(pkg) for pkg in _PACKAGES},
        backend=name,
        backend_reason=reason,
        cupy_usable=ok,
        cupy_status=status,
        gpu_backend=_gpu_summary(ok, status)[0],
        gpus=gpu_devices(),
        cupy_cache_dir=os.environ.get("CUPY_CACHE_DIR", "~/.cupy/kernel_cache (default)"),
    )
