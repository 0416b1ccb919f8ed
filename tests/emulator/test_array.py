"""The emulated CuPy namespace and array (tests/emulated_cupy) refuse what CuPy refuses.

The emulator is only worth running if it fails where a GPU run would; each test
here is one misuse it must reject, or one CuPy behaviour it must keep (0-d
reductions, logged device->host reads).  The modules are built, not installed, so
these tests run in every pass of the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

import emulated_cupy  # noqa: E402
from emulated_cupy import _namespace  # noqa: E402

MODULES = _namespace.build()
cp = MODULES["cupy"]
ndi = MODULES["cupyx.scipy.ndimage"]
cfft = MODULES["cupyx.scipy.fft"]
HERE = Path(__file__).name


@pytest.fixture
def a():
    return cp.arange(12.0).reshape(3, 4)


# ----------------------------------------------------------------------------- names


def test_namespace_is_exactly_the_recorded_cupy():
    recorded = json.loads(_namespace.NAMES_FILE.read_text())
    assert recorded["cupy_version"].startswith("14.")
    for name, entries in recorded["modules"].items():
        module = MODULES[name]
        public = {n for n in vars(module) if not n.startswith("_")}
        public -= {n for n in public if f"{name}.{n}" in MODULES}  # importable submodules
        assert public <= set(entries), f"{name} exposes names the real CuPy lacks: {public - set(entries)}"
        missing = {n for n, e in entries.items() if e["kind"] != "module"} - public
        assert not missing, f"{name} lacks recorded names {sorted(missing)[:5]}"
    with pytest.raises(AttributeError, match="only the names of the real CuPy"):
        cp.nanpercentile  # NumPy has it, CuPy 14 does not  # noqa: B018


def test_numpy_only_function_on_a_device_array(a):
    # NumPy dispatches to CuPy through __array_function__; where CuPy has no twin it fails
    with pytest.raises(TypeError, match="no implementation found for 'numpy.nanpercentile'"):
        np.nanpercentile(a, 50)
    # a function CuPy does have runs on the device and stays there
    assert isinstance(np.sum(a), emulated_cupy.ndarray)
    # SciPy converts its input with numpy.asarray: refused
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        scipy.ndimage.label(a > 3)


def test_implicit_conversion_is_refused(a):
    for convert in (np.asarray, np.array, lambda x: np.ascontiguousarray(x)):
        with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
            convert(a)


def test_numpy_arrays_are_not_operands(a):
    host = np.ones((3, 4))
    for op in (lambda: a + host, lambda: host * a, lambda: cp.add(a, host), lambda: cp.where(a > 1, host, 0),
               lambda: cp.concatenate([a, host]), lambda: cp.maximum(host, a)):
        with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
            op()
    # scalars, NumPy scalars included, are fine
    assert float((a * np.float64(2) + 1)[0, 1]) == 3.0


def test_unknown_keywords_are_refused(a):
    with pytest.raises(TypeError, match="Wrong arguments"):
        cp.sin(a, where=a > 0)  # ufuncs take out, dtype, casting only
    with pytest.raises(TypeError, match="unexpected keyword argument 'workers'"):
        cfft.rfft2(a, workers=2)  # scipy.fft has it, cupyx.scipy.fft does not
    with pytest.raises(TypeError, match="unexpected keyword argument 'where'"):
        cp.sum(a, where=a > 1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        ndi.binary_dilation(a > 3, bogus=1)
    # CuPy's own keywords pass
    assert cp.sin(a, out=cp.empty_like(a), casting="same_kind").shape == (3, 4)


def test_reductions_and_elements_are_0d_device_arrays(a):
    for value in (a.sum(), cp.max(a), a[1, 2], cp.count_nonzero(a), cp.allclose(a, a), a.mean(axis=None)):
        assert isinstance(value, emulated_cupy.ndarray) and value.ndim == 0, type(value)


def test_every_host_read_is_logged_with_its_line(a):
    with emulated_cupy.host_reads() as reads:
        float(a.sum())
        line = sys._getframe().f_lineno - 1
        a.get()
        cp.asnumpy(a)
        int(a[0, 0])
        bool(a[0, 1] > 0)
        a[0, 0].item()
        a.tolist()
        repr(a)
    assert [r.kind for r in reads] == ["float", "get", "get", "int", "bool", "item", "tolist", "repr"]
    assert reads[0].where.endswith(f"{HERE}:{line}")
    assert all(HERE in r.where for r in reads)
    assert reads[1].nbytes == a.nbytes


def test_host_indices_and_values_are_uploads(a):
    start = len(emulated_cupy.IMPLICIT_UPLOADS)
    a[np.array([0, 2])] = np.zeros(4)
    b = a[[1, 2]]
    kinds = [u.kind for u in emulated_cupy.IMPLICIT_UPLOADS[start:]]
    assert kinds == ["setitem", "index", "index"]
    assert isinstance(b, emulated_cupy.ndarray) and b.shape == (2, 4)


def test_label_takes_its_structure_on_the_host(a):
    structure = scipy.ndimage.generate_binary_structure(2, 2)
    labels, n = ndi.label(a > 5, structure=structure)
    assert isinstance(labels, emulated_cupy.ndarray) and n == 1
    with emulated_cupy.host_reads() as reads:
        ndi.label(a > 5, structure=cp.asarray(structure))  # CuPy reads a device structure back
    assert [r.kind for r in reads] == ["get"]


def test_ufunc_methods_and_views(a):
    target = cp.zeros(3)
    cp.add.at(target, cp.asarray([0, 0, 2]), 1.0)
    assert target.tolist() == [2.0, 0.0, 1.0]
    assert cp.add.reduce(a, axis=0).shape == (4,)
    view = a[:, 1]
    view[...] = -1
    assert float(a[2, 1]) == -1  # basic slices are views, as on the device
    assert not a.T.flags.c_contiguous


def test_device_queries_report_the_configured_device():
    import gpumask

    previous = emulated_cupy.configure(free_memory=3 * 2**30, pool_free_bytes=2**30, total_memory=8 * 2**30,
                                       name="Test GPU", compute_capability="80")
    try:
        assert cp.cuda.Device().mem_info == (3 * 2**30, 8 * 2**30)
        props = cp.cuda.runtime.getDeviceProperties(0)
        assert props["name"] == b"Test GPU" and (props["major"], props["minor"]) == (8, 0)
        assert cp.cuda.Device().compute_capability == "80"
        backend = gpumask.Backend("cupy", cp)
        assert gpumask.backend.memory_available(backend) == 4 * 2**30
        with pytest.raises(cp.cuda.runtime.CUDARuntimeError, match="invalid device ordinal"):
            cp.cuda.Device(1)
        with pytest.raises(TypeError, match="unknown device setting 'colour'"):
            emulated_cupy.configure(colour="green")
    finally:
        emulated_cupy.configure(**vars(previous))


def test_emulator_never_stands_in_for_a_required_gpu():
    env = dict(os.environ, GPUMASK_EMULATE_CUPY="1", GPUMASK_REQUIRE_GPU="1")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly",
         str(TESTS / "test_backend.py"), "-c", str(TESTS.parent / "pyproject.toml"),
         "--rootdir", str(TESTS.parent)],
        capture_output=True, text=True, env=env, check=False, timeout=120)
    assert result.returncode != 0
    assert "a real-GPU run must never use the emulator" in result.stdout + result.stderr


def test_where_refuses_a_python_condition(a):
    """CuPy 14's three-argument where calls ``condition.astype``: a Python bool fails
    there (an H200 run found two such calls that the emulator had let through)."""
    with pytest.raises(AttributeError, match="astype"):
        cp.where(True, a, 0.0)
    out = cp.where(a > 4, a, 0.0)
    assert isinstance(out, emulated_cupy.ndarray)
    np.testing.assert_array_equal(out.get(), np.where(np.arange(12.0).reshape(3, 4) > 4,
                                                      np.arange(12.0).reshape(3, 4), 0.0))
    assert len(cp.where(a > 4)) == 2  # the one-argument form is nonzero()
