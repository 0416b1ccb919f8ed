"""Backend selection, errors, import hygiene and transfer counting."""

from __future__ import annotations

import ast
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import gpumask
from gpumask import backend as bk

PACKAGE = Path(gpumask.__file__).resolve().parent


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv("GPUMASK_BACKEND", raising=False)
    yield monkeypatch


@pytest.fixture
def fake_cupy(monkeypatch):
    """A stand-in ``cupy`` module so selection logic is testable without a GPU.

    ``available`` controls what ``cupy.cuda.is_available()`` answers.  Its
    ``ndarray`` is a numpy subclass, so "device" arrays can be made cheaply.
    """
    if bk.cupy_status()[0]:
        pytest.skip("a real cupy with a device is present")

    class FakeDeviceArray(np.ndarray):
        def get(self):
            return np.asarray(self).view(np.ndarray).copy()

    state = {"available": True}
    module = types.ModuleType("cupy")
    module.__version__ = "0.0-fake"
    module.ndarray = FakeDeviceArray
    module.cuda = types.SimpleNamespace(is_available=lambda: state["available"])
    module.asarray = lambda a, dtype=None: np.asarray(a, dtype=dtype).view(FakeDeviceArray)
    module.zeros = lambda shape, dtype=float: np.zeros(shape, dtype).view(FakeDeviceArray)
    monkeypatch.setitem(sys.modules, "cupy", module)
    bk.cupy_status.cache_clear()
    bk._make_backend.cache_clear()
    yield state
    bk.cupy_status.cache_clear()
    bk._make_backend.cache_clear()


# ---------------------------------------------------------------------- selection


def test_numpy_backend_carries_modules():
    be = bk.get_backend("numpy")
    import scipy.fft
    import scipy.ndimage

    assert be.name == "numpy" and be.xp is np
    assert be.fft is scipy.fft and be.ndimage is scipy.ndimage
    assert bk.get_backend(be) is be
    assert bk.get_backend("NumPy") is be


@pytest.mark.parametrize("bad", ["torch", "", 3, b"numpy"])  # None: the active backend
def test_unknown_backend_names_the_value(bad):
    with pytest.raises(bk.BackendError, match="backend"):
        bk.get_backend(bad)


def test_cupy_unavailable_error_says_why():
    if bk.cupy_status()[0]:
        pytest.skip("cupy works here")
    with pytest.raises(bk.BackendError, match="cupy.*(cannot be imported|no CUDA device|CUDA failed)"):
        bk.get_backend("cupy")


def test_selection_order_explicit_context_env_auto(clean_env):
    assert bk.resolve_backend().name == ("cupy" if bk.cupy_status()[0] else "numpy")
    assert "auto" in bk.selection_reason()[1]
    clean_env.setenv("GPUMASK_BACKEND", "numpy")
    assert bk.resolve_backend().name == "numpy"
    assert bk.selection_reason() == ("numpy", "GPUMASK_BACKEND=numpy")
    with gpumask.use_backend("numpy"):
        assert bk.selection_reason()[1] == "active gpumask.use_backend() context"
        assert bk.selection_reason("numpy")[1] == "explicit backend= argument"


def test_env_invalid_value_is_named(clean_env):
    clean_env.setenv("GPUMASK_BACKEND", "gpu-please")
    with pytest.raises(bk.BackendError, match="gpu-please"):
        bk.resolve_backend()


def test_env_auto_and_blank(clean_env):
    clean_env.setenv("GPUMASK_BACKEND", "auto")
    assert bk.selection_reason()[1].startswith("GPUMASK_BACKEND=auto")
    clean_env.setenv("GPUMASK_BACKEND", "  ")
    assert "unset" in bk.selection_reason()[1]


def test_use_backend_nests_and_restores(clean_env):
    with gpumask.use_backend("numpy") as outer:
        assert outer.name == "numpy"
        with gpumask.use_backend("numpy"):
            pass
        assert bk.resolve_backend() is outer
    assert bk._context_backend.get() is None


def test_gpu_devices_lists_what_cupy_sees(fake_cupy):
    props = [
        {"name": b"NVIDIA H100 80GB HBM3", "totalGlobalMem": 80 * 2**30, "major": 9, "minor": 0},
        {"name": "NVIDIA A100", "totalGlobalMem": 40 * 2**30, "major": 8, "minor": 0},
    ]
    sys.modules["cupy"].cuda.runtime = types.SimpleNamespace(
        getDeviceCount=lambda: len(props), getDeviceProperties=lambda i: props[i]
    )
    assert bk.gpu_devices() == [
        {"id": 0, "name": "NVIDIA H100 80GB HBM3", "memory_gib": 80.0, "compute_capability": "9.0"},
        {"id": 1, "name": "NVIDIA A100", "memory_gib": 40.0, "compute_capability": "8.0"},
    ]
    assert [g["name"] for g in gpumask.info()["gpus"]] == ["NVIDIA H100 80GB HBM3", "NVIDIA A100"]
    fake_cupy["available"] = False
    bk.cupy_status.cache_clear()
    assert bk.gpu_devices() == []


def test_gpu_devices_empty_without_cupy():
    if bk.cupy_status()[0]:
        pytest.skip("cupy works here")
    assert bk.gpu_devices() == []


def test_context_beats_env(fake_cupy, clean_env):
    clean_env.setenv("GPUMASK_BACKEND", "cupy")
    assert bk.resolve_backend().name == "cupy"
    with gpumask.use_backend("numpy"):
        assert bk.resolve_backend().name == "numpy"
        assert bk.resolve_backend("cupy").name == "cupy"


