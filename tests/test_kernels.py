"""gpumask._kernels: kernel builds, their enumeration, and what reaches NVRTC.

No GPU needed: what the loader hands to CuPy is checked on a stand-in ``cupy``
module whose ``RawModule`` records its source and options.  ``ci/nvrtc_check.py``
compiles the same builds with the real NVRTC.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import gpumask
from gpumask import _kernels
from gpumask._kernels import (
    DEVICE_FP_OPTIONS,
    KernelBuild,
    all_builds,
    assemble,
    coverage_problems,
    entry_points,
    get_kernel,
    kernel_dir,
    launcher_modules,
)
from gpumask.backend import Backend
from gpumask.masks import _region_compile as rc
from gpumask.masks import _region_raster as rr
from gpumask.sky.geom import WcsGeom
from gpumask.sky.projections import (
    SUPPORTED_PROJECTIONS,
    WcsParams,
    pix2world_build,
    pixel_grid_world,
    projection_defines,
)

#: NVRTC options that change floating-point results (spelled without dashes/values).
FP_OPTION_NAMES = {"fmad", "use_fast_math", "ftz", "prec-div", "prec-sqrt"}


def _fp_options(options):
    return tuple(o for o in options if o.lstrip("-").split("=", 1)[0] in FP_OPTION_NAMES)


def _header_projection_codes():
    """The projections the device math implements, read from the header."""
    text = (kernel_dir() / "wcs_proj.cuh").read_text()
    return set(re.findall(r"#define GPUMASK_PROJ_([A-Z]{3}) \d+", text))


def _strip_comments(text):
    return re.sub(r"//[^\n]*|/\*.*?\*/", " ", text, flags=re.S)


# --------------------------------------------------------------------------- a recording cupy


@pytest.fixture
def recording_cupy(monkeypatch):
    """A stand-in ``cupy`` whose RawModule records ``(code, options, kernel name)``
    and whose kernels record their launches; the loader's memo is cleared around it."""

    class FakeDeviceArray(np.ndarray):
        pass

    modules, launches = [], []

    class RawModule:
        def __init__(self, *, code, options=(), name_expressions=None):
            self.code, self.options = code, options
            modules.append(self)

        def get_function(self, name):
            self.name = name

            def kernel(grid, block, args):
                launches.append((name, grid, block, args))

            return kernel

    module = types.ModuleType("cupy")
    module.__version__ = "0.0-recording"
    module.ndarray = FakeDeviceArray
    module.float64, module.uint8, module.int32 = np.float64, np.uint8, np.int32
    module.empty = lambda shape, dtype=float: np.empty(shape, dtype).view(FakeDeviceArray)
    module.zeros = lambda shape, dtype=float: np.zeros(shape, dtype).view(FakeDeviceArray)
    module.asarray = lambda a, dtype=None: np.asarray(a, dtype=dtype).view(FakeDeviceArray)
    module.RawModule = RawModule
    module.cuda = types.SimpleNamespace(Device=lambda: types.SimpleNamespace(id=0), is_available=lambda: True)
    monkeypatch.setitem(sys.modules, "cupy", module)
    _kernels._compile_cached.cache_clear()
    yield types.SimpleNamespace(module=module, modules=modules, launches=launches,
                                backend=Backend("cupy", module))
    _kernels._compile_cached.cache_clear()


# --------------------------------------------------------------------------- the fmad fix


def test_launchers_compile_wcs_and_regions_with_the_same_fp_options(recording_cupy):
    """pixel_grid_world and the rasteriser compute the same pixel coordinates; before
    the fix only regions.cu had --fmad=false, so the two could round differently."""
    geom = WcsGeom.create(npix=(70, 40), binsz=0.05, proj="TAN", frame="galactic", skydir=(10.0, 2.0))
    params = geom._device_params
    assert params is not None
    pixel_grid_world(params, 70, 40, xp=recording_cupy.module)
    table = rc.pixel_circles(np.array([10.0, 50.0]), np.array([12.0, 20.0]), np.array([5.0, 8.0]),
                             np.zeros(2, dtype=np.int32))
    rr.rasterise_cupy(geom, table, recording_cupy.backend)
    compiled = {m.name: m for m in recording_cupy.modules}
    assert set(compiled) == {"pix2world_grid", "rasterise_tiles"}
    assert [launch[0] for launch in recording_cupy.launches] == ["pix2world_grid", "rasterise_tiles"]
    wcs_fp = _fp_options(compiled["pix2world_grid"].options)
    regions_fp = _fp_options(compiled["rasterise_tiles"].options)
    assert "--fmad=false" in wcs_fp
    assert wcs_fp == regions_fp == _fp_options(DEVICE_FP_OPTIONS)
    # and they are the builds the enumeration lists
    assert (compiled["pix2world_grid"].code, compiled["pix2world_grid"].options) == assemble(
        pix2world_build("TAN"))
    assert (compiled["rasterise_tiles"].code, compiled["rasterise_tiles"].options) == assemble(
        rr.rasterise_build(False, "TAN"))


