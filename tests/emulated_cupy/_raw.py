"""``cupy.RawModule`` / ``cupy.RawKernel`` emulated by compiling the CUDA source as host C++.

The code gpumask hands to NVRTC is compiled with g++ (``-O2 -Wall -Werror``) after
``cuda_host.h`` (force-included: CUDA keywords defined away, ``dim3``, thread-local
``threadIdx``/``blockIdx``/``blockDim``/``gridDim``).  The signature of every
``extern "C" __global__`` function is parsed from the preprocessed source and a
launcher is generated that runs the kernel body for every block (z, y, x) and
thread (z, y, x) in turn, with its arguments unpacked from a ``void**`` array as
the driver does.  Kernels write straight into the NumPy buffers of the emulated
arrays (any object whose type has ``__emulated_cupy_array__`` and an ``_a``
attribute holding a ``numpy.ndarray``).

What a passing run proves:

- the source compiles under the NVRTC options given (unknown options are
  refused, ``--fmad=false`` becomes ``-ffp-contract=off``), with its macros,
  ``-D``/``-I`` and ``__launch_bounds__`` honoured;
- the launch contract: grid and block are tuples within the driver's limits and
  the kernel's launch bounds; ``args`` has one entry per parameter; each pointer
  is an emulated device array of exactly the pointee's dtype, C-contiguous,
  writeable unless ``const``, and ``__restrict__`` pointers that are written do
  not overlap another argument; each scalar has exactly its C type (NumPy scalar
  of that dtype; Python ``float`` only for ``double``, ``int`` only for
  ``long long``, ``bool`` only for ``bool``, as CuPy passes them).  CuPy itself
  checks none of this: a mismatch silently passes wrong bytes on a GPU;
- the kernel's logic on every thread, including the grid-stride loops and the
  bounds checks of threads past the end.

What it cannot show: races between threads (they run one after another, so
missing atomics or barriers are invisible; ``__shared__`` and ``__syncthreads``
do not compile here), CUDA's libdevice math vs host libm rounding, FMA
contraction (NVRTC fuses by default, host x86-64 code without ``-mfma`` never
does), asynchronous error reporting (errors surface at the launch), out-of-bounds
accesses (they corrupt or crash the host process instead of raising), memory
limits, register pressure, occupancy and speed.  Stricter than CuPy: a grid or
block entry of 0 raises here (CuPy clamps it to 1); tuples longer than 3 raise
(CuPy truncates).
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import re
import shutil
import subprocess
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

__all__ = ["CUDADriverError", "CompileException", "RawKernel", "RawModule", "compiler"]

HEADER = Path(__file__).with_name("cuda_host.h")
CXXFLAGS = ("-O2", "-fPIC", "-shared", "-Wall", "-Werror", "-Wno-unused-parameter", "-Wno-unused-function",
            "-Wno-unused-variable", "-Wno-unused-but-set-variable", "-Wno-unknown-pragmas",
            "-Wl,--no-undefined")


class CompileException(Exception):
    """``cupy.cuda.compiler.CompileException`` (same constructor and accessors)."""

    def __init__(self, msg, source, name, options, backend="nvrtc"):
        self._msg, self.source, self.name, self.options, self.backend = msg, source, name, options, backend
        super().__init__()

    def __reduce__(self):
        return (type(self), (self._msg, self.source, self.name, self.options, self.backend))

    def __str__(self):
        return self._msg

    __repr__ = __str__

    def get_message(self):
        return self._msg


try:  # one class with the rest of the emulator, so `except cupy.cuda.driver.CUDADriverError` works
    from ._device import CUDADriverError
except ImportError:  # pragma: no cover - _raw used on its own
    class CUDADriverError(RuntimeError):
        """``cupy.cuda.driver.CUDADriverError``."""

_DRIVER = {"CUDA_ERROR_INVALID_VALUE": "invalid argument", "CUDA_ERROR_NOT_FOUND": "named symbol not found",
           "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES": "too many resources requested for launch"}


def _driver_error(status, detail):
    return CUDADriverError(f"{status}: {_DRIVER[status]} [emulated_cupy: {detail}]")


def compiler():
    """The host C++ compiler used in place of NVRTC, or None."""
    return shutil.which("g++") or shutil.which("c++")


# ---------------------------------------------------------------- NVRTC options
_FLAGS = {"lineinfo", "generate-line-info", "G", "device-debug", "default-device",
          "device-as-default-execution-space", "restrict", "w", "disable-warnings",
          "extra-device-vectorization", "dlto", "dlink-time-opt", "device-int128", "fdevice-syntax-only",
          "dc", "device-c", "dw", "device-w", "ewp", "extensible-whole-program", "no-source-include",
          "display-error-number", "err-no", "no-display-error-number", "no-err-no", "minimal"}
_BOOLEAN = {"ftz", "prec-div", "prec-sqrt", "rdc", "relocatable-device-code", "builtin-move-forward",
            "builtin-initializer-list", "modify-stack-limit"}
_VALUED = {"arch", "gpu-architecture", "maxrregcount", "dopt", "Xptxas", "ptxas-options", "diag-error",
           "diag-suppress", "diag-warn", "split-compile", "time", "opt-info", "fdevice-time-trace",
           "jump-table-density"}
_STD = {"c++03", "c++11", "c++14", "c++17", "c++20"}
_OPTION = re.compile(r"--?([A-Za-z][\w-]*)(?:=(.*))?", re.DOTALL)


def _translate(code, options):
    """g++ flags for NVRTC ``options``; an option NVRTC would refuse raises CompileException."""
    flags, std = [], "-std=c++17"  # CuPy 14 adds -std=c++17 when none is given

    def bad(opt, why="unrecognized option"):
        return CompileException(f"nvrtc: error: {why}: {opt!r}", code, "kern.cu", options)

    for opt in options:
        if not isinstance(opt, str):
            raise TypeError(f"NVRTC options must be str, got {type(opt).__name__}: {opt!r}")
        attached = re.fullmatch(r"-([DUI])(.+)", opt, re.DOTALL)
        match = _OPTION.fullmatch(opt)
        if attached:
            flags.append(opt)
            continue
        if match is None:
            raise bad(opt)
        name, value = match.groups()
        if name == "std":
            if value not in _STD:
                raise bad(opt, "invalid value for -std")
            std = f"-std={value}"
        elif name in ("define-macro", "undefine-macro", "include-path") and value:
            flags.append({"define-macro": "-D", "undefine-macro": "-U", "include-path": "-I"}[name] + value)
        elif name in ("pre-include", "include") and value:
            flags += ["-include", value]
        elif name == "fmad" and value in ("true", "false"):
            flags.append("-ffp-contract=fast" if value == "true" else "-ffp-contract=off")
        elif (name == "use_fast_math" or name in _FLAGS) and value is None:
            pass  # recorded in .options; no host equivalent
        elif (name in _BOOLEAN and value in ("true", "false")) or (name in _VALUED and value):
            pass
        elif name in _FLAGS | _BOOLEAN | _VALUED | {"fmad", "use_fast_math", "define-macro", "include-path"}:
            raise bad(opt, "invalid value or missing value for option")
        else:
            raise bad(opt)
    return [std, *flags]


# ------------------------------------------------------------ kernel signatures
_TYPES = {"bool": "?", "float": "f4", "double": "f8", "size_t": "u8", "ptrdiff_t": "i8", "void": None}
_QUALIFIERS = {"const", "volatile", "__restrict__", "__restrict", "restrict"}
_INT_WORDS = {"signed", "unsigned", "char", "short", "int", "long"}


class _Param:
    """One kernel parameter: C spelling, NumPy dtype (None for void*), pointer, const pointee, restrict."""

    def __init__(self, text):
        self.text = " ".join(text.split())
        tokens = re.findall(r"[A-Za-z_]\w*|\*|&|\[", text.replace("[]", "*"))
        if "&" in tokens or "[" in tokens or tokens.count("*") > 1:
            raise NotImplementedError(f"emulated_cupy cannot pass parameter {self.text!r}")
        star = tokens.index("*") if "*" in tokens else len(tokens)
        self.pointer = star < len(tokens)
        self.const = "const" in tokens[:star]
        self.restrict = bool(_QUALIFIERS.intersection(tokens[star:]) - {"const", "volatile"})
        words = [t for t in tokens[:star] if t not in _QUALIFIERS]
        if not self.pointer and len(words) > 1 and words[-1] not in _INT_WORDS | set(_TYPES):
            words = words[:-1]  # drop the parameter's name
        self.ctype = " ".join(words)
        self.dtype = self._dtype(words)
        if self.dtype is None and not self.pointer:
            raise NotImplementedError(f"emulated_cupy cannot pass parameter {self.text!r}")

    def _dtype(self, words):
        if len(words) == 1 and words[0] in _TYPES:
            return None if _TYPES[words[0]] is None else np.dtype(_TYPES[words[0]])
        if not words or not set(words) <= _INT_WORDS:
            raise NotImplementedError(f"emulated_cupy cannot pass parameter {self.text!r} (type unknown)")
        kind = "u" if "unsigned" in words else "i"
        size = 1 if "char" in words else 2 if "short" in words else 8 if "long" in words else 4
        return np.dtype(f"{kind}{size}")  # plain char is signed on x86-64; long is 64-bit (LP64)

    def cast(self):
        pointee = ("const " if self.const else "") + self.ctype
        return f"*({pointee}**)" if self.pointer else f"*({self.ctype}*)"


def _balanced(text, i):
    """Index just past the bracket closing the one at text[i]."""
    depth = 0
    for j in range(i, len(text)):
        depth += {"(": 1, ")": -1}.get(text[j], 0)
        if depth == 0:
            return j + 1
    raise ValueError("unbalanced parentheses")


def _top_level_split(text):
    parts, depth, start = [], 0, 0
    for j, c in enumerate(text):
        depth += {"(": 1, "<": 1, ")": -1, ">": -1}.get(c, 0)
        if c == "," and depth == 0:
            parts.append(text[start:j])
            start = j + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


_WORD = re.compile(r"\s*([A-Za-z_]\w*)\s*")


def _find_kernels(text):
    """{name: (params text, launch-bounds expression or None)} of the extern "C" __global__ functions."""
    blocks = []
    for m in re.finditer(r'extern\s*"C"\s*\{', text):
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        blocks.append((m.end(), j))
    kernels = {}
    for m in re.finditer(r"\b__global__\b", text):
        head = text[max(0, m.start() - 64):m.start()]
        if not (re.search(r'extern\s*"C"\s*$', head) or any(a <= m.start() < b for a, b in blocks)):
            continue  # C++ linkage: mangled, not found by get_function (as in CuPy)
        i, bounds, void = m.end(), None, False
        while True:
            word = _WORD.match(text, i)
            if word is None:
                break
            i = word.end()
            if word.group(1) == "__launch_bounds__":
                end = _balanced(text, i)
                bounds, i = _top_level_split(text[i + 1:end - 1])[0], end
            elif word.group(1) == "void":
                void = True
            elif word.group(1) not in ("static", "inline") and text.startswith("(", i):
                end = _balanced(text, i)
                if not void:
                    raise ValueError(f"__global__ function {word.group(1)} must return void")
                kernels.setdefault(word.group(1), (text[i + 1:end - 1], bounds))
                break
    return kernels


class _Kernel:
    def __init__(self, name, params_text, bounds):
        self.name, self.bounds = name, bounds
        parts = _top_level_split(params_text)
        try:
            self.params = [] if parts in ([""], ["void"]) else [_Param(p) for p in parts]
            self.unsupported = None
        except NotImplementedError as exc:
            self.params, self.unsupported = [], exc

    def launcher(self):
        if self.unsupported:
            return ""
        unpack = "".join(f"    auto p{k} = {p.cast()}a[{k}];\n" for k, p in enumerate(self.params))
        call = ", ".join(f"p{k}" for k in range(len(self.params)))
        return (f'extern "C" void emulated_cupy_launch_{self.name}(const unsigned int* cfg, void** a)\n{{\n'
                f"{unpack}    emulated_cupy_run(cfg, [&]() {{ {self.name}({call}); }});\n}}\n"
                f'extern "C" long long emulated_cupy_bounds_{self.name}(void) '
                f"{{ return (long long)({self.bounds or 1024}); }}\n")


class _Binary:
    """One compiled source: the shared library and its kernels."""

    def __init__(self, code, options, cxx, workdir):
        flags = _translate(code, options)
        workdir.mkdir(exist_ok=True)  # a failed build of the same source may have left it
        (workdir / "kern.cu").write_text(code)
        base = [cxx, "-x", "c++", "-include", str(HEADER), *flags]

        def run(cmd):
            proc = subprocess.run(cmd, check=False, cwd=workdir, capture_output=True, text=True)
            if proc.returncode:
                first = next((ln for ln in proc.stderr.splitlines() if "error" in ln), "compilation failed")
                raise CompileException(f"{first}\n{proc.stderr}", code, "kern.cu", options)
            return proc.stdout

        t0 = time.perf_counter()
        scanned = run([*base, "-E", "-P", "-DEMULATED_CUPY_SCAN", "kern.cu"])
        try:
            self.kernels = {n: _Kernel(n, p, b) for n, (p, b) in _find_kernels(scanned).items()}
        except ValueError as exc:
            raise CompileException(f"kern.cu: error: {exc}", code, "kern.cu", options) from None
        glue = '#include "kern.cu"\n' + "".join(k.launcher() for k in self.kernels.values())
        (workdir / "launch.cpp").write_text(glue)
        run([*base[:3], *CXXFLAGS, *flags, "-include", str(HEADER), "launch.cpp", "-o", "kern.so"])
        self.compile_seconds = time.perf_counter() - t0
        self.lib = ctypes.CDLL(str(workdir / "kern.so"))
        for kernel in self.kernels.values():
            if not kernel.unsupported:
                kernel.fn = getattr(self.lib, f"emulated_cupy_launch_{kernel.name}")
                kernel.fn.argtypes, kernel.fn.restype = [ctypes.c_void_p, ctypes.c_void_p], None
                bounds = getattr(self.lib, f"emulated_cupy_bounds_{kernel.name}")
                bounds.restype = ctypes.c_longlong
                kernel.max_threads = min(int(bounds()), 1024)

    def kernel(self, name):
        kernel = self.kernels.get(name)
        if kernel is None:
            raise _driver_error("CUDA_ERROR_NOT_FOUND",
                                f'no extern "C" __global__ function {name!r}; found {sorted(self.kernels)}')
        if kernel.unsupported:
            raise NotImplementedError(f"{name}: {kernel.unsupported}")
        return kernel


_LOCK = threading.Lock()
_BINARIES: dict = {}
_TMPDIR: list = []


def _build(code, options):
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("emulated_cupy needs a host C++ compiler (g++ or c++) for raw kernels")
    digest = hashlib.sha1(repr((code, options, HEADER.read_text(), cxx)).encode()).hexdigest()
    with _LOCK:
        if digest not in _BINARIES:
            if not _TMPDIR:
                _TMPDIR.append(Path(tempfile.mkdtemp(prefix="emulated_cupy_")))
                atexit.register(shutil.rmtree, _TMPDIR[0], True)
            _BINARIES[digest] = _Binary(code, options, cxx, _TMPDIR[0] / digest)
        return _BINARIES[digest]


# ------------------------------------------------------------------- CuPy API
def _typed(name, value, typ, none_ok=True):
    if not (isinstance(value, typ) or (none_ok and value is None)):
        raise TypeError(f"Argument '{name}' has incorrect type (expected {typ.__name__}, "
                        f"got {type(value).__name__})")
    return value


def _jitify_warning(jitify):
    if jitify is not None:
        warnings.warn("The jitify argument is deprecated and staged for removal in CuPy v15.0.",
                      DeprecationWarning, stacklevel=3)


def _check_compile_settings(backend, translate_cucomplex, enable_cooperative_groups, jitify):
    if backend not in ("nvrtc", "nvcc"):
        raise ValueError(f"Invalid backend {backend}")
    if backend == "nvcc" or translate_cucomplex or enable_cooperative_groups or jitify:
        raise NotImplementedError("emulated_cupy emulates NVRTC only (no nvcc, cuComplex translation, "
                                  "cooperative groups or Jitify)")


def _is_device_array(x):
    return getattr(type(x), "__emulated_cupy_array__", False) and isinstance(getattr(x, "_a", None), np.ndarray)


def _dims(what, value):
    if not isinstance(value, tuple):
        raise TypeError(f"Argument '{what}' has incorrect type (expected tuple, got {type(value).__name__})")
    if not 1 <= len(value) <= 3:
        raise ValueError(f"{what} must have 1 to 3 entries, got {value!r} (CuPy pads/truncates to 3)")
    for v in value:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{what} entries must be integers, got {value!r}")
        if v < 1:
            raise ValueError(f"{what} entries must be >= 1, got {value!r} (CuPy would silently launch 1)")
    return tuple(int(v) for v in value) + (1,) * (3 - len(value))


class RawKernel:
    """``cupy.RawKernel``: compiled on first use (call, ``.kernel`` or ``compile()``)."""

    def __init__(self, code, name, options=(), backend="nvrtc", *, translate_cucomplex=False,
                 enable_cooperative_groups=False, jitify=None):
        self.code = _typed("code", code, str)
        self.name = self.__name__ = _typed("name", name, str)
        self.options = _typed("options", options, tuple) or ()
        self.backend = _typed("backend", backend, str)
        self.translate_cucomplex = bool(translate_cucomplex)
        self.enable_cooperative_groups = bool(enable_cooperative_groups)
        self.jitify = jitify
        _jitify_warning(jitify)
        self.file_path = None
        self._binary = None

    @property
    def kernel(self):
        if self._binary is None:
            _check_compile_settings(self.backend, self.translate_cucomplex,
                                    self.enable_cooperative_groups, self.jitify)
            self._binary = _build(self.code, self.options)
        return self._binary.kernel(self.name)

    def compile(self, log_stream=None):
        self._binary = None
        self.kernel  # noqa: B018 - compiles

    @property
    def max_threads_per_block(self):
        return self.kernel.max_threads

    def __call__(self, grid, block, args, *, shared_mem=0, stream=None):
        kernel = self.kernel
        grid, block = _dims("grid", grid), _dims("block", block)
        threads = block[0] * block[1] * block[2]
        if block[0] > 1024 or block[1] > 1024 or block[2] > 64 or threads > 1024:
            raise _driver_error("CUDA_ERROR_INVALID_VALUE", f"block {block}: at most (1024, 1024, 64) "
                                "and 1024 threads per block")
        if grid[0] > 2**31 - 1 or grid[1] > 65535 or grid[2] > 65535:
            raise _driver_error("CUDA_ERROR_INVALID_VALUE", f"grid {grid}: at most (2**31 - 1, 65535, 65535)")
        if threads > kernel.max_threads:
            raise _driver_error("CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", f"{self.name}: block {block} has "
                                f"{threads} threads, __launch_bounds__ allows {kernel.max_threads}")
        if isinstance(shared_mem, bool) or not isinstance(shared_mem, (int, np.integer)):
            raise TypeError(f"shared_mem must be an int, got {type(shared_mem).__name__}")
        if shared_mem < 0:
            raise OverflowError("can't convert negative value to size_t")
        if shared_mem:
            raise NotImplementedError("emulated_cupy has no shared memory: shared_mem must be 0")
        if not isinstance(args, (tuple, list)):
            raise TypeError(f"{self.name}: args must be a tuple or list, got {type(args).__name__}")
        if len(args) != len(kernel.params):
            raise TypeError(f"{self.name} takes {len(kernel.params)} arguments "
                            f"({', '.join(p.text for p in kernel.params)}), {len(args)} given")
        holders = [self._marshal(k, p, x) for k, (p, x) in enumerate(zip(kernel.params, args))]
        self._check_aliasing(kernel.params, holders)
        argv = (ctypes.c_void_p * max(len(holders), 1))()
        keep = []
        for k, (p, h) in enumerate(zip(kernel.params, holders)):
            keep.append(ctypes.c_void_p(h.ctypes.data) if p.pointer else h)
            argv[k] = ctypes.addressof(keep[-1]) if p.pointer else h.ctypes.data
        kernel.fn((ctypes.c_uint * 6)(*grid, *block), argv)

    def _marshal(self, k, p, x):
        where = f"{self.name} argument {k} ({p.text})"
        if p.pointer:
            if not _is_device_array(x):
                raise TypeError(f"{where}: needs a device array, got {type(x).__name__} "
                                f"(CuPy: Unsupported type {type(x)})")
            a = x._a
            if p.dtype is not None and a.dtype != p.dtype:
                raise TypeError(f"{where}: needs dtype {p.dtype}, got {a.dtype}")
            if not a.flags.c_contiguous:
                raise ValueError(f"{where}: array is not C-contiguous (strides {a.strides}); the kernel would "
                                 "read it as if it were")
            if not p.const and not a.flags.writeable:
                raise ValueError(f"{where}: array is read-only but the pointee is not const")
            return a
        if isinstance(x, np.generic):
            if x.dtype != p.dtype:
                raise TypeError(f"{where}: needs numpy.{p.dtype} (C {p.ctype}), got numpy.{x.dtype}")
            return np.array(x)
        passed = {bool: "?", float: "f8", int: "i8"}.get(type(x))
        if passed is None:
            raise TypeError(f"{where}: Unsupported type {type(x)}")
        if np.dtype(passed) != p.dtype:
            raise TypeError(f"{where}: CuPy passes a Python {type(x).__name__} as {np.dtype(passed)}, the "
                            f"kernel reads {p.ctype}; pass numpy.{p.dtype}(...)")
        return np.array(x, dtype=p.dtype)

    def _check_aliasing(self, params, holders):
        ptrs = [(k, p, h) for k, (p, h) in enumerate(zip(params, holders)) if p.pointer and h.size]
        for i, (k1, p1, a1) in enumerate(ptrs):
            for k2, p2, a2 in ptrs[i + 1:]:
                if (p1.restrict or p2.restrict) and not (p1.const and p2.const) and np.may_share_memory(a1, a2):
                    raise ValueError(f"{self.name}: arguments {k1} ({p1.text}) and {k2} ({p2.text}) overlap, "
                                     "but one is __restrict__ and one is written")


class RawModule:
    """``cupy.RawModule`` (source code only); compiled on the first ``get_function``/``compile``."""

    def __init__(self, *, code=None, path=None, options=(), backend="nvrtc", translate_cucomplex=False,
                 enable_cooperative_groups=False, name_expressions=None, jitify=None):
        for arg, value in (("code", code), ("path", path), ("backend", backend)):
            _typed(arg, value, str)
        options = _typed("options", options, tuple) or ()
        if (code is None) == (path is None):
            raise TypeError("Exactly one of `code` and `path` keyword arguments must be given.")
        if name_expressions is not None:
            if code is None:
                raise ValueError("need CUDA C++ code for the requested kernels")
            if backend != "nvrtc":
                raise ValueError("only nvrtc supports retrieving the mangled names for the given name expressions")
            name_expressions = tuple(name_expressions)
        _jitify_warning(jitify)
        self.code, self.file_path, self.name_expressions, self.jitify = code, path, name_expressions, jitify
        self.options, self.backend = (options, backend) if code is not None else ((), "nvcc")
        self.translate_cucomplex = bool(translate_cucomplex) and code is not None
        self.enable_cooperative_groups = bool(enable_cooperative_groups)

    def _binary(self):
        if self.file_path is not None:
            raise NotImplementedError("emulated_cupy cannot load cubin/ptx files (RawModule(path=...))")
        _check_compile_settings(self.backend, self.translate_cucomplex, self.enable_cooperative_groups,
                                self.jitify)
        return _build(self.code, self.options)

    def compile(self, log_stream=None):
        self._binary()

    def get_function(self, name):
        _typed("name", name, str, none_ok=False)
        binary = self._binary()
        if self.name_expressions and name in self.name_expressions and not name.isidentifier():
            raise NotImplementedError(f"emulated_cupy cannot specialise C++ templates ({name!r})")
        binary.kernel(name)
        ker = RawKernel(self.code, name, self.options, self.backend,
                        translate_cucomplex=self.translate_cucomplex,
                        enable_cooperative_groups=self.enable_cooperative_groups)
        ker._binary = binary
        return ker

    def get_global(self, name):
        raise NotImplementedError("emulated_cupy has no device globals (RawModule.get_global)")
