"""FFT convolution: against scipy (fftconvolve and direct ndimage convolution),
batching, the kernel-transform cache, precision, and the angular kernels against
astropy's kernels as gammapy builds them."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
from astropy.convolution import Ring2DKernel, Tophat2DKernel

import gpumask
from gpumask import WcsGeom
from gpumask.stats import convolution as cv
from gpumask.backend import to_host

from ..conftest import assert_on_backend


def _host(a):
    return to_host(a)


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (64, 64), (101, 37), (250, 250)])
@pytest.mark.parametrize("kshape", [(1, 1), (3, 3), (9, 9), (4, 6), (15, 7), (31, 31)])
def test_matches_scipy_fftconvolve_same(backend, rng, shape, kshape):
    data = rng.normal(size=shape)
    kernel = rng.uniform(size=kshape)
    got = cv.convolve(backend.xp.asarray(data), kernel)
    assert_on_backend(got, backend)
    expected = scipy.signal.fftconvolve(data, kernel, mode="same")
    scale = np.abs(data).sum() * np.abs(kernel).max()
    np.testing.assert_allclose(_host(got), expected, rtol=0, atol=1e-13 * scale)


@pytest.mark.parametrize("kshape", [(3, 3), (9, 9), (15, 7)])
def test_matches_direct_zero_padded_convolution(backend, rng, kshape):
    """Outside the image counts as zero (ndimage mode='constant', cval=0)."""
    data = rng.poisson(3.0, size=(60, 45)).astype(float)
    kernel = rng.uniform(size=kshape)
    expected = scipy.ndimage.convolve(data, kernel, mode="constant", cval=0.0)
    got = _host(cv.convolve(backend.xp.asarray(data), kernel))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-10)


def test_leading_axes_are_batched(backend, rng):
    data = rng.normal(size=(2, 3, 40, 30))
    kernel = rng.uniform(size=(5, 5))
    got = _host(cv.convolve(backend.xp.asarray(data), kernel))
    for idx in np.ndindex(2, 3):
        expected = scipy.signal.fftconvolve(data[idx], kernel, mode="same")
        np.testing.assert_allclose(got[idx], expected, atol=1e-11)


def test_one_kernel_per_plane(backend, rng):
    data = rng.normal(size=(4, 30, 30))
    kernels = rng.uniform(size=(4, 7, 7))
    got = _host(cv.convolve(backend.xp.asarray(data), kernels))
    for i in range(4):
        expected = scipy.signal.fftconvolve(data[i], kernels[i], mode="same")
        np.testing.assert_allclose(got[i], expected, atol=1e-11)


def test_map_in_map_out(backend):
    geom = WcsGeom.create(npix=(40, 30), binsz=0.1, frame="galactic")
    m = gpumask.Map.from_geom(geom, backend=backend.name, dtype=float, unit="ct")
    m.data[15, 20] = 1.0
    kernel = cv.disk_kernel("0.3 deg", geom=geom)
    # 0.3 / 0.1 = 2.9999999999999996 in floating point: the 4 tips at 3 px stay out,
    # exactly as in gammapy (no rounding of r_px)
    assert kernel.sum() == 25
    out = cv.convolve(m, kernel)
    assert isinstance(out, gpumask.Map)
    assert out.geom == geom and str(out.unit) == "ct"
    assert_on_backend(out, backend)
    assert float(_host(out.data).sum()) == pytest.approx(25.0)


def test_bool_masks_convolve_as_numbers(backend, rng):
    mask = rng.uniform(size=(30, 30)) < 0.2
    got = _host(cv.convolve(backend.xp.asarray(mask), np.ones((3, 3))))
    expected = scipy.ndimage.convolve(mask.astype(float), np.ones((3, 3)), mode="constant")
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_no_host_copy(backend, rng):
    data = backend.xp.asarray(rng.normal(size=(3, 50, 50)))
    kernel = cv.ring_kernel("0.2 deg", "0.1 deg", binsz=0.02)
    with gpumask.count_transfers() as counter:
        out = cv.convolve(data, kernel)
        cv.convolve(out, kernel)
    assert counter.calls == 0


def test_float32_on_request(backend, rng):
    data = rng.poisson(20.0, size=(200, 200)).astype(float)
    kernel = cv.disk_kernel("0.1 deg", binsz=0.02)
    exact = _host(cv.convolve(backend.xp.asarray(data), kernel))
    single = cv.convolve(backend.xp.asarray(data), kernel, dtype=np.float32)
    assert single.dtype == np.float32
    # round-off of float32 transforms: ~1e-7 of the image total per pixel
    err = np.abs(_host(single) - exact).max()
    assert err < 1e-6 * data.sum()
    assert err > 0  # it is really single precision


def test_kernel_transform_is_cached(backend, rng):
    cv.clear_kernel_cache()
    kernel = cv.disk_kernel("0.2 deg", binsz=0.02)
    data = backend.xp.asarray(rng.normal(size=(100, 100)))
    for _ in range(3):
        cv.convolve(data, kernel)
    assert len(cv._CACHE) == 1
    cv.convolve(data, kernel.copy())  # equal contents: same entry
    assert len(cv._CACHE) == 1
    cv.convolve(backend.xp.asarray(rng.normal(size=(120, 100))), kernel)  # other FFT shape
    cv.convolve(data, kernel, dtype=np.float32)
    assert len(cv._CACHE) == 3


def test_cache_respects_its_byte_budget(rng, monkeypatch):
    cv.clear_kernel_cache()
    monkeypatch.setattr(cv, "KERNEL_CACHE_BYTES", 200_000)
    data = rng.normal(size=(100, 100))
    for r in (0.1, 0.12, 0.14, 0.16, 0.18):
        cv.convolve(data, cv.disk_kernel(r, binsz=0.02))
    assert sum(v[0].nbytes for v in cv._CACHE.values()) <= 200_000
    assert 1 <= len(cv._CACHE) < 5
    cv.clear_kernel_cache()


@pytest.mark.parametrize("bad, match", [
    (dict(kernel=np.ones(3)), "2 or more dimensions"),
    (dict(kernel=np.ones((2, 3, 3))), "leading shape"),
    (dict(dtype=np.int32), "float64 or float32"),
])
def test_bad_input(bad, match):
    kwargs = dict(kernel=np.ones((3, 3)))
    kwargs.update(bad)
    with pytest.raises(ValueError, match=match):
        cv.convolve(np.zeros((5, 10, 10)), **kwargs)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        cv.convolve(np.zeros(10), np.ones((3, 3)))


# ----------------------------------------------------------------------------- kernels


def test_disk_kernel_gammapy_seed_case():
    """0.4 deg at 0.1 deg/px: 9x9 with 49 ones (gammapy-facts)."""
    k = cv.disk_kernel("0.4 deg", binsz=0.1)
    assert k.shape == (9, 9) and k.sum() == 49 and k.max() == 1


@pytest.mark.parametrize("seed", range(5))
def test_disk_kernel_is_astropy_tophat_peak_normalised(seed):
    """Same footprint as astropy's Tophat2DKernel(r_px) / max, r_px computed as
    gammapy's ExcessMapEstimator does (radius.deg / mean |cdelt|)."""
    rng = np.random.default_rng(seed)
    geom = WcsGeom.create(npix=(50, 40), binsz=float(rng.uniform(0.01, 0.2)))
    for radius in rng.uniform(0.02, 1.0, 20):
        r_px = radius / np.mean(np.abs(geom.wcs.wcs.cdelt))
        ref = Tophat2DKernel(r_px).array
        np.testing.assert_array_equal(cv.disk_kernel(radius, geom=geom), ref / ref.max())