def test_every_build_has_the_device_fp_options():
    fp = {_fp_options(assemble(build)[1]) for build in all_builds()}
    assert fp == {_fp_options(DEVICE_FP_OPTIONS)}
    assert "--fmad=false" in DEVICE_FP_OPTIONS
    by_file = {}
    for build in all_builds():
        by_file.setdefault(build.filename, set()).add(_fp_options(assemble(build)[1]))
    assert by_file["wcs.cu"] == by_file["regions.cu"]


def test_builds_may_not_change_the_fp_options():
    for option in ("--fmad=true", "-fmad=false", "--use_fast_math", "-ftz=false", "--prec-div=false",
                   "--prec-sqrt=false"):
        with pytest.raises(ValueError, match="DEVICE_FP_OPTIONS"):
            KernelBuild("wcs.cu", "pix2world_grid", options=(option,))


# --------------------------------------------------------------------------- loader == check


def test_compile_cached_passes_exactly_what_assemble_returns(recording_cupy):
    builds = all_builds()
    for build in builds:
        get_kernel(build)
    assert len(recording_cupy.modules) == len(builds)
    for build, module in zip(builds, recording_cupy.modules):
        assert (module.code, module.options, module.name) == (*assemble(build), build.name)
    # memoised: the same builds again compile nothing new
    for build in builds:
        get_kernel(build)
    assert len(recording_cupy.modules) == len(builds)


def test_get_kernel_keeps_its_filename_form(recording_cupy):
    defines = {"GPUMASK_PROJ": "GPUMASK_PROJ_SIN"}
    get_kernel("wcs.cu", "pix2world_grid", defines=defines)
    get_kernel(pix2world_build("SIN"))  # the same build: memoised
    assert len(recording_cupy.modules) == 1
    module = recording_cupy.modules[0]
    assert (module.code, module.options) == assemble(KernelBuild("wcs.cu", "pix2world_grid", defines))
    with pytest.raises(TypeError, match="either a KernelBuild"):
        get_kernel(pix2world_build("SIN"), "pix2world_grid")
    with pytest.raises(TypeError, match="kernel name"):
        get_kernel("wcs.cu")
    with pytest.raises(TypeError, match="KernelBuild or a .cu file name"):
        get_kernel(3)


def test_assemble_renders_defines_then_the_expanded_source():
    build = KernelBuild("regions.cu", "rasterise_tiles", {"GPUMASK_TILE": 32, "GPUMASK_REGION_SKY": 1})
    code, options = assemble(build)
    assert code.startswith("#define GPUMASK_REGION_SKY 1\n#define GPUMASK_TILE 32\n")
    assert code.endswith(_kernels.expanded_source("regions.cu"))
    assert options == ("-std=c++17", f"-I{kernel_dir()}", *DEVICE_FP_OPTIONS)
    assert assemble(KernelBuild("wcs.cu", "pix2world_grid", options=("-lineinfo",)))[1][-1] == "-lineinfo"
    with pytest.raises(TypeError, match="KernelBuild"):
        assemble(("wcs.cu", "pix2world_grid"))


# --------------------------------------------------------------------------- enumeration


