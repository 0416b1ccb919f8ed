"""The emulated device array, CuPy's ufuncs, and the log of device->host reads.

``ndarray`` wraps a NumPy array (``_a``) but behaves as ``cupy.ndarray`` does where
it matters for finding bugs:

- implicit conversion to NumPy raises CuPy's ``TypeError`` (``__array__``), so
  ``numpy.asarray(device_array)`` and NumPy functions CuPy lacks fail as on a GPU;
- NumPy arrays are refused as ufunc operands (CuPy's "Unsupported type"), as
  index arrays and assigned values they are accepted and logged as implicit
  uploads (CuPy copies them to the device);
- reductions and element access return 0-d arrays, never host scalars;
- every device->host read (``.get()``, ``asnumpy``, ``float()``/``int()``/
  ``bool()``/``operator.index``, ``.item()``, ``.tolist()``, ``repr``) is logged
  with the calling line in :data:`HOST_READS`.
"""

from __future__ import annotations

import dataclasses
import operator
import os
import sys

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
_NUMPY_DIR = os.path.dirname(os.path.abspath(np.__file__))


@dataclasses.dataclass(frozen=True)
class Transfer:
    """One logged copy: ``kind`` (``get``, ``float``, ``upload``, ...), bytes, and
    ``where``, the first calling line outside the emulator and NumPy."""

    kind: str
    nbytes: int
    where: str


HOST_READS: list[Transfer] = []
IMPLICIT_UPLOADS: list[Transfer] = []


def _caller() -> str:
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if not (name.startswith(_HERE) or name.startswith(_NUMPY_DIR) or name.startswith("<frozen")):
            return f"{name}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


def _log_read(kind: str, a: np.ndarray) -> None:
    HOST_READS.append(Transfer(kind, int(a.nbytes), _caller()))


def _log_upload(kind: str, a: np.ndarray) -> None:
    IMPLICIT_UPLOADS.append(Transfer(kind, int(a.nbytes), _caller()))


# --------------------------------------------------------------------------- wrap / unwrap


def _unsupported(x):
    return TypeError(f"Unsupported type {type(x)}")


