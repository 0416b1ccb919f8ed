"""Shared fixtures: the backend fixture every test runs over, data paths, oracles."""

from __future__ import annotations

import os
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


@pytest.fixture
def rng():
    return np.random.default_rng(20261121)


def assert_on_backend(array_or_map, backend):
    """Results must come back on the input's backend (device residency)."""
    assert gpumask.backend.backend_of(array_or_map).name == backend.name
