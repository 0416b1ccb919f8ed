"""Build the emulated ``cupy``/``cupyx`` modules from the names of the real CuPy.

Every name listed in ``cupy_names.json`` (recorded from the real wheel by
``record_names.py``) becomes an attribute; nothing else does, so code that uses a
NumPy name CuPy lacks fails with ``AttributeError`` as on a GPU.  Functions check
their keywords against CuPy's recorded signature, unwrap device arrays, refuse
NumPy arrays (except where CuPy uploads them: ``asarray`` and friends), call the
NumPy/SciPy twin and wrap the result.  A recorded name with no twin and no
emulation raises ``NotImplementedError`` when used.
"""

from __future__ import annotations

import functools
import importlib
import json
import sys
import types
from pathlib import Path

import numpy as np

from . import _array, _device
from ._array import ndarray, ufunc, unwrap, wrap

NAMES_FILE = Path(__file__).with_name("cupy_names.json")

# cupy module -> the NumPy/SciPy module whose functions stand in for it
_TWINS = {
    "cupy": "numpy",
    "cupy.fft": "numpy.fft",
    "cupy.linalg": "numpy.linalg",
    "cupy.random": "numpy.random",
    "cupyx.scipy.fft": "scipy.fft",
    "cupyx.scipy.ndimage": "scipy.ndimage",
    "cupyx.scipy.special": "scipy.special",
}
# Functions that accept host data (they upload it; gpumask counts those itself).
_HOST_OK = frozenset({"array", "asarray", "asanyarray", "ascontiguousarray", "asfortranarray"})
# Arguments CuPy takes on the host (it converts them with numpy.asarray itself); a
# device array given there is read back by CuPy (logged as a host read).
_HOST_PARAMS = {"cupyx.scipy.ndimage.label": ("structure",)}
# NumPy returns a Python scalar here where CuPy returns a 0-d device array.
_TO_ARRAY = frozenset({"count_nonzero", "allclose", "array_equal", "array_equiv"})

_BUILT: dict[str, types.ModuleType] = {}


@functools.lru_cache(maxsize=1)
def recorded() -> dict:
    return json.loads(NAMES_FILE.read_text())


class _Module(types.ModuleType):
    """A module that names the real CuPy in its AttributeError."""

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise AttributeError(
            f"module {self.__name__!r} has no attribute {attr!r} (the emulated CuPy exposes only "
            f"the names of the real CuPy {recorded()['cupy_version']}; see tests/emulated_cupy)")


def _not_implemented(qualname):
    def missing(*args, **kwargs):
        raise NotImplementedError(
            f"{qualname} exists in the real CuPy but the emulator does not implement it; "
            "add it to tests/emulated_cupy/_namespace.py")

    missing.__name__ = qualname.rpartition(".")[2]
    return missing


