"""Shared fixtures: the backend fixture every test runs over, data paths, oracles."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gpumask
from gpumask.backend import cupy_status, get_backend

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GPUMASK_TEST_DATA", REPO.parent / "shared" / "data"))
EMULATED = os.environ.get("GPUMASK_EMULATE_CUPY", "") not in ("", "0")

if EMULATED:
    # CPU CI's second pass: the gpu-marked tests run on the emulated CuPy
    # (tests/emulated_cupy).  Installed before any test can import cupy; never
    # together with GPUMASK_REQUIRE_GPU, so ci/test-gpu.sh always tests real CuPy.
    if os.environ.get("GPUMASK_REQUIRE_GPU"):
        raise pytest.UsageError("GPUMASK_EMULATE_CUPY and GPUMASK_REQUIRE_GPU exclude each other: "
                                "a real-GPU run must never use the emulator")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import emulated_cupy

    emulated_cupy.install()
    cupy_status.cache_clear()


def _cupy_ok():
    return cupy_status()[0]


def pytest_report_header(config):
    if EMULATED:
        return ["cupy: EMULATED on the CPU (tests/emulated_cupy); only a real GPU run proves "
                "rounding, concurrency and speed"]
    return [f"cupy: {cupy_status()[1]}"]


def pytest_configure(config):
    if os.environ.get("GPUMASK_TEST_INSTALLED"):
        # The CPU suite runs from a temp dir against the installed wheel.
        assert "site-packages" in gpumask.__file__, f"tests import gpumask from {gpumask.__file__}"


def pytest_collection_modifyitems(config, items):
    require_gpu = bool(os.environ.get("GPUMASK_REQUIRE_GPU"))
    if _cupy_ok():
        return
    if require_gpu:
        raise pytest.UsageError(f"GPUMASK_REQUIRE_GPU is set but {cupy_status()[1]}")
    skip = pytest.mark.skip(reason=f"no GPU: {cupy_status()[1]}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def backend(request):
    """Every available backend; cupy cases carry the ``gpu`` marker."""
    return get_backend(request.param)


@pytest.fixture
def device_reads():
    """The device->host reads logged inside the test (emulated CuPy only; skips
    elsewhere): an ``emulated_cupy.ReadLog`` of ``Transfer`` (kind, nbytes, calling
    line); ``.clear()`` forgets the reads so far.  Mark such tests ``gpu``."""
    if not EMULATED:
        pytest.skip("device reads are logged by the emulated CuPy only")
    with emulated_cupy.host_reads() as reads:
        yield reads


@pytest.fixture
def emulated_device():
    """``emulated_cupy.configure`` (what the emulated device reports), restored
    after the test; skips unless the emulated CuPy runs."""
    if not EMULATED:
        pytest.skip("needs the emulated CuPy (GPUMASK_EMULATE_CUPY=1)")
    previous = emulated_cupy.configure()
    yield emulated_cupy.configure
    emulated_cupy.configure(**vars(previous))


@pytest.fixture
def xp(backend):
    return backend.xp


@pytest.fixture
def data_dir():
    if not DATA.is_dir():
        pytest.skip(f"shared data not found at {DATA} (set GPUMASK_TEST_DATA)")
    return DATA


@pytest.fixture
def gammapy_maps():
    """gammapy.maps from gammapy 2.1 (the oracle), or skip."""
    return pytest.importorskip("gammapy.maps")


@pytest.fixture(scope="session")
def compile_harness(tmp_path_factory):
    """Compile tests/cpu_harness/NAME.cpp (device math built for the CPU) with the
    kernels' headers and strict flags; returns the executable. Skips without g++."""
    from gpumask._kernels import kernel_dir

    built = {}

    def compile_(name):
        if name not in built:
            source = REPO / "tests" / "cpu_harness" / f"{name}.cpp"
            compiler = shutil.which("g++") or shutil.which("c++")
            if compiler is None or not source.is_file():
                pytest.skip("no C++ compiler or harness source")
            exe = tmp_path_factory.mktemp(name) / name
            result = subprocess.run(
                [compiler, "-O2", "-std=c++17", "-ffp-contract=off", "-Wall", "-Wextra",
                 "-Werror", f"-I{kernel_dir()}", str(source), "-o", str(exe)],
                check=False, capture_output=True, text=True)
            assert result.returncode == 0, result.stderr
            built[name] = exe
        return built[name]

    return compile_


@pytest.fixture
def rng():
    return np.random.default_rng(20261121)


def assert_on_backend(array_or_map, backend):
    """Results must come back on the input's backend (device residency)."""
    assert gpumask.backend.backend_of(array_or_map).name == backend.name
