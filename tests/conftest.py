"""Shared fixtures: the backend fixture every test runs over, data paths, oracles."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import gpumask
from gpumask.backend import cupy_status, get_backend

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GPUMASK_TEST_DATA", REPO.parent / "shared" / "data"))


def _cupy_ok():
    return cupy_status()[0]


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
