"""Compile every gpumask kernel build with NVRTC, without a GPU, and report its resources.

Run by ``ci/check-nvrtc.sh`` (fresh venv with cupy and the NVRTC wheel); directly:

    PYTHONPATH=. python ci/nvrtc_check.py [--arch 80 90] [--fail-on-spills] [--jobs N]

Every build of :func:`gpumask._kernels.all_builds` is compiled for each
architecture from exactly the source and options the loader hands to
``cupy.RawModule`` (:func:`gpumask._kernels.assemble`), plus what CuPy adds on the
way to NVRTC: its include paths (``assemble_cupy_compiler_options``), ``-ftz=true``,
``-arch=sm_XX`` and ``--device-as-default-execution-space`` (and ``--pch``,
debug flags or PTX output when CuPy's environment variables ask for them), as
``cupy.cuda.compiler`` 14.x does in ``_compile_with_cache_cuda`` and
``_compile_using_nvrtc_no_warning``.  ``-Xptxas=-v`` is added to read the
register, stack and spill figures.  CuPy's own ``compile_using_nvrtc`` cannot be
used: it looks the architecture up on the current device.

Fails (exit 1) when no build is enumerated, a ``__global__`` function is not
covered by a build (or a build names one that does not exist), a compile fails,
NVRTC or ptxas print a warning, or an entry point is missing from the binary.
Register spills are reported (table and a note per build); ``--fail-on-spills``
makes them fatal too.  They are not by default: the current kernels spill a few
dozen bytes in some builds while using far fewer registers than their launch
bounds allow, and the figures move with the NVRTC version and architecture.

Compiles run in parallel worker processes (``--jobs``, default min(8, CPUs)).
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor

FUNCTION = re.compile(r"Function properties for (\w+)")
STACK = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
REGISTERS = re.compile(r"Used (\d+) registers")
ENTRY = re.compile(r"Compiling entry function '(\w+)'")


def cupy_nvrtc_options(options, arch):
    """``options`` as CuPy 14 extends them for NVRTC on a device of ``arch``; and the output kind."""
    import cupy._core.core as core  # noqa: PLC0415
    from cupy.cuda import compiler  # noqa: PLC0415

    options = tuple(core.assemble_cupy_compiler_options(tuple(options)))  # include paths
    options += ("-ftz=true",)  # _compile_with_cache_cuda
    if compiler._get_bool_env_variable("CUPY_CUDA_COMPILE_WITH_DEBUG", False):
        options += ("--device-debug", "--generate-line-info")
    # _get_arch_for_options_for_nvrtc, without the device look-up
    if not compiler._use_ptx and int(arch) <= int(compiler._get_max_compute_capability()):
        options += (f"-arch=sm_{arch}",)
        method = "cubin"
    else:
        options += (f"-arch=compute_{arch}",)
        method = "ptx"
    options += ("--device-as-default-execution-space",)  # _compile_using_nvrtc_no_warning
    major, minor = compiler._get_nvrtc_version()
    if (major >= 13 or (major == 12 and minor >= 8)) and compiler._use_pch:
        options += ("--pch",)
    return options, method


def compile_build(build, arch):
    """Compile one build for one architecture; a result row (dict)."""
    from cupy.cuda import compiler  # noqa: PLC0415

    from gpumask._kernels import assemble  # noqa: PLC0415

    code, options = assemble(build)
    options, method = cupy_nvrtc_options(options, arch)
    row = {"build": build, "arch": arch, "method": method, "errors": [], "warnings": []}
    log = io.StringIO()
    start = time.perf_counter()
    try:
        program = compiler._NVRTCProgram(code, build.filename, (), (), name_expressions=None, method=method)
        binary, _ = program.compile(options + ("-Xptxas=-v",), log)
    except compiler.CompileException as exc:
        row["errors"].append(str(exc).strip() or "NVRTC failed without a log")
        binary = b""
    row["seconds"] = time.perf_counter() - start
    text = log.getvalue()
    row["warnings"] = [line.strip() for line in text.splitlines() if "warning" in line.lower()]
    row.update(_resources(text, build.name))
    if not row["errors"] and method == "cubin":
        if build.name not in row["entries"]:
            row["errors"].append(f"ptxas compiled no entry function {build.name!r} (got {row['entries']})")
        if build.name.encode() not in binary:
            row["errors"].append(f"{build.name!r} is not in the cubin")
    return row


def _resources(log, name):
    """Registers, stack and spills of entry function ``name`` from a ptxas -v log."""
    out = {"entries": ENTRY.findall(log), "registers": None, "stack": None, "spill_stores": None,
           "spill_loads": None}
    current = None
    for line in log.splitlines():
        function = FUNCTION.search(line)
        if function:
            current = function.group(1)
            continue
        if current != name:
            continue
        stack = STACK.search(line)
        if stack:
            out["stack"], out["spill_stores"], out["spill_loads"] = map(int, stack.groups())
        registers = REGISTERS.search(line)
        if registers:
            out["registers"] = int(registers.group(1))
            current = None
    return out


def _nvrtc_library():
    """Path of the libnvrtc this process loaded (Linux), for the report."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libnvrtc.so" in line}
    except OSError:
        return "?"
    return ", ".join(sorted(paths)) or "?"


