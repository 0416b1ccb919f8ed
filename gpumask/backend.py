"""Backend dispatch: which array library holds the data, and the one device->host exit.

Two backends exist: ``numpy`` (NumPy + scipy.fft/scipy.ndimage, always there) and
``cupy`` (CuPy + cupyx.scipy.fft/cupyx.scipy.ndimage, on a CUDA device).

Where **new** data is created the backend is chosen, in this order, by

1. an explicit ``backend=`` argument,
2. the innermost active :func:`~gpumask.use_backend` context,
3. the ``GPUMASK_BACKEND`` environment variable (``numpy``, ``cupy`` or ``auto``),
4. ``auto``: cupy when it imports and ``cupy.cuda.is_available()``, else numpy.

Operations on **existing** maps run on the backend of their data; mixing backends in
one operation raises :class:`MixedBackendError`.

This is the only module that imports cupy, and it does so lazily: ``import gpumask``
never loads it.  :func:`~gpumask.to_host` is the only function that copies device data to the
host; it counts every call so tests can assert that a pipeline made no transfer
(:func:`~gpumask.count_transfers`).  :func:`read_flag` is the one way to read a device
boolean for control flow (an iteration's stopping test); it is counted apart.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import dataclasses
import functools
import hashlib
import importlib
import os
import sys
import threading
from types import ModuleType

import numpy as np

__all__ = [
    "Backend",
    "BackendError",
    "MixedBackendError",
    "BACKEND_NAMES",
    "get_backend",
    "resolve_backend",
    "selection_reason",
    "use_backend",
    "backend_of",
    "common_backend",
    "is_device_array",
    "to_host",
    "to_device",
    "device_constant",
    "clear_device_constants",
    "read_flag",
    "count_transfers",
    "TransferCounter",
    "transfer_stats",
    "cupy_status",
    "gpu_devices",
    "memory_available",
]

BACKEND_NAMES = ("numpy", "cupy")
_ENV_VAR = "GPUMASK_BACKEND"
_ENV_CHOICES = ("numpy", "cupy", "auto")


class BackendError(RuntimeError):
    """A backend was asked for that cannot work here, or an unknown name was given."""


class MixedBackendError(BackendError, ValueError):
    """One operation received data living on different backends."""


@dataclasses.dataclass(frozen=True, eq=False)
class Backend:
    """An array library plus its matching FFT and ndimage modules.

    Attributes
    ----------
    name : str
        ``"numpy"`` or ``"cupy"``.
    xp : module
        The array module (``numpy`` or ``cupy``).
    """

    name: str
    xp: ModuleType

    @functools.cached_property
    def fft(self) -> ModuleType:
        """``scipy.fft`` or ``cupyx.scipy.fft`` (imported on first use)."""
        return importlib.import_module("scipy.fft" if self.name == "numpy" else "cupyx.scipy.fft")

    @functools.cached_property
    def ndimage(self) -> ModuleType:
        """``scipy.ndimage`` or ``cupyx.scipy.ndimage`` (imported on first use)."""
        return importlib.import_module(
            "scipy.ndimage" if self.name == "numpy" else "cupyx.scipy.ndimage"
        )

    @functools.cached_property
    def special(self) -> ModuleType:
        """``scipy.special`` or ``cupyx.scipy.special`` (imported on first use)."""
        return importlib.import_module(
            "scipy.special" if self.name == "numpy" else "cupyx.scipy.special"
        )

    @property
    def is_gpu(self) -> bool:
        return self.name == "cupy"

    def asarray(self, data, dtype=None):
        """Array on this backend.  Host data is copied to the device (counted as
        an upload); device data of another backend is refused."""
        return to_device(data, self, dtype=dtype)

    def __repr__(self) -> str:
        return f"Backend({self.name!r})"

    def __reduce__(self):
        # Backends pickle by name (dask workers rebuild them locally).
        return (get_backend, (self.name,))


# --------------------------------------------------------------------------- cupy probing


@functools.lru_cache(maxsize=1)
def cupy_status() -> tuple[bool, str]:
    """Whether cupy can run here, and why not if it cannot.

    Imports cupy on first call (never at ``import gpumask``).
    """
    try:
        import cupy  # noqa: PLC0415
    except Exception as exc:  # ImportError, or a broken CUDA runtime raising at import
        return False, (
            f"cupy cannot be imported ({type(exc).__name__}: {exc}); install "
            "gpumask[cuda12] or gpumask[cuda13] to match your CUDA driver"
        )
    try:
        available = bool(cupy.cuda.is_available())
    except Exception as exc:
        return False, f"cupy {cupy.__version__} is installed but CUDA failed: {exc}"
    if not available:
        return False, (
            f"cupy {cupy.__version__} is installed but no CUDA device is available "
            "(cupy.cuda.is_available() is False; check the driver and CUDA_VISIBLE_DEVICES)"
        )
    return True, f"cupy {cupy.__version__} with a CUDA device"


def gpu_devices() -> list[dict]:
    """The CUDA devices cupy sees.

    Imports cupy (through :func:`cupy_status`); ``import gpumask`` does not.

    Returns
    -------
    list of dict
        One dict per device with ``id`` (int), ``name`` (str), ``memory_gib``
        (float) and ``compute_capability`` (``"9.0"``); an empty list when cupy
        cannot run here.

    Examples
    --------
    >>> [gpu["name"] for gpu in gpumask.backend.gpu_devices()]  # doctest: +SKIP
    ['NVIDIA H100 80GB HBM3']
    """
    if not cupy_status()[0]:
        return []
    import cupy  # noqa: PLC0415 - cupy_status already imported it

    out = []
    for idx in range(cupy.cuda.runtime.getDeviceCount()):
        props = cupy.cuda.runtime.getDeviceProperties(idx)
        name = props["name"]
        out.append(
            {
                "id": idx,
                "name": name.decode() if isinstance(name, bytes) else str(name),
                "memory_gib": props["totalGlobalMem"] / 2**30,
                "compute_capability": f"{props['major']}.{props['minor']}",
            }
        )
    return out


@functools.lru_cache(maxsize=None)
def _make_backend(name: str) -> Backend:
    if name == "numpy":
        return Backend("numpy", np)
    ok, why = cupy_status()
    if not ok:
        raise BackendError(f"backend 'cupy' was requested but {why}")
    import cupy  # noqa: PLC0415

    return Backend("cupy", cupy)


def get_backend(name=None) -> Backend:
    """The :class:`Backend` called ``name`` (``"numpy"`` or ``"cupy"``).

    A :class:`Backend` instance is returned unchanged.  ``"auto"`` is CuPy when
    it works, else NumPy.  Without a name: the active backend, the one new data
    goes to (``use_backend``, then ``GPUMASK_BACKEND``, then ``"auto"``; see the
    module docstring).

    Examples
    --------
    >>> import gpumask
    >>> gpumask.get_backend("numpy").name
    'numpy'
    >>> gpumask.get_backend().name in ("numpy", "cupy")   # the active backend
    True
    """
    if name is None:
        return resolve_backend()
    if isinstance(name, Backend):
        return name
    if not isinstance(name, str):
        raise BackendError(
            f"backend must be one of {BACKEND_NAMES + ('auto',)} or a Backend, got {name!r}"
        )
    key = name.strip().lower()
    if key == "auto":
        return _make_backend(_auto_name())
    if key not in BACKEND_NAMES:
        raise BackendError(f"unknown backend {name!r}; choose one of {BACKEND_NAMES + ('auto',)}")
    return _make_backend(key)


def _auto_name() -> str:
    return "cupy" if cupy_status()[0] else "numpy"


# --------------------------------------------------------------------------- selection

_context_backend: contextvars.ContextVar[Backend | None] = contextvars.ContextVar(
    "gpumask_backend", default=None
)


@contextlib.contextmanager
def use_backend(name):
    """Context manager: create new data on backend ``name`` inside the block.

    >>> with gpumask.use_backend("numpy"):
    ...     m = gpumask.Map.create(npix=10)
    """
    backend = get_backend(name)
    token = _context_backend.set(backend)
    try:
        yield backend
    finally:
        _context_backend.reset(token)


def _env_choice() -> str | None:
    raw = os.environ.get(_ENV_VAR)
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip().lower()
    if value not in _ENV_CHOICES:
        raise BackendError(f"{_ENV_VAR}={raw!r} is not valid; use one of {_ENV_CHOICES}")
    return value


def resolve_backend(backend=None) -> Backend:
    """The backend for newly created data (see the module docstring for the order)."""
    if backend is not None:
        return get_backend(backend)
    ctx = _context_backend.get()
    if ctx is not None:
        return ctx
    env = _env_choice()
    if env is not None:
        return get_backend(env)
    return get_backend("auto")


def selection_reason(backend=None) -> tuple[str, str]:
    """``(name, reason)``: the backend :func:`resolve_backend` picks and why."""
    if backend is not None:
        return get_backend(backend).name, "explicit backend= argument"
    ctx = _context_backend.get()
    if ctx is not None:
        return ctx.name, "active gpumask.use_backend() context"
    env = _env_choice()
    if env in ("numpy", "cupy"):
        return get_backend(env).name, f"{_ENV_VAR}={env}"
    ok, why = cupy_status()
    prefix = f"{_ENV_VAR}=auto" if env == "auto" else f"auto ({_ENV_VAR} unset)"
    if ok:
        return "cupy", f"{prefix}: {why}"
    return "numpy", f"{prefix}: {why}"


def memory_available(backend=None) -> int | None:
    """Bytes free for new arrays on ``backend``: the current device's free memory
    plus what CuPy's pool holds unused, or the host's available memory (Linux
    ``MemAvailable``, else physical pages).  None when it cannot be told."""
    be = get_backend(backend) if backend is not None else resolve_backend()
    if be.name == "cupy":
        free, _ = be.xp.cuda.runtime.memGetInfo()
        pool = be.xp.get_default_memory_pool()
        return int(free + pool.free_bytes())
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


# --------------------------------------------------------------------------- detection


def is_device_array(array) -> bool:
    """True for a cupy array.  Never imports cupy (looks in ``sys.modules``)."""
    cupy = sys.modules.get("cupy")
    return cupy is not None and isinstance(array, cupy.ndarray)


def backend_of(array) -> Backend:
    """Backend owning ``array`` (anything with a ``.backend`` too, e.g. a Map)."""
    own = getattr(array, "backend", None)
    if isinstance(own, Backend):
        return own
    if is_device_array(array):
        return _make_backend("cupy")
    return _make_backend("numpy")


def common_backend(*items, op: str = "this operation") -> Backend:
    """The one backend shared by ``items`` (arrays or maps; scalars and None ignored).

    Raises :class:`MixedBackendError` naming the fix when they differ.
    """
    found: dict[str, object] = {}
    for item in items:
        if item is None or np.isscalar(item):
            continue
        if isinstance(item, (np.ndarray, np.generic)) or is_device_array(item) or hasattr(
            item, "backend"
        ):
            found.setdefault(backend_of(item).name, item)
    if len(found) > 1:
        raise MixedBackendError(
            f"{op} mixes data on backends {sorted(found)}; move one side with "
            "map.to_backend('numpy') or map.to_backend('cupy') (or gpumask.to_device for arrays)"
        )
    if not found:
        return resolve_backend()
    return _make_backend(next(iter(found)))


# --------------------------------------------------------------------------- transfers


@dataclasses.dataclass(eq=False)  # counters are removed by identity
class TransferCounter:
    """Counts of calls to :func:`~gpumask.to_host` (device->host) and :func:`~gpumask.to_device` (uploads).

    ``calls`` counts every call to the funnel, whatever the backend, so that a
    pipeline run on numpy can still prove it never asked for host data.
    ``device_calls``/``device_bytes`` count real copies off a GPU.  ``flags``
    counts :func:`read_flag` calls: single booleans read to steer a loop (one
    byte each, and a synchronisation point on a GPU), never map data.
    """

    calls: int = 0
    flags: int = 0
    device_calls: int = 0
    device_bytes: int = 0
    uploads: int = 0
    upload_bytes: int = 0

    def __iadd__(self, other):
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self


_lock = threading.Lock()
_global_stats = TransferCounter()
_active_counters: list[TransferCounter] = []


def transfer_stats() -> TransferCounter:
    """Counts since the process started (a copy)."""
    with _lock:
        return dataclasses.replace(_global_stats)


@contextlib.contextmanager
def count_transfers():
    """Count transfers made inside the block.

    >>> with gpumask.count_transfers() as counter:
    ...     run_pipeline()
    >>> assert counter.calls == 0
    """
    counter = TransferCounter()
    with _lock:
        _active_counters.append(counter)
    try:
        yield counter
    finally:
        with _lock:
            _active_counters.remove(counter)


def _record(**kwargs):
    delta = TransferCounter(**kwargs)
    with _lock:
        _global_stats.__iadd__(delta)
        for counter in _active_counters:
            counter += delta


def to_host(array, dtype=None) -> np.ndarray:
    """Copy ``array`` to a NumPy array: the single device->host exit of gpumask.

    Every call is counted (see :func:`~gpumask.count_transfers`).  For NumPy input no copy
    is made (unless ``dtype`` requires one).  Use it only where host data is
    really needed: FITS writing, plotting, ``Map.to_numpy()``, printing.
    """
    if is_device_array(array):
        nbytes = int(array.nbytes)
        out = array.get()
        _record(calls=1, device_calls=1, device_bytes=nbytes)
    else:
        out = np.asarray(array)
        _record(calls=1)
    if dtype is not None and out.dtype != np.dtype(dtype):
        out = out.astype(dtype)
    return out


def read_flag(value) -> bool:
    """One boolean from a 0-d array (e.g. ``xp.any(changed)``), for control flow.

    The only sanctioned way to read a device scalar outside :func:`~gpumask.to_host`: it
    waits for the device and copies one byte.  Counted as ``flags`` (not
    ``calls``) by :func:`~gpumask.count_transfers`, whatever the backend.
    """
    if is_device_array(value):
        if value.size != 1:
            raise ValueError(f"read_flag reads one value, got an array of shape {value.shape}")
        out = bool(value.get())
    else:
        out = bool(np.asarray(value))
    _record(flags=1)
    return out


def to_device(array, backend=None, dtype=None):
    """``array`` as an array of ``backend`` (host->device upload for cupy).

    Device arrays already on the target backend are returned as they are (cast if
    ``dtype`` differs).  Device data is never copied through the host here: a cupy
    array asked for on numpy raises :class:`MixedBackendError` pointing to
    :func:`~gpumask.to_host`.
    """
    target = resolve_backend(backend)
    if is_device_array(array):
        if target.name != "cupy":
            raise MixedBackendError(
                "a cupy array was given where numpy data is needed; copy it explicitly with "
                "gpumask.to_host(array) or map.to_backend('numpy')"
            )
        return array if dtype is None else array.astype(dtype, copy=False)
    if target.name == "numpy":
        return np.asarray(array, dtype=dtype)
    host = np.asarray(array, dtype=dtype)
    out = target.xp.asarray(host)
    _record(uploads=1, upload_bytes=int(host.nbytes))
    return out


# --------------------------------------------------------------------------- constants

DEVICE_CONSTANT_BYTES = 64 << 20  # budget of cached device constants (per process)
_constants: collections.OrderedDict = collections.OrderedDict()
_constants_lock = threading.Lock()


def clear_device_constants() -> None:
    """Forget the device copies kept by :func:`device_constant` (the next use
    uploads again)."""
    with _constants_lock:
        _constants.clear()


def device_constant(array, backend=None):
    """A device copy of a small host array that does not change (a convolution
    kernel, a morphology structure), uploaded once per content and device.

    The contract for host kernels: each distinct kernel costs one upload (counted
    by :func:`~gpumask.count_transfers`) the first time a backend needs it, and none after;
    an estimator iterating over the same kernels uploads nothing after its first
    pass or its first run.  Copies are cached by content (SHA-1 of the bytes,
    shape, dtype) up to ``DEVICE_CONSTANT_BYTES``, least recently used first out;
    arrays bigger than a quarter of that are uploaded every time.  The result is
    shared: callers must not write into it.  Device arrays and NumPy targets are
    passed to :func:`~gpumask.to_device` unchanged.

    Parameters
    ----------
    array : array_like
        Host data (NumPy array or anything ``numpy.asarray`` takes).
    backend : Backend or str, optional
        Target backend (see :func:`resolve_backend`).

    Returns
    -------
    array
        The cached device array (``cupy.ndarray``), or ``array`` as a NumPy array.

    Examples
    --------
    >>> from gpumask.backend import device_constant, count_transfers
    >>> k = np.ones((3, 3))
    >>> with count_transfers() as c:
    ...     a = device_constant(k, "numpy")
    >>> c.uploads
    0
    """
    target = resolve_backend(backend)
    if target.name != "cupy" or is_device_array(array):
        return to_device(array, target)
    host = np.ascontiguousarray(array)
    if host.nbytes > DEVICE_CONSTANT_BYTES // 4:
        return to_device(host, target)
    device_id = int(target.xp.cuda.Device().id)
    key = (hashlib.sha1(host.tobytes()).hexdigest(), host.shape, host.dtype.str, device_id)
    with _constants_lock:
        hit = _constants.get(key)
        if hit is not None:
            _constants.move_to_end(key)
            return hit
    out = to_device(host, target)
    with _constants_lock:
        _constants[key] = out
        total = sum(int(v.nbytes) for v in _constants.values())
        while total > DEVICE_CONSTANT_BYTES and len(_constants) > 1:
            _, old = _constants.popitem(last=False)
            total -= int(old.nbytes)
    return out