@pytest.mark.parametrize("r_in, width", [(0.5, 0.2), (0.3, 0.06), (1.0, 0.5), (0.1, 0.02)])
def test_ring_kernel_is_astropy_ring_peak_normalised(r_in, width):
    k = cv.ring_kernel(r_in, width, binsz=0.02)
    ref = Ring2DKernel(r_in / 0.02, width / 0.02)
    ref.normalize("peak")
    np.testing.assert_array_equal(k, ref.array)


def test_gaussian_and_box_kernels():
    g = cv.gaussian_kernel("0.1 deg", binsz=0.02)
    assert g.shape == (41, 41) and g.sum() == pytest.approx(1.0)
    y, x = np.indices(g.shape) - 20
    assert np.sum(g * x**2) == pytest.approx(25.0, rel=1e-3)  # sigma = 5 px
    b = cv.box_kernel("0.1 deg", binsz=0.02)
    assert b.shape == (5, 5) and b.min() == 1


def test_kernel_arguments_are_checked():
    with pytest.raises(ValueError, match="exactly one of geom= or binsz="):
        cv.disk_kernel("0.1 deg")
    with pytest.raises(ValueError, match="radius"):
        cv.disk_kernel("-0.1 deg", binsz=0.02)
    with pytest.raises(ValueError, match="width"):
        cv.ring_kernel("0.1 deg", 0, binsz=0.02)