def _cell(value):
    return "-" if value is None else str(value)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", type=int, default=[80, 90],
                        help="compute capabilities to compile for (default: 80 90)")
    parser.add_argument("--fail-on-spills", action="store_true", help="fail when a kernel spills registers")
    parser.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1),
                        help="compiler processes (default: min(8, CPUs))")
    args = parser.parse_args(argv)

    import cupy  # noqa: PLC0415
    from cupy.cuda import compiler  # noqa: PLC0415

    from gpumask import _kernels  # noqa: PLC0415

    major, minor = compiler._get_nvrtc_version()
    print(f"cupy {cupy.__version__}; NVRTC {major}.{minor} ({_nvrtc_library()})")
    print(f"kernels from {_kernels.kernel_dir()}; every build gets {' '.join(_kernels.DEVICE_FP_OPTIONS)}")
    failures = []
    try:
        builds = _kernels.all_builds(check=False)
    except RuntimeError as exc:
        print(f"FAIL: {exc}")
        return 1
    problems = _kernels.coverage_problems(builds)
    failures += problems
    entry_points = _kernels.entry_points()
    print(f"{len(builds)} builds of {sum(map(len, entry_points.values()))} entry points "
          f"({', '.join(f'{f}:{n}' for f, names in entry_points.items() for n in names)}) "
          f"x archs {' '.join(f'sm_{a}' for a in args.arch)}")

    if builds:
        options, _ = cupy_nvrtc_options(_kernels.assemble(builds[0])[1], args.arch[-1])
        print(f"NVRTC options (first build, sm_{args.arch[-1]}): {' '.join(options)} -Xptxas=-v")
    jobs = [(build, arch) for build in builds for arch in args.arch]
    start = time.perf_counter()
    if args.jobs > 1 and len(jobs) > 1:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
            rows = list(pool.map(compile_build, *zip(*jobs)))
    else:
        rows = [compile_build(*job) for job in jobs]
    wall = time.perf_counter() - start

    spills = []
    header = ("file", "kernel", "defines", "arch", "regs", "stack", "spill st/ld", "ms")
    table = []
    for row in rows:
        build = row["build"]
        defines = " ".join(build.describe().split()[1:]) or "-"
        spill_cell = "-" if row["spill_stores"] is None else f"{row['spill_stores']}/{row['spill_loads']}"
        status = "FAIL" if row["errors"] or row["warnings"] else ""
        table.append((build.filename, build.name, defines, f"sm_{row['arch']}", _cell(row["registers"]),
                      _cell(row["stack"]), spill_cell, f"{1000 * row['seconds']:.0f}", status))
        label = f"{build.describe()} sm_{row['arch']}"
        failures += [f"{label}: compile error:\n{e}" for e in row["errors"]]
        failures += [f"{label}: {w}" for w in row["warnings"]]
        if row["method"] == "cubin" and not row["errors"] and row["registers"] is None:
            failures.append(f"{label}: no register count in the ptxas log")
        if row["spill_stores"] or row["spill_loads"]:
            spills.append(f"{label}: spills {row['spill_stores']} bytes stores / {row['spill_loads']} bytes loads")
    widths = [max(len(str(r[i])) for r in [header, *table]) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for r in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)) + (f"  {r[-1]}" if r[-1] else ""))
    total = sum(row["seconds"] for row in rows)
    print(f"{len(rows)} compiles in {wall:.1f} s wall ({total:.1f} s compiler time, {args.jobs} jobs)")
    if spills:
        print(f"\nregister spills in {len(spills)} of {len(rows)} compiles"
              + ("" if args.fail_on_spills else " (reported; --fail-on-spills makes them fatal)") + ":")
        for spill in spills:
            print(f"  {spill}")
        if args.fail_on_spills:
            failures += spills
    if failures:
        print(f"\nFAIL: {len(failures)} problem(s):")
        for failure in failures:
            print(f"  {failure}")
        return 1
    print("NVRTC check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
