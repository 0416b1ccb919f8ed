"""Locate, assemble and compile the CUDA sources in ``kernels/``.

Where the sources are
    The ``.cu``/``.cuh`` files live in the top-level ``kernels/`` folder of the
    checkout and are shipped inside the wheel as ``gpumask/kernels``.  An editable
    install therefore finds the live files of the checkout, a regular install the
    copy in the package (:func:`kernel_dir`).

What is compiled
    A :class:`KernelBuild` names one entry point (a ``.cu`` file and one of its
    ``__global__`` functions) plus the ``#define`` values and extra NVRTC options of
    one specialisation.  :func:`assemble` turns it into the exact source text and
    option tuple handed to :class:`cupy.RawModule`; the loader (:func:`get_kernel`)
    and the CI build check (``ci/nvrtc_check.py``) both go through it, so they
    cannot drift apart.  Every build gets the same floating-point options
    (:data:`DEVICE_FP_OPTIONS`): two kernels computing the same expression (e.g.
    the pixel coordinates of ``pix2world_grid`` and of ``rasterise_tiles``) round
    it the same way.

Which builds exist
    Each launcher module has one function returning the build for its launch
    parameters (``gpumask.sky.projections.pix2world_build``,
    ``gpumask.masks._region_raster.rasterise_build``), used at launch time, and a
    generator decorated with :func:`register_builds` that yields every build the
    launcher can request.  :func:`all_builds` imports the modules that use the
    decorator - found by scanning the package's source, so nothing is listed by
    hand - and fails when a ``__global__`` function of ``kernels/*.cu`` is not
    covered (:func:`coverage_problems`).  Those imports are by name, inside the
    function and only for this enumeration: this device layer has no import-time
    tie to the layers above it, and :func:`get_kernel` never uses the registry.

How it is compiled
    Through :class:`cupy.RawModule` (NVRTC), memoised on everything that changes
    the compiled code: the build, the assembled source text (file contents
    included) and the device.  CuPy additionally keeps a disk cache
    (``CUPY_CACHE_DIR``) so cluster jobs compile once per node.  Only the loader
    imports cupy, and only when called.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import numbers
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEVICE_FP_OPTIONS",
    "KernelBuild",
    "all_builds",
    "assemble",
    "coverage_problems",
    "entry_points",
    "expanded_source",
    "get_kernel",
    "kernel_dir",
    "kernel_source",
    "launcher_modules",
    "register_builds",
]

#: Floating-point NVRTC options of every gpumask kernel.  ``--fmad=false`` keeps
#: ``a * b + c`` two correctly rounded operations, as NumPy computes it, instead of
#: one fused multiply-add: the device results then round like the NumPy reference
#: and every kernel agrees with every other.  (CuPy appends ``-ftz=true`` to every
#: compile; it only affects single precision, which the kernels do not use.)
DEVICE_FP_OPTIONS = ("--fmad=false",)

#: Language options of every build; ``-I<kernel_dir>`` is added by :func:`assemble`.
_BASE_OPTIONS = ("-std=c++17",)

#: Option names (leading dashes and ``=value`` removed) a build may not set itself:
#: they are fixed for all kernels here (language, include path, floating point) or
#: chosen by CuPy (the architecture).  ``#define``s go through ``defines``.
_RESERVED_OPTIONS = {
    "std": "the C++ standard is set for every kernel (-std=c++17)",
    "I": "the include path is set for every kernel (kernel_dir())",
    "include-path": "the include path is set for every kernel (kernel_dir())",
    "D": "pass #defines as KernelBuild.defines",
    "define-macro": "pass #defines as KernelBuild.defines",
    "fmad": "floating-point options are DEVICE_FP_OPTIONS, the same for every kernel",
    "use_fast_math": "floating-point options are DEVICE_FP_OPTIONS, the same for every kernel",
    "ftz": "floating-point options are DEVICE_FP_OPTIONS, the same for every kernel",
    "prec-div": "floating-point options are DEVICE_FP_OPTIONS, the same for every kernel",
    "prec-sqrt": "floating-point options are DEVICE_FP_OPTIONS, the same for every kernel",
    "arch": "CuPy chooses the architecture from the device",
    "gpu-architecture": "CuPy chooses the architecture from the device",
}

_DEFINE_KEY = re.compile(r"[A-Z_][A-Z0-9_]*")
_DEFINE_VALUE = re.compile(r"[A-Za-z0-9_.+-]+")
_CU_FILENAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.cu")


# --------------------------------------------------------------------------- sources


def kernel_dir() -> Path:
    """Directory holding the CUDA sources (wheel copy first, then checkout).

    Returns
    -------
    pathlib.Path
        ``gpumask/kernels`` of an installed wheel, else ``kernels/`` of the
        source checkout (editable install).

    Raises
    ------
    FileNotFoundError
        If neither folder holds a ``.cu`` file.

    Examples
    --------
    >>> from gpumask._kernels import kernel_dir
    >>> (kernel_dir() / "wcs.cu").is_file()
    True
    """
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
    """Text of one kernel file.

    Parameters
    ----------
    filename : str
        A file name in :func:`kernel_dir`, e.g. ``"wcs.cu"`` or ``"gpumask.cuh"``.

    Returns
    -------
    str
        The file's text, as it is on disk (headers not expanded).

    Raises
    ------
    FileNotFoundError
        If there is no such file; the message lists the known ones.

    Examples
    --------
    >>> from gpumask._kernels import kernel_source
    >>> "pix2world_grid" in kernel_source("wcs.cu")
    True
    """
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

    Parameters
    ----------
    filename : str
        A ``.cu`` (or ``.cuh``) file in :func:`kernel_dir`.

    Returns
    -------
    str
        The self-contained source text.

    Examples
    --------
    >>> from gpumask._kernels import expanded_source
    >>> '#include "wcs_proj.cuh"' in expanded_source("wcs.cu")
    False
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


# --------------------------------------------------------------------------- builds


def _normalise_defines(defines) -> tuple:
    if isinstance(defines, Mapping):
        pairs = list(defines.items())
    elif isinstance(defines, (str, bytes)):
        raise TypeError(f"KernelBuild.defines must be a mapping or (KEY, value) pairs, got {defines!r}")
    else:
        try:
            pairs = [tuple(pair) for pair in defines]
        except TypeError:
            raise TypeError(
                f"KernelBuild.defines must be a mapping or (KEY, value) pairs, got {defines!r}"
            ) from None
    out = {}
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"KernelBuild.defines entries must be (KEY, value) pairs, got {pair!r}")
        key, value = pair
        if not isinstance(key, str) or not _DEFINE_KEY.fullmatch(key):
            raise ValueError(f"Kernel define {key!r} must be an UPPER_CASE identifier")
        if key in out:
            raise ValueError(f"Kernel define {key!r} is given twice")
        if isinstance(value, bool) or not isinstance(value, (numbers.Integral, str)):
            raise TypeError(
                f"Kernel define {key}={value!r}: the value must be an int or an identifier/number "
                "string (write booleans as 0/1)"
            )
        text = value if isinstance(value, str) else str(int(value))
        if not _DEFINE_VALUE.fullmatch(text):
            raise ValueError(
                f"Kernel define {key}={value!r}: the value must be one token of letters, digits, "
                "'_', '.', '+' or '-'"
            )
        out[key] = text
    return tuple(sorted(out.items()))


def _normalise_options(options) -> tuple:
    if isinstance(options, (str, bytes)):
        raise TypeError(f"KernelBuild.options must be a tuple of strings, got the string {options!r}")
    options = tuple(options)
    for option in options:
        if not isinstance(option, str) or not option.startswith("-"):
            raise ValueError(f"KernelBuild.options entries must be NVRTC flags such as '-lineinfo', got {option!r}")
        bare = option.lstrip("-").split("=", 1)[0]
        reason = _RESERVED_OPTIONS.get(bare) or next(
            (why for key, why in _RESERVED_OPTIONS.items() if len(key) == 1 and bare.startswith(key)), None)
        if reason:
            raise ValueError(f"KernelBuild option {option!r} is not allowed: {reason}")
    return options


@dataclass(frozen=True)
class KernelBuild:
    """One compiled specialisation of one CUDA entry point.

    Parameters
    ----------
    filename : str
        The ``.cu`` file in :func:`kernel_dir`, e.g. ``"wcs.cu"``.
    name : str
        The ``extern "C" __global__`` function to load from it.
    defines : mapping or iterable of (str, int or str) pairs, optional
        ``#define KEY VALUE`` lines put before the source.  Keys are UPPER_CASE
        identifiers, values ints or single tokens.  Stored as a tuple of
        ``(KEY, "value")`` pairs sorted by key, so equal builds compare and hash
        equal whatever order they were given in.
    options : tuple of str, optional
        Extra NVRTC flags for this build only (e.g. ``("-lineinfo",)``).  The
        language, include path, floating-point options (:data:`DEVICE_FP_OPTIONS`)
        and architecture are the same for every build and may not be set here.

    Raises
    ------
    ValueError, TypeError
        For a malformed file name, kernel name, define or option; the message
        names the value and what is accepted.

    See Also
    --------
    assemble : the source text and options this build compiles from.
    get_kernel : compile (memoised) and load it.

    Examples
    --------
    >>> from gpumask._kernels import KernelBuild
    >>> build = KernelBuild("wcs.cu", "pix2world_grid", {"GPUMASK_PROJ": "GPUMASK_PROJ_TAN"})
    >>> build.defines
    (('GPUMASK_PROJ', 'GPUMASK_PROJ_TAN'),)
    >>> build == KernelBuild("wcs.cu", "pix2world_grid", [("GPUMASK_PROJ", "GPUMASK_PROJ_TAN")])
    True
    """

    filename: str
    name: str
    defines: tuple = ()
    options: tuple = ()

    def __post_init__(self):
        if not isinstance(self.filename, str) or not _CU_FILENAME.fullmatch(self.filename):
            raise ValueError(
                "KernelBuild.filename must be the name of a .cu file in kernels/ (e.g. 'wcs.cu'), "
                f"got {self.filename!r}"
            )
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"KernelBuild.name must be a C identifier (the __global__ function), got {self.name!r}")
        object.__setattr__(self, "defines", _normalise_defines(self.defines))
        object.__setattr__(self, "options", _normalise_options(self.options))

    def describe(self) -> str:
        """Short one-line label, e.g. ``"regions.cu:rasterise_tiles PROJ=AIT REGION_SKY=1 TILE=32"``.

        ``GPUMASK_`` prefixes are dropped, and a value that repeats its key
        (``GPUMASK_PROJ=GPUMASK_PROJ_AIT``) is shown by its tail (``PROJ=AIT``).

        Examples
        --------
        >>> from gpumask._kernels import KernelBuild
        >>> KernelBuild("wcs.cu", "pix2world_grid", {"GPUMASK_PROJ": "GPUMASK_PROJ_MOL"}).describe()
        'wcs.cu:pix2world_grid PROJ=MOL'
        """
        return " ".join([f"{self.filename}:{self.name}", *_define_labels(self.defines), *self.options])


def _define_labels(defines) -> list:
    labels = []
    for key, value in defines:
        value = value.removeprefix(key + "_")
        labels.append(f"{key.removeprefix('GPUMASK_')}={value}")
    return labels


def _render_defines(defines) -> str:
    return "\n".join(f"#define {key} {value}" for key, value in defines) + "\n"


def assemble(build: KernelBuild) -> tuple:
    """The source text and NVRTC options that ``build`` compiles from.

    This is exactly what :func:`get_kernel` passes to :class:`cupy.RawModule`
    (CuPy then adds its own include paths, ``-ftz=true``, the architecture and
    ``--device-as-default-execution-space``).

    Parameters
    ----------
    build : KernelBuild
        The entry point and its specialisation.

    Returns
    -------
    code : str
        The ``#define`` lines of ``build.defines`` followed by the file's
        :func:`expanded_source`.
    options : tuple of str
        ``("-std=c++17", "-I<kernel_dir>", *DEVICE_FP_OPTIONS, *build.options)``.

    Examples
    --------
    >>> from gpumask._kernels import DEVICE_FP_OPTIONS, KernelBuild, assemble
    >>> code, options = assemble(KernelBuild("wcs.cu", "pix2world_grid", {"GPUMASK_PROJ": 2}))
    >>> code.splitlines()[0]
    '#define GPUMASK_PROJ 2'
    >>> set(DEVICE_FP_OPTIONS) <= set(options)
    True
    """
    if not isinstance(build, KernelBuild):
        raise TypeError(f"assemble() takes a KernelBuild, got {type(build).__name__}: {build!r}")
    code = _render_defines(build.defines) + expanded_source(build.filename)
    options = (*_BASE_OPTIONS, f"-I{kernel_dir()}", *DEVICE_FP_OPTIONS, *build.options)
    return code, options


def get_kernel(build, name: str | None = None, defines: Mapping | None = None, options: tuple = ()):
    """Compiled :class:`cupy.RawKernel` of one build (memoised per device).

    Only call this from code that already runs on the cupy backend.

    Parameters
    ----------
    build : KernelBuild or str
        The build to load; or, as a shorthand, the ``.cu`` file name, with
        ``name``, ``defines`` and ``options`` as in :class:`KernelBuild`.
    name, defines, options
        Only with a file name (see :class:`KernelBuild`).

    Returns
    -------
    cupy.RawKernel
        The kernel ``build.name`` compiled from :func:`assemble`'s output.

    Examples
    --------
    >>> from gpumask._kernels import get_kernel
    >>> from gpumask.sky.projections import pix2world_build
    >>> kernel = get_kernel(pix2world_build("TAN"))  # doctest: +SKIP
    """
    if isinstance(build, KernelBuild):
        if name is not None or defines or options:
            raise TypeError("get_kernel() takes either a KernelBuild or filename, name, defines, options; not both")
    elif isinstance(build, str):
        if name is None:
            raise TypeError(f"get_kernel({build!r}, ...) needs the kernel name as well")
        build = KernelBuild(build, name, defines or {}, options)
    else:
        raise TypeError(f"get_kernel() takes a KernelBuild or a .cu file name, got {type(build).__name__}")
    code, opts = assemble(build)
    digest = hashlib.sha1("\0".join((code, *opts)).encode()).hexdigest()
    return _compile(build, digest)


@functools.lru_cache(maxsize=None)
def _compile_cached(build, digest, device_id):
    import cupy  # noqa: PLC0415 - only reached on the cupy backend

    code, options = assemble(build)
    module = cupy.RawModule(code=code, options=options, name_expressions=None)
    return module.get_function(build.name)


def _compile(build, digest):
    import cupy  # noqa: PLC0415

    return _compile_cached(build, digest, cupy.cuda.Device().id)


# --------------------------------------------------------------------------- enumeration

#: Build enumerators, by qualified name (filled by :func:`register_builds`).
_REGISTRY: dict = {}


def register_builds(enumerate_builds: Callable[[], Iterable[KernelBuild]]):
    """Decorator registering a generator of every build a launcher can request.

    Put it on a zero-argument function in the launcher's module that yields one
    :class:`KernelBuild` per specialisation the launcher may ask for (every
    projection code, every flag combination), built by the same function the
    launcher calls at launch time.  :func:`all_builds` finds the module by
    scanning the package for this decorator, so a new launcher joins the CI
    build check without being listed anywhere.

    Parameters
    ----------
    enumerate_builds : callable
        ``() -> iterable of KernelBuild``.

    Returns
    -------
    callable
        ``enumerate_builds`` itself (unchanged).

    Examples
    --------
    >>> from gpumask._kernels import KernelBuild, register_builds
    >>> @register_builds  # doctest: +SKIP
    ... def _my_kernel_builds():
    ...     for tile in (16, 32):
    ...         yield my_kernel_build(tile)  # the function the launcher calls
    """
    if not callable(enumerate_builds):
        raise TypeError(f"register_builds decorates a function, got {enumerate_builds!r}")
    key = f"{enumerate_builds.__module__}.{enumerate_builds.__qualname__}"
    _REGISTRY[key] = enumerate_builds
    return enumerate_builds


def _uses_register_builds(tree) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for deco in node.decorator_list:
                if (isinstance(deco, ast.Name) and deco.id == "register_builds") or (
                        isinstance(deco, ast.Attribute) and deco.attr == "register_builds"):
                    return True
    return False


def launcher_modules() -> list:
    """Names of the package's modules that decorate a function with :func:`register_builds`.

    Found by reading the package's source (the installed copy for a wheel), not
    by importing it.

    Returns
    -------
    list of str
        Dotted module names, sorted.

    Examples
    --------
    >>> from gpumask._kernels import launcher_modules
    >>> "gpumask.sky.projections" in launcher_modules()
    True
    """
    here = Path(__file__).resolve()
    package_dir, package = here.parent, __name__.rpartition(".")[0]
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        if path == here:
            continue
        text = path.read_text(encoding="utf-8")
        if "register_builds" not in text or not _uses_register_builds(ast.parse(text, filename=str(path))):
            continue
        parts = list(path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found.append(".".join([package, *parts]))
    return found


def all_builds(check: bool = True) -> list:
    """Every :class:`KernelBuild` the package can request, deduplicated.

    Imports every module of :func:`launcher_modules` (which registers their
    enumerators), then runs the registered enumerators in name order.

    Parameters
    ----------
    check : bool, default True
        Raise if :func:`coverage_problems` finds any (an uncovered
        ``__global__`` function, a build of a function that does not exist).
        ``ci/nvrtc_check.py`` passes False and reports them itself.

    Returns
    -------
    list of KernelBuild
        In enumeration order, each build once.

    Raises
    ------
    RuntimeError
        If nothing is registered, an enumerator yields nothing, or (``check``)
        the builds do not cover the kernels.
    TypeError
        If an enumerator yields something that is not a :class:`KernelBuild`.

    Examples
    --------
    >>> from gpumask._kernels import all_builds
    >>> sorted({(b.filename, b.name) for b in all_builds()})
    [('regions.cu', 'rasterise_tiles'), ('wcs.cu', 'pix2world_grid')]
    """
    for module in launcher_modules():
        importlib.import_module(module)
    builds = []
    for key in sorted(_REGISTRY):
        produced = list(_REGISTRY[key]())
        if not produced:
            raise RuntimeError(f"the build enumerator {key} yields no KernelBuild")
        for build in produced:
            if not isinstance(build, KernelBuild):
                raise TypeError(f"the build enumerator {key} yielded {build!r}, not a KernelBuild")
        builds.extend(produced)
    builds = list(dict.fromkeys(builds))
    if not builds:
        raise RuntimeError(
            "no kernel builds are registered: no module of the package uses @register_builds "
            f"(scanned {Path(__file__).resolve().parent})"
        )
    if check:
        problems = coverage_problems(builds)
        if problems:
            raise RuntimeError("the enumerated kernel builds do not match kernels/:\n  " + "\n  ".join(problems))
    return builds


_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_LAUNCH_BOUNDS = re.compile(r"__launch_bounds__\s*\((?:[^()]|\([^()]*\))*\)")
_GLOBAL = re.compile(r"\b__global__\b([^;{}()]*)\(")


def _global_functions(text: str) -> list:
    text = _LAUNCH_BOUNDS.sub(" ", _COMMENT.sub(" ", text))
    return [re.findall(r"\w+", m.group(1))[-1] for m in _GLOBAL.finditer(text) if re.search(r"\w", m.group(1))]


def entry_points() -> dict:
    """The ``__global__`` functions each ``kernels/*.cu`` file defines (parsed from its text).

    Returns
    -------
    dict
        ``{filename: tuple of function names}`` for every ``.cu`` file of
        :func:`kernel_dir`, sorted by file name.

    Examples
    --------
    >>> from gpumask._kernels import entry_points
    >>> entry_points()["wcs.cu"]
    ('pix2world_grid',)
    """
    return {path.name: tuple(_global_functions(path.read_text()))
            for path in sorted(kernel_dir().glob("*.cu"))}


def coverage_problems(builds: Iterable[KernelBuild]) -> list:
    """What is wrong between ``builds`` and the kernels in :func:`kernel_dir`.

    Parameters
    ----------
    builds : iterable of KernelBuild
        Usually :func:`all_builds` ``(check=False)``.

    Returns
    -------
    list of str
        One message per problem, empty when all is well: a ``__global__``
        function of a ``.cu`` file no build compiles, a build naming a file or
        function that does not exist, a ``__global__`` function in a ``.cuh``
        header (entry points belong in ``.cu`` files, which builds name).

    Examples
    --------
    >>> from gpumask._kernels import all_builds, coverage_problems
    >>> coverage_problems(all_builds())
    []
    >>> coverage_problems([])[0]  # doctest: +ELLIPSIS
    'regions.cu: __global__ rasterise_tiles is built by no enumerator...'
    """
    known = entry_points()
    covered = {(b.filename, b.name) for b in builds}
    problems = []
    for filename, names in known.items():
        for name in names:
            if (filename, name) not in covered:
                problems.append(
                    f"{filename}: __global__ {name} is built by no enumerator; yield its builds from a "
                    "@register_builds generator next to its launcher"
                )
    for filename, name in sorted(covered):
        if filename not in known:
            problems.append(f"a build names {filename!r}, which is not a .cu file in {kernel_dir()}")
        elif name not in known[filename]:
            problems.append(f"a build names {filename}:{name}, but {filename} defines {list(known[filename])}")
    for header in sorted(kernel_dir().glob("*.cuh")):
        for name in _global_functions(header.read_text()):
            problems.append(f"{header.name}: __global__ {name} is in a header; define entry points in a .cu file")
    return problems