def _keyword_check(qualname, params):
    """Keywords and positional count CuPy's signature allows (None: unchecked)."""
    if params is None:
        return None, None
    kinds = [k for _, k in params]
    names = {n for n, k in params if k in ("POSITIONAL_OR_KEYWORD", "KEYWORD_ONLY")}
    allowed = None if "VAR_KEYWORD" in kinds else frozenset(names)
    max_pos = None if "VAR_POSITIONAL" in kinds else sum(
        k in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD") for k in kinds)
    return allowed, max_pos


def _host_arg(value):
    """An argument CuPy reads on the host: a device array is copied back (logged)."""
    if isinstance(value, ndarray):
        return value.get()
    return value


def _function(qualname, twin, params):
    leaf = qualname.rpartition(".")[2]
    allowed, max_pos = _keyword_check(qualname, params)
    host_ok = leaf in _HOST_OK
    to_array = leaf in _TO_ARRAY
    host_params = _HOST_PARAMS.get(qualname, ())
    order = [n for n, _ in params or ()]

    def call(*args, **kwargs):
        if allowed is not None:
            bad = sorted(set(kwargs) - allowed)
            if bad:
                raise TypeError(f"{qualname}() got an unexpected keyword argument {bad[0]!r}")
        if max_pos is not None and len(args) > max_pos:
            raise TypeError(f"{qualname}() takes {max_pos} positional arguments but {len(args)} were given")
        a = [_host_arg(v) if i < len(order) and order[i] in host_params else unwrap(v, host_ok=host_ok)
             for i, v in enumerate(args)]
        kw = {k: _host_arg(v) if k in host_params else unwrap(v, host_ok=host_ok)
              for k, v in kwargs.items()}
        with np.errstate(all="ignore"):
            r = twin(*a, **kw)
        if to_array and isinstance(r, (bool, int, float)):
            r = np.asarray(r)
        return wrap(r)

    call.__name__ = leaf
    call.__qualname__ = qualname
    call.__doc__ = f"Emulated {qualname} (NumPy/SciPy twin: {getattr(twin, '__module__', '?')}.{leaf})."
    return call


class _Adapter:
    """A CuPy ufunc whose NumPy twin is a plain function (``fix``, ``i0``, ``sinc``)."""

    def __init__(self, func):
        self.func = func
        self.types = []

    def __call__(self, *ins, out=None, dtype=None, casting=None):
        r = np.asarray(self.func(*ins))
        if dtype is not None:
            r = r.astype(dtype)
        if out is not None:
            np.copyto(out, r, casting=casting or "same_kind")
            return out
        return r


# --------------------------------------------------------------------------- custom names


def _asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    if isinstance(a, ndarray):
        r = a._a if dtype is None else a._a.astype(dtype, copy=False)
        if order in ("C", "F") and not r.flags[f"{order}_CONTIGUOUS"]:
            r = np.array(r, order=order)
        if copy:
            r = r.copy()
        return a if r is a._a else ndarray._from(r)
    if isinstance(a, (list, tuple)) and any(isinstance(x, ndarray) for x in a):
        a = [x._a if isinstance(x, ndarray) else x for x in a]
    if copy is False:
        raise ValueError("Unable to avoid copy while creating an array as requested (host data)")
    return ndarray._from(np.array(a, dtype=dtype, order=order or "K", copy=True))


def _array_func(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if isinstance(obj, ndarray):
        return ndarray._from(np.array(obj._a, dtype=dtype, copy=copy, order=order, ndmin=ndmin))
    return ndarray._from(np.array(unwrap(obj, host_ok=True), dtype=dtype, copy=True, order=order,
                                  ndmin=ndmin))


def _ascontiguousarray(a, dtype=None):
    r = _asarray(a, dtype=dtype)
    return r if r._a.flags.c_contiguous else ndarray._from(np.ascontiguousarray(r._a))


def _asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    if out is not None:
        out[...] = a
        return out
    return np.asarray(a, order=order)


def _get_array_module(*args):
    return sys.modules["cupy"] if any(isinstance(a, ndarray) for a in args) else np


def _copyto(dst, src, casting="same_kind", where=None):
    if not isinstance(dst, ndarray):
        raise TypeError(f"copyto destination must be a cupy.ndarray, got {type(dst)}")
    if isinstance(src, np.ndarray):
        if src.size != 1:
            raise ValueError("non-scalar numpy.ndarray cannot be used for copyto")
        _array._log_upload("copyto", src)
    with np.errstate(all="ignore"):
        np.copyto(dst._a, unwrap(src, host_ok=True), casting=casting, where=True if where is None else unwrap(where))


def _where_func():
    plain = _function("cupy.where", np.where, None)

    def where(condition, x=None, y=None):
        # CuPy 14 calls condition.astype() when x and y are given: a Python bool or
        # number raises there (seen on an H200, where the emulator had let it pass)
        if x is not None and y is not None and not hasattr(condition, "astype"):
            raise AttributeError(f"{type(condition).__name__!r} object has no attribute 'astype'")
        return plain(condition) if x is None and y is None else plain(condition, x, y)

    where.__qualname__ = "cupy.where"
    return where


def _show_config(*, _full=False):
    print(f"emulated CuPy {recorded()['cupy_version']} on {_device.CONFIG.name}")


def _custom():
    from . import _raw  # noqa: PLC0415

    return {
        "cupy": {
            "ndarray": ndarray, "ufunc": ufunc, "asarray": _asarray, "asanyarray": _asarray,
            "array": _array_func, "ascontiguousarray": _ascontiguousarray, "asnumpy": _asnumpy,
            "get_array_module": _get_array_module, "copyto": _copyto, "where": _where_func(),
            "get_default_memory_pool": _device.get_default_memory_pool,
            "get_default_pinned_memory_pool": _device.get_default_pinned_memory_pool,
            "is_available": _device.is_available, "show_config": _show_config,
            "RawModule": _raw.RawModule, "RawKernel": _raw.RawKernel,
        },
        "cupy.cuda": {
            "is_available": _device.is_available, "Device": _device.Device,
            "MemoryPool": _device.MemoryPool, "PinnedMemoryPool": _device.PinnedMemoryPool,
            "MemoryPointer": _device.MemoryPointer, "Stream": _device.Stream,
            "get_current_stream": _device.get_current_stream,
            "get_device_id": _device.getDevice,
        },
        "cupy.cuda.runtime": {
            name: getattr(_device, name) for name in (
                "CUDARuntimeError", "getDeviceCount", "getDevice", "setDevice", "getDeviceProperties",
                "memGetInfo", "deviceSynchronize", "runtimeGetVersion", "driverGetVersion")
        },
        "cupy.cuda.driver": {"CUDADriverError": _device.CUDADriverError},
        "cupy.cuda.compiler": {"CompileException": _raw.CompileException},
    }


def _build_module(qualname, entries, custom):
    mod = _Module(qualname)
    mod.__file__ = __file__
    twin_name = _TWINS.get(qualname)
    twin = importlib.import_module(twin_name) if twin_name else None
    own = custom.get(qualname, {})
    for name, info in entries.items():
        kind = info["kind"]
        full = f"{qualname}.{name}"
        if name in own:
            value = own[name]
        elif kind == "module":
            continue  # submodules are attached by install()
        elif twin is not None and hasattr(twin, name):
            obj = getattr(twin, name)
            if kind == "ufunc":
                u = obj if isinstance(obj, np.ufunc) else _Adapter(obj)
                value = ufunc(name, u, info["nin"], info["nout"], info["methods"])
                _array.UFUNCS.setdefault(name, value)
            elif kind == "type" or kind == "constant":
                value = obj
            else:
                value = _function(full, obj, info.get("params"))
        elif kind == "type":
            value = type(name, (), {"__init__": _not_implemented(full)})
        elif kind == "constant":
            value = getattr(np, name, None) if qualname == "cupy" else None
        else:
            value = _not_implemented(full)
        setattr(mod, name, value)
    return mod


def build() -> dict[str, types.ModuleType]:
    """The emulated modules by import name (``cupy``, ``cupy.cuda``, ``cupyx.scipy.fft``...)."""
    if _BUILT:
        return _BUILT
    data = recorded()
    custom = _custom()
    modules = {name: _build_module(name, entries, custom) for name, entries in data["modules"].items()}
    modules["cupy"].__version__ = data["cupy_version"]
    modules["cupy.cuda.memory"] = _Module("cupy.cuda.memory")
    modules["cupy.cuda.memory"].OutOfMemoryError = _device.OutOfMemoryError
    for name, mod in modules.items():
        parent, _, leaf = name.rpartition(".")
        if parent in modules:
            setattr(modules[parent], leaf, mod)
    _array._install_operators(data["ndarray"])
    _BUILT.update(modules)
    return _BUILT


def lookup(numpy_module: str, name: str):
    """The emulated CuPy function standing in for ``numpy_module.name`` (for
    ``__array_function__``), or None when CuPy has none."""
    target = {"numpy": "cupy", "numpy.fft": "cupy.fft", "numpy.linalg": "cupy.linalg"}.get(numpy_module)
    if target is None:
        return None
    return build()[target].__dict__.get(name)