def test_map_convolve_method(backend):
    rng = np.random.default_rng(5)
    m = gpumask.Map.create(npix=(30, 20), binsz=0.1, backend=backend.name)
    m.data = backend.asarray(rng.uniform(size=(20, 30)))
    k = gpumask.stats.convolution.disk_kernel("0.3 deg", geom=m.geom)
    out = m.convolve(k)
    assert out.geom == m.geom and out.backend.name == backend.name
    from scipy.signal import fftconvolve

    np.testing.assert_allclose(gpumask.to_host(out.data), fftconvolve(gpumask.to_host(m.data), k, mode="same"), atol=1e-12)


# ----------------------------------------------------------------------------- Convolver


def test_convolver_matches_convolve_for_every_kernel(backend, rng):
    data = backend.xp.asarray(rng.normal(size=(2, 45, 61)))
    kernels = [
        cv.ring_kernel(r, 1.5, binsz=1) for r in (0.0, 1.0, 2.5, 4.0)
    ] + [rng.uniform(size=(2, 4)), rng.uniform(size=(5, 3)), cv.disk_kernel(3, binsz=1)]
    shape = (max(k.shape[0] for k in kernels), max(k.shape[1] for k in kernels))
    conv = cv.Convolver(data, shape)
    many = conv.convolve_many(kernels)
    assert many.shape == (len(kernels), 2, 45, 61)
    assert_on_backend(many, backend)
    for i, k in enumerate(kernels):
        ref = scipy.signal.fftconvolve(_host(data), k[None], mode="same")
        np.testing.assert_allclose(_host(many[i]), ref, rtol=0, atol=1e-11)
        np.testing.assert_allclose(_host(conv.convolve(k)), ref, rtol=0, atol=1e-11)


def test_convolver_checks_its_kernels(rng):
    conv = cv.Convolver(rng.normal(size=(20, 20)), (5, 5))
    with pytest.raises(ValueError, match="does not fit"):
        conv.convolve(np.ones((7, 7)))
    with pytest.raises(ValueError, match="at least one"):
        conv.convolve_many([])
    with pytest.raises(ValueError, match="float64 or float32"):
        cv.Convolver(rng.normal(size=(20, 20)), (5, 5), dtype=np.int32)
    assert conv.plane_bytes(3) == 3 * conv.plane_bytes(1) > 0


def test_fft_threads_follow_the_environment(monkeypatch):
    """NumPy FFT threads: GPUMASK_FFT_THREADS, else OMP_NUM_THREADS (set to 1 in dask
    workers), else every core."""
    from gpumask.stats.convolution import fft_threads

    monkeypatch.delenv("GPUMASK_FFT_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert fft_threads() == -1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert fft_threads() == 1
    monkeypatch.setenv("GPUMASK_FFT_THREADS", "3")
    assert fft_threads() == 3
    monkeypatch.setenv("GPUMASK_FFT_THREADS", "many")
    with pytest.raises(ValueError, match="GPUMASK_FFT_THREADS='many'"):
        fft_threads()