def test_all_builds_cover_every_device_projection_and_flag():
    builds = all_builds()
    assert builds and all(isinstance(b, KernelBuild) for b in builds)
    assert len(set(builds)) == len(builds)
    assert set(SUPPORTED_PROJECTIONS) == _header_projection_codes()
    projections = {f"GPUMASK_PROJ_{code}" for code in SUPPORTED_PROJECTIONS}

    wcs = [dict(b.defines) for b in builds if b.filename == "wcs.cu"]
    assert {d["GPUMASK_PROJ"] for d in wcs} == projections
    assert all(b.name == "pix2world_grid" for b in builds if b.filename == "wcs.cu")

    regions = [dict(b.defines) for b in builds if b.filename == "regions.cu"]
    seen = {(d["GPUMASK_REGION_SKY"], d.get("GPUMASK_PROJ"), d.get("GPUMASK_REGION_COORDS_FROM_ARRAYS"))
            for d in regions}
    expected = {(sky, proj, None) for sky in ("0", "1") for proj in projections}
    expected |= {(sky, None, "1") for sky in ("0", "1")}
    assert seen == expected
    assert {d["GPUMASK_TILE"] for d in regions} == {str(rr.TILE)}


def test_the_launch_time_builds_are_enumerated():
    builds = set(all_builds())
    for code in SUPPORTED_PROJECTIONS:
        assert pix2world_build(code) in builds
        for sky in (False, True, np.bool_(True)):
            assert rr.rasterise_build(sky, code) in builds
    assert rr.rasterise_build(False, None) in builds and rr.rasterise_build(True, None) in builds


def test_every_global_of_every_cu_file_is_covered():
    points = entry_points()
    assert set(points) == {p.name for p in kernel_dir().glob("*.cu")}
    for filename, names in points.items():
        text = _strip_comments((kernel_dir() / filename).read_text())
        assert len(names) == text.count("__global__"), (filename, names)
        assert all(name in text for name in names)
    covered = {(b.filename, b.name) for b in all_builds()}
    assert covered == {(f, n) for f, names in points.items() for n in names}
    assert coverage_problems(all_builds()) == []


@pytest.fixture
def scratch_kernels(tmp_path, monkeypatch):
    """A copy of kernels/ the loader uses instead, and a private build registry."""
    for path in kernel_dir().iterdir():
        shutil.copy(path, tmp_path / path.name)
    all_builds()  # fill the real registry first (imports the launchers)
    monkeypatch.setattr(_kernels, "kernel_dir", lambda: tmp_path)
    monkeypatch.setattr(_kernels, "_REGISTRY", dict(_kernels._REGISTRY))
    return tmp_path


def test_a_new_kernel_must_be_enumerated(scratch_kernels):
    (scratch_kernels / "extra.cu").write_text(
        '#include "gpumask.cuh"\n'
        "// __global__ void commented_out(int* a) {}\n"
        'extern "C" __global__ void __launch_bounds__(8 * (4 + 4)) extra_kernel(int* a) { a[0] = 1; }\n'
    )
    assert entry_points()["extra.cu"] == ("extra_kernel",)
    with pytest.raises(RuntimeError, match="extra.cu: __global__ extra_kernel is built by no enumerator"):
        all_builds()
    assert any("extra_kernel" in p for p in coverage_problems(all_builds(check=False)))

    @_kernels.register_builds
    def _extra_builds():
        yield KernelBuild("extra.cu", "extra_kernel")

    assert KernelBuild("extra.cu", "extra_kernel") in all_builds()


def test_builds_of_missing_kernels_and_kernels_in_headers_are_reported(scratch_kernels):
    problems = coverage_problems([*all_builds(), KernelBuild("wcs.cu", "no_such_kernel"),
                                  KernelBuild("gone.cu", "pix2world_grid")])
    assert any("wcs.cu:no_such_kernel" in p for p in problems)
    assert any("'gone.cu'" in p for p in problems)
    (scratch_kernels / "bad.cuh").write_text("__global__ void in_header() {}\n")
    assert any("bad.cuh: __global__ in_header is in a header" in p for p in coverage_problems(all_builds(check=False)))


def test_all_builds_refuses_an_empty_or_broken_registry(monkeypatch):
    monkeypatch.setattr(_kernels, "launcher_modules", lambda: [])
    monkeypatch.setattr(_kernels, "_REGISTRY", {})
    with pytest.raises(RuntimeError, match="no kernel builds are registered"):
        all_builds()

    @_kernels.register_builds
    def _nothing():
        return iter(())

    with pytest.raises(RuntimeError, match="_nothing yields no KernelBuild"):
        all_builds()
    _kernels._REGISTRY.clear()

    @_kernels.register_builds
    def _not_builds():
        yield ("wcs.cu", "pix2world_grid")

    with pytest.raises(TypeError, match="not a KernelBuild"):
        all_builds()