def unwrap(x, *, host_ok: bool = False):
    """Device arrays to their NumPy storage; NumPy arrays refused unless ``host_ok``
    (containers are walked, so ``concatenate([a, numpy_b])`` fails as in CuPy)."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        if host_ok:
            return x
        raise _unsupported(x)
    if type(x) in (list, tuple):
        return type(x)(unwrap(i, host_ok=host_ok) for i in x)
    return x


def wrap(r):
    """NumPy results to device arrays; NumPy scalars become 0-d arrays."""
    if isinstance(r, np.ndarray):
        return ndarray._from(r)
    if isinstance(r, np.generic):
        return ndarray._from(np.asarray(r))
    if type(r) is tuple:
        return tuple(wrap(i) for i in r)
    if type(r) is list:
        return [wrap(i) for i in r]
    return r


def _index(idx):
    """An index for ``_a[...]``: device arrays unwrapped, NumPy arrays and lists
    accepted as CuPy does (uploaded: logged)."""
    if isinstance(idx, ndarray):
        return idx._a
    if isinstance(idx, np.ndarray):
        _log_upload("index", idx)
        return idx
    if type(idx) is tuple:
        return tuple(_index(i) for i in idx)
    if type(idx) is list:
        arr = np.asarray(idx)
        _log_upload("index", arr)
        return arr
    return idx


# --------------------------------------------------------------------------- ufuncs

_UFUNC_KWARGS = frozenset({"out", "dtype", "casting"})


class ufunc:
    """CuPy's ``ufunc``: positional inputs (device arrays or scalars, never NumPy
    arrays), keywords ``out``, ``dtype`` and ``casting`` only."""

    def __init__(self, name, np_ufunc, nin, nout, methods):
        self.name = self.__name__ = name
        self._u = np_ufunc
        self.nin, self.nout, self.nargs = nin, nout, nin + nout
        self._methods = frozenset(methods)

    def __repr__(self):
        return f"<ufunc '{self.name}'>"

    @property
    def types(self):
        return list(self._u.types)

    def _inputs(self, args):
        out = []
        for x in args:
            if isinstance(x, ndarray):
                out.append(x._a)
            elif isinstance(x, (bool, int, float, complex, np.generic)):
                out.append(x)
            else:
                raise _unsupported(x)
        return out

    @staticmethod
    def _out(out):
        if out is None:
            return None
        outs = out if isinstance(out, tuple) else (out,)
        for o in outs:
            if not isinstance(o, ndarray):
                raise TypeError(f"output must be a cupy.ndarray, not {type(o)}")
        return tuple(o._a for o in outs)

    def __call__(self, *args, **kwargs):
        extra = set(kwargs) - _UFUNC_KWARGS
        if extra:
            raise TypeError(f"Wrong arguments {dict((k, kwargs[k]) for k in sorted(extra))}")
        if not self.nin <= len(args) <= self.nargs:
            raise TypeError(
                f"Wrong number of arguments for '{self.name}'. It must be either {self.nin} or "
                f"{self.nargs} (with outputs), but given {len(args)}.")
        ins = self._inputs(args[: self.nin])
        out = kwargs.pop("out", None)
        if len(args) > self.nin:
            if out is not None:
                raise ValueError("Cannot specify 'out' as both a positional and keyword argument")
            out = tuple(args[self.nin:])
        kw = {k: v for k, v in kwargs.items() if v is not None}
        kw.setdefault("casting", "same_kind")
        outs = self._out(out)
        if outs is not None:
            kw["out"] = outs if self.nout > 1 else outs[0]
        with np.errstate(all="ignore"):
            r = self._u(*ins, **kw)
        if outs is not None:
            return out if (self.nout > 1 or isinstance(out, ndarray)) else out[0]
        return wrap(r)

    def _method(self, method, *args, **kwargs):
        if method not in self._methods:
            raise AttributeError(f"'cupy.ufunc' object {self.name!r} has no attribute {method!r}")
        args = tuple(unwrap(a) for a in args)
        kwargs = {k: unwrap(v) for k, v in kwargs.items()}
        with np.errstate(all="ignore"):
            r = getattr(self._u, method)(*args, **kwargs)
        return wrap(r)

    def reduce(self, *args, **kwargs):
        return self._method("reduce", *args, **kwargs)

    def accumulate(self, *args, **kwargs):
        return self._method("accumulate", *args, **kwargs)

    def reduceat(self, *args, **kwargs):
        return self._method("reduceat", *args, **kwargs)

    def outer(self, *args, **kwargs):
        return self._method("outer", *args, **kwargs)

    def at(self, a, indices, b=None):
        if not isinstance(a, ndarray):
            raise TypeError(f"ufunc.at needs a cupy.ndarray target, got {type(a)}")
        args = (a, indices) if b is None else (a, indices, b)
        self._method("at", *args)


UFUNCS: dict[str, ufunc] = {}  # filled by the namespace builder (cupy and cupyx.scipy.special)


def _binary(name, reflected=False):
    def op(self, other):
        if isinstance(other, np.ndarray) or not isinstance(
                other, (ndarray, bool, int, float, complex, np.generic)):
            if isinstance(other, np.ndarray):
                raise _unsupported(other)
            return NotImplemented
        u = UFUNCS[name]
        return u(other, self) if reflected else u(self, other)

    return op


def _inplace(name):
    def op(self, other):
        UFUNCS[name](self, other, out=self)
        return self

    return op


def _unary(name):
    def op(self):
        return UFUNCS[name](self)

    return op


# --------------------------------------------------------------------------- the array


class ndarray:
    """``cupy.ndarray`` emulated on the host (see the module docstring)."""

    __emulated_cupy_array__ = True
    __slots__ = ("_a", "__weakref__")
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("the emulator does not model memptr/strides")
        self._a = np.empty(shape, dtype=dtype, order=order)

    @classmethod
    def _from(cls, a: np.ndarray) -> ndarray:
        obj = object.__new__(cls)
        obj._a = a
        return obj

    # -- no implicit host copies ------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly.")

    def __array_ufunc__(self, uf, method, *inputs, **kwargs):
        func = UFUNCS.get(uf.__name__)
        if func is None:
            return NotImplemented
        if "out" in kwargs:
            out = kwargs["out"]
            if len(out) != 1:
                raise ValueError("The 'out' parameter must have exactly one array value")
            kwargs["out"] = out[0]
        if method == "__call__":
            return func(*inputs, **kwargs)
        if method in ("reduce", "accumulate", "reduceat", "outer", "at"):
            return getattr(func, method)(*inputs, **kwargs)
        return NotImplemented

    def __array_function__(self, func, types, args, kwargs):
        from . import _namespace  # noqa: PLC0415

        target = _namespace.lookup(func.__module__, func.__name__)
        if target is None:
            return NotImplemented
        if not all(issubclass(t, (ndarray, np.ndarray)) for t in types):
            return NotImplemented
        return target(*args, **kwargs)

    # -- device -> host (logged) ------------------------------------------------------
    def get(self, stream=None, order="C", out=None, blocking=True):
        _log_read("get", self._a)
        if out is not None:
            if not isinstance(out, np.ndarray):
                raise TypeError("Only numpy.ndarray can be obtained from cupy.ndarray")
            np.copyto(out, self._a)
            return out
        return np.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, got {type(arr)}")
        if arr.shape != self._a.shape or arr.dtype != self._a.dtype:
            raise ValueError("Shape or dtype mismatch")
        self._a[...] = arr

    def item(self):
        _log_read("item", self._a)
        return self._a.item()

    def tolist(self):
        _log_read("tolist", self._a)
        return self._a.tolist()

    def tobytes(self, order="C"):
        _log_read("tobytes", self._a)
        return self._a.tobytes(order)

    def _scalar(self, kind):
        _log_read(kind, self._a)
        return self._a

    def __float__(self):
        return float(self._scalar("float"))

    def __int__(self):
        return int(self._scalar("int"))

    def __complex__(self):
        return complex(self._scalar("complex"))

    def __index__(self):
        return operator.index(self._scalar("index")[()])

    def __bool__(self):
        return bool(self._scalar("bool"))

    def __repr__(self):
        _log_read("repr", self._a)
        return repr(self._a)

    def __str__(self):
        _log_read("str", self._a)
        return str(self._a)

    def __format__(self, spec):
        _log_read("format", self._a)
        return format(self._a[()] if self._a.ndim == 0 else self._a, spec)

    # -- structure ---------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray._from(self._a.T))
    mT = property(lambda self: ndarray._from(np.swapaxes(self._a, -1, -2)))
    base = property(lambda self: None if self._a.base is None else ndarray._from(self._a.base))

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    @property
    def real(self):
        return ndarray._from(self._a.real)

    @property
    def imag(self):
        return ndarray._from(self._a.imag)

    @property
    def data(self):
        from ._device import MemoryPointer  # noqa: PLC0415

        return MemoryPointer(self._a.ctypes.data)

    @property
    def device(self):
        from ._device import Device  # noqa: PLC0415

        return Device(0)

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": self.dtype.str, "descr": self._a.__array_interface__["descr"],
                "data": (self._a.ctypes.data, not self._a.flags.writeable), "version": 3,
                "strides": None if self._a.flags.c_contiguous else self.strides}

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (ndarray._from(self._a[i]) for i in range(len(self._a)))

    def __getitem__(self, idx):
        return wrap(self._a[_index(idx)])

    def __setitem__(self, idx, value):
        if isinstance(value, np.ndarray):
            _log_upload("setitem", value)
        self._a[_index(idx)] = unwrap(value, host_ok=True)

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        kw = {} if casting is None else {"casting": casting}
        return ndarray._from(self._a.astype(dtype, order=order, copy=copy, **kw))

    def copy(self, order="C"):
        return ndarray._from(self._a.copy(order=order))

    def view(self, dtype=None, array_class=None):
        if array_class is not None:
            raise NotImplementedError("array_class is not emulated")
        return ndarray._from(self._a.view() if dtype is None else self._a.view(dtype))

    def reshape(self, *shape, order="C"):
        return ndarray._from(self._a.reshape(*shape, order=order))

    def fill(self, value):
        if isinstance(value, np.ndarray):
            raise _unsupported(value)
        self._a.fill(unwrap(value))


def _delegate(name):
    def method(self, *args, **kwargs):
        args = unwrap(args)
        kwargs = {k: unwrap(v) for k, v in kwargs.items()}
        with np.errstate(all="ignore"):
            return wrap(getattr(self._a, name)(*args, **kwargs))

    method.__name__ = name
    return method


_BINARY = {"add": "add", "sub": "subtract", "mul": "multiply", "truediv": "true_divide",
           "floordiv": "floor_divide", "mod": "remainder", "pow": "power", "and": "bitwise_and",
           "or": "bitwise_or", "xor": "bitwise_xor", "lshift": "left_shift", "rshift": "right_shift"}
_COMPARE = {"lt": "less", "le": "less_equal", "eq": "equal", "ne": "not_equal", "gt": "greater",
            "ge": "greater_equal"}
_UNARY = {"neg": "negative", "pos": "positive", "abs": "absolute", "invert": "invert"}


def _install_operators(recorded_methods):
    for dunder, uname in _BINARY.items():
        setattr(ndarray, f"__{dunder}__", _binary(uname))
        setattr(ndarray, f"__r{dunder}__", _binary(uname, reflected=True))
        setattr(ndarray, f"__i{dunder}__", _inplace(uname))
    for dunder, uname in _COMPARE.items():
        setattr(ndarray, f"__{dunder}__", _binary(uname))
    for dunder, uname in _UNARY.items():
        setattr(ndarray, f"__{dunder}__", _unary(uname))
    setattr(ndarray, "__matmul__", lambda self, other: wrap(np.matmul(self._a, unwrap(other))))
    # Plain methods CuPy has: delegated to NumPy (device arrays in, device arrays out).
    for name in recorded_methods:
        if name.startswith("_") or name in ndarray.__dict__ or not hasattr(np.ndarray, name):
            continue
        setattr(ndarray, name, _delegate(name))