def test_auto_picks_cupy_when_a_device_works(fake_cupy, clean_env):
    assert bk.resolve_backend().name == "cupy"
    name, reason = bk.selection_reason()
    assert name == "cupy" and "CUDA device" in reason


def test_auto_falls_back_when_no_device(fake_cupy, clean_env):
    fake_cupy["available"] = False
    assert bk.resolve_backend().name == "numpy"
    with pytest.raises(bk.BackendError, match="no CUDA device"):
        bk.get_backend("cupy")


def test_maps_created_in_context_land_there(fake_cupy, clean_env):
    with gpumask.use_backend("cupy"):
        m = gpumask.Map.create(npix=4, binsz=1)
    assert m.backend.name == "cupy" and bk.is_device_array(m.data)
    assert gpumask.Map.create(npix=4, binsz=1, backend="numpy").backend.name == "numpy"


def test_mixed_backends_raise_naming_the_fix(fake_cupy):
    host = gpumask.Map.create(npix=4, binsz=1, backend="numpy")
    dev = host.to_backend("cupy")
    assert dev.backend.name == "cupy"
    for op in (lambda: host + dev, lambda: (host > 0) & (dev > 0), lambda: host * dev.data):
        with pytest.raises(bk.MixedBackendError, match="to_backend"):
            op()
    with pytest.raises(bk.MixedBackendError, match="to_host"):
        bk.to_device(dev.data, "numpy")


def test_backend_pickles_by_name():
    import pickle

    assert pickle.loads(pickle.dumps(bk.get_backend("numpy"))) is bk.get_backend("numpy")


# ---------------------------------------------------------------------- import hygiene


def test_import_gpumask_does_not_import_cupy():
    code = (
        "import sys, gpumask, gpumask.sky.geom, gpumask.sky.maps, gpumask.sky.io;"
        "m = gpumask.Map.create(npix=3, binsz=1, backend='numpy');"
        "assert 'cupy' not in sys.modules, sorted(k for k in sys.modules if 'cupy' in k)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------- the one exit


_BANNED_ATTRS = {"get": 0, "asnumpy": None, "item": 0, "tolist": 0}


def test_device_to_host_calls_only_in_the_funnel():
    """Only gpumask.backend may call .get()/asnumpy/.item()/.tolist(); elsewhere a
    line must be marked '# host-ok' (host data only) to pass."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "backend.py":
            continue
        source = path.read_text()
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                name = node.func.attr
                if name in _BANNED_ATTRS:
                    nargs = _BANNED_ATTRS[name]
                    if nargs is not None and (len(node.args) + len(node.keywords)) != nargs:
                        continue  # dict.get(key) and friends
                    if "# host-ok" not in lines[node.lineno - 1]:
                        offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} .{name}()")
    assert not offenders, offenders


# ---------------------------------------------------------------------- counting


def test_to_host_counts_every_call():
    a = np.arange(10.0)
    with gpumask.count_transfers() as outer:
        with gpumask.count_transfers() as inner:
            out = gpumask.to_host(a)
        gpumask.to_host(a, dtype=np.float32)
    assert out is a
    assert inner.calls == 1 and outer.calls == 2
    assert outer.device_calls == 0 and outer.device_bytes == 0
    assert bk.transfer_stats().calls >= 2


def test_device_transfers_count_bytes(fake_cupy):
    dev = bk.to_device(np.ones((4, 5)), "cupy")
    with gpumask.count_transfers() as c:
        host = gpumask.to_host(dev)
    assert type(host) is np.ndarray
    assert (c.calls, c.device_calls, c.device_bytes) == (1, 1, 160)


def test_uploads_are_counted_separately(fake_cupy):
    with gpumask.count_transfers() as c:
        bk.to_device(np.ones(8), "cupy")
    assert c.calls == 0 and c.uploads == 1 and c.upload_bytes == 64


def test_read_flag_counts_apart_from_copies(backend):
    xp = backend.xp
    with gpumask.count_transfers() as c:
        assert bk.read_flag(xp.any(xp.asarray([False, True]))) is True
        assert bk.read_flag(xp.asarray(False)) is False
    assert c.flags == 2 and c.calls == 0 and c.device_calls == 0


def test_read_flag_reads_one_device_value(fake_cupy):
    dev = bk.to_device(np.array(True), "cupy")
    with gpumask.count_transfers() as c:
        assert bk.read_flag(dev) is True
    assert c.flags == 1 and c.calls == 0
    with pytest.raises(ValueError, match="one value"):
        bk.read_flag(bk.to_device(np.ones(3, bool), "cupy"))


@pytest.mark.gpu
def test_real_cupy_round_trip_counts():
    import cupy

    dev = bk.to_device(np.arange(12.0).reshape(3, 4), "cupy")
    assert isinstance(dev, cupy.ndarray)
    with gpumask.count_transfers() as c:
        back = gpumask.to_host(dev)
    np.testing.assert_array_equal(back, np.arange(12.0).reshape(3, 4))
    assert c.device_calls == 1 and c.device_bytes == 96


def test_info_reports_backend_and_reason(clean_env):
    report = gpumask.info()
    text = str(report)
    assert report["backend"] in ("numpy", "cupy")
    assert report["backend_reason"] in text and "numpy" in text and "CUPY_CACHE_DIR" in text
    assert report["packages"]["numpy"] == np.__version__
    if not bk.cupy_status()[0]:
        assert report["gpus"] == [] and "cupy" in report["cupy_status"]


def test_backend_fixture_runs_on_each(backend):
    arr = backend.asarray([1.0, 2.0])
    assert bk.backend_of(arr).name == backend.name