def test_launcher_modules_are_found_by_scanning_the_source():
    modules = launcher_modules()
    assert {"gpumask.sky.projections", "gpumask.masks._region_raster"} <= set(modules)
    assert "gpumask._kernels" not in modules
    all_builds()
    registered = {key.rpartition(".")[0] for key in _kernels._REGISTRY}
    assert set(modules) <= registered


def test_all_builds_does_not_import_cupy():
    root = str(Path(gpumask.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    code = ("import sys, gpumask._kernels as k; assert len(k.all_builds()) > 1; "
            "assert 'cupy' not in sys.modules, 'cupy imported'")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


# --------------------------------------------------------------------------- validation


def test_kernel_build_normalises_and_describes():
    a = KernelBuild("regions.cu", "rasterise_tiles", {"GPUMASK_TILE": 32, "GPUMASK_PROJ": "GPUMASK_PROJ_AIT"})
    b = KernelBuild("regions.cu", "rasterise_tiles", [("GPUMASK_PROJ", "GPUMASK_PROJ_AIT"), ("GPUMASK_TILE", "32")])
    assert a == b and hash(a) == hash(b)
    assert a.defines == (("GPUMASK_PROJ", "GPUMASK_PROJ_AIT"), ("GPUMASK_TILE", "32"))
    assert a.describe() == "regions.cu:rasterise_tiles PROJ=AIT TILE=32"
    assert KernelBuild("wcs.cu", "pix2world_grid", {"GPUMASK_PROJ": np.int32(4)}).defines == (("GPUMASK_PROJ", "4"),)
    with pytest.raises(AttributeError):
        a.name = "other"


@pytest.mark.parametrize("kwargs, error, match", [
    ({"filename": "wcs.cuh"}, ValueError, "filename must be the name of a .cu file.*'wcs.cuh'"),
    ({"filename": "../wcs.cu"}, ValueError, "filename"),
    ({"name": "pix2world-grid"}, ValueError, "C identifier.*'pix2world-grid'"),
    ({"defines": {"gpumask_proj": 1}}, ValueError, "'gpumask_proj' must be an UPPER_CASE"),
    ({"defines": {"GPUMASK_REGION_SKY": True}}, TypeError, "0/1"),
    ({"defines": {"GPUMASK_REGION_SKY": np.bool_(True)}}, TypeError, "0/1"),
    ({"defines": {"GPUMASK_TILE": 3.5}}, TypeError, "GPUMASK_TILE=3.5"),
    ({"defines": {"GPUMASK_PROJ": "A B"}}, ValueError, "one token"),
    ({"defines": [("GPUMASK_TILE", 1), ("GPUMASK_TILE", 2)]}, ValueError, "given twice"),
    ({"defines": "GPUMASK_TILE=32"}, TypeError, "mapping or"),
    ({"defines": [("GPUMASK_TILE",)]}, ValueError, "pairs"),
    ({"options": "-lineinfo"}, TypeError, "tuple of strings"),
    ({"options": ("lineinfo",)}, ValueError, "NVRTC flags"),
    ({"options": ("-DGPUMASK_TILE=16",)}, ValueError, "KernelBuild.defines"),
    ({"options": ("-arch=sm_80",)}, ValueError, "architecture"),
    ({"options": ("-I/tmp",)}, ValueError, "include path"),
    ({"options": ("-std=c++20",)}, ValueError, "C\\+\\+ standard"),
])
def test_kernel_build_rejects_bad_values(kwargs, error, match):
    args = {"filename": "wcs.cu", "name": "pix2world_grid", **kwargs}
    with pytest.raises(error, match=match):
        KernelBuild(**args)


def test_launch_build_functions_check_their_arguments():
    with pytest.raises(ValueError, match="'XYZ'.*choose one of"):
        projection_defines("XYZ")
    with pytest.raises(ValueError, match="'XYZ'"):
        pix2world_build("XYZ")
    with pytest.raises(TypeError, match="sky must be True or False.*'yes'"):
        rr.rasterise_build("yes", "TAN")
    with pytest.raises(ValueError, match="'XYZ'"):
        rr.rasterise_build(True, "XYZ")
    params = WcsParams(code="AIT", crpix=(1, 1), cd=((1, 0), (0, 1)), cd_inv=((1, 0), (0, 1)),
                       euler=(0, 90, 180, 0, 1))
    assert params.kernel_defines() == projection_defines("AIT")
