"""Map smoothing (gpumask.stats.smooth): against gammapy 2.1's ``WcsNDMap.smooth`` and
against scipy.ndimage / astropy directly, every kernel, boundary mode and argument
gammapy passes on; non-finite pixels; residency; argument errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.ndimage as ndi
from astropy import units as u
from astropy.convolution import Tophat2DKernel
from astropy.coordinates import Angle

import gpumask
from gpumask import Map, MapAxis, WcsGeom
from gpumask.backend import to_host
from gpumask.stats.smooth import smooth, smoothing_kernel

from ..conftest import assert_on_backend

#: |gpumask - reference| / max|map| allowed: float64 FFT round-off (measured <= 3e-15)
TOL = 1e-13
MODES = [{}, {"mode": "constant", "cval": 1.5}, {"mode": "nearest"}, {"mode": "mirror"}, {"mode": "wrap"}]


def _map(data, backend, binsz=0.05, axes=None):
    ny, nx = data.shape[-2:]
    geom = WcsGeom.create(npix=(nx, ny), binsz=binsz, frame="galactic", axes=axes)
    return Map.from_geom(geom, data=backend.xp.asarray(data), unit="cm-2 s-1")


def _rel(got, ref, data):
    return float(np.max(np.abs(to_host(got.data) - ref)) / np.max(np.abs(data)))


def _scipy(img, width_px, kernel, **kw):
    """gammapy's per-plane recipe, written out with scipy/astropy."""
    img = np.asarray(img, dtype=float)
    if kernel == "gauss":
        return ndi.gaussian_filter(img, width_px, **kw)
    if kernel == "disk":
        disk = Tophat2DKernel(width_px)
        disk.normalize("integral")
        return ndi.convolve(img, disk.array, **kw)
    return ndi.uniform_filter(img, width_px, **kw)


# ----------------------------------------------------------------------------- gammapy


@pytest.mark.gammapy
@pytest.mark.parametrize("kernel,width", [
    ("gauss", 0.3), ("gauss", 1.7), ("gauss", "0.2 deg"), ("gauss", 12.0),
    ("disk", 0.5), ("disk", 2.5), ("disk", "0.25 deg"), ("disk", 7.3),
    ("box", 0.7), ("box", 1.5), ("box", 2), ("box", 3.9), ("box", "0.3 deg"), ("box", 25),
])
@pytest.mark.parametrize("kwargs", MODES, ids=lambda k: k.get("mode", "reflect"))
def test_matches_gammapy(backend, rng, gammapy_maps, kernel, width, kwargs):
    data = rng.normal(size=(37, 53)) * 10 + 3
    gmap = gammapy_maps.Map.create(npix=(53, 37), binsz=0.05, frame="galactic")
    gmap.data = data.copy()
    ref = gmap.smooth(width, kernel=kernel, **kwargs).data
    got = smooth(_map(data, backend), width, kernel, **kwargs)
    assert_on_backend(got, backend)
    assert _rel(got, ref, data) < TOL


@pytest.mark.gammapy
@pytest.mark.parametrize("kernel", ["gauss", "disk", "box"])
def test_cube_matches_gammapy(backend, rng, gammapy_maps, kernel):
    """Every plane alike (one batched FFT); gammapy loops over the planes."""
    data = rng.poisson(4.0, size=(3, 40, 30)).astype(np.float32)
    gaxis = gammapy_maps.MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=3)
    gmap = gammapy_maps.Map.create(npix=(30, 40), binsz=0.05, frame="galactic", axes=[gaxis])
    gmap.data = data.copy()
    ref = gmap.smooth("0.12 deg", kernel=kernel).data
    axis = MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=3)
    got = smooth(_map(data, backend, axes=[axis]), "0.12 deg", kernel)
    assert got.data.shape == (3, 40, 30) and got.dtype == np.float64
    assert _rel(got, ref, data) < TOL


@pytest.mark.gammapy
@pytest.mark.data
def test_fermi_gc_counts_cube_matches_gammapy(backend, data_dir, gammapy_maps):
    path = data_dir / "fermi-3fhl-gc" / "fermi-3fhl-gc-counts-cube.fits.gz"
    gmap = gammapy_maps.Map.read(path)
    counts = gpumask.read_map(path, backend=backend.name)
    for kernel, width in (("gauss", "0.2 deg"), ("disk", "0.3 deg"), ("box", "0.25 deg")):
        ref = gmap.smooth(width, kernel=kernel).data
        got = smooth(counts, width, kernel=kernel)
        assert _rel(got, ref, gmap.data) < TOL


@pytest.mark.gammapy
def test_boolean_and_integer_maps_smooth_as_float(backend, rng, gammapy_maps):
    mask = rng.uniform(size=(30, 40)) > 0.4
    gmap = gammapy_maps.Map.create(npix=(40, 30), binsz=0.1, dtype=bool)
    gmap.data = mask.copy()
    ref = gmap.smooth(1.5).data
    got = smooth(_map(mask, backend, binsz=0.1), 1.5)
    assert got.dtype == np.float64
    assert _rel(got, ref, np.ones(1)) < TOL
    counts = rng.poisson(3, size=(30, 40)).astype(np.int32)
    got = smooth(_map(counts, backend), 2.0, kernel="box")
    np.testing.assert_allclose(to_host(got.data), ndi.uniform_filter(counts.astype(float), 2), atol=1e-13)


# ----------------------------------------------------------------------------- scipy / astropy


@pytest.mark.parametrize("kernel,width,kwargs", [
    ("gauss", 2.0, {"truncate": 2.5}),
    ("gauss", 2.0, {"radius": 3}),
    ("gauss", 1.3, {"radius": 0}),
    ("gauss", 2.0, {"truncate": 0.0}),
    ("gauss", 2.0, {"mode": ("wrap", "nearest")}),
    ("gauss", 1.0, {"mode": "grid-constant", "cval": -2.0}),
    ("gauss", 3.0, {"mode": "grid-mirror"}),
    ("gauss", 3.0, {"mode": "grid-wrap"}),
    ("box", 4, {"origin": 1}),
    ("box", 4, {"origin": -2}),
    ("box", 5.9, {"origin": (1, -1), "mode": "constant", "cval": 3.0}),
    ("box", 3, {"mode": ("reflect", "mirror")}),
    ("disk", 2.0, {"origin": 1}),
    ("disk", 3.2, {"origin": (-1, 2), "mode": "wrap"}),
])
def test_matches_scipy_arguments(backend, rng, kernel, width, kwargs):
    data = rng.normal(size=(23, 31))
    ref = _scipy(data, width, kernel, **kwargs)
    got = smooth(_map(data, backend), width, kernel, **kwargs)
    assert _rel(got, ref, data) < TOL


@pytest.mark.parametrize("mode", ["reflect", "mirror", "wrap", "nearest", "constant"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (2, 3), (4, 4)])
@pytest.mark.parametrize("kernel,width", [("gauss", 3.0), ("disk", 6.0), ("box", 9)])
def test_kernel_larger_than_map(backend, rng, mode, shape, kernel, width):
    """The extension repeats (reflect, mirror, wrap) as scipy's does far beyond the edges."""
    data = rng.normal(size=shape)
    ref = _scipy(data, width, kernel, mode=mode, cval=0.25)
    got = smooth(_map(data, backend), width, kernel, mode=mode, cval=0.25)
    assert _rel(got, ref, data) < TOL


def test_angle_width_uses_mean_pixel_scale(backend, rng):
    """gammapy: width / mean(pixel_scales); rectangular pixels too."""
    data = rng.normal(size=(30, 40))
    geom = WcsGeom.create(npix=(40, 30), binsz=(0.1, 0.05), frame="icrs")
    m = Map.from_geom(geom, data=backend.xp.asarray(data))
    sigma_px = 0.3 / 0.075
    ref = ndi.gaussian_filter(data, sigma_px)
    for width in ("0.3 deg", 0.3 * u.deg, Angle("18 arcmin"), u.Quantity(18.0, "arcmin")):
        assert _rel(smooth(m, width), ref, data) < TOL


def test_kernel_arrays(backend):
    """The kernels are scipy's and astropy's arrays."""
    w, anchor, modes, cval = smoothing_kernel("gauss", 1.7)
    radius = int(4.0 * 1.7 + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / 1.7**2 * x**2)
    phi /= phi.sum()
    np.testing.assert_array_equal(w, np.outer(phi, phi))
    assert anchor == (radius, radius) and modes == ("reflect", "reflect") and cval == 0.0
    w, anchor, _, _ = smoothing_kernel("disk", 2.5)
    disk = Tophat2DKernel(2.5)
    disk.normalize("integral")
    np.testing.assert_array_equal(w, disk.array)
    assert anchor == (2, 2)
    # uniform_filter: int(size); the window of an even size reaches size // 2 back
    w, anchor, _, _ = smoothing_kernel("box", 4.9)
    assert w.shape == (4, 4) and anchor == (2, 2) and w.sum() == pytest.approx(1.0)
    w, _, _, _ = smoothing_kernel("box", 1.99)
    assert w.shape == (1, 1)


def test_identity_box_below_two_pixels(backend, rng):
    """scipy's uniform_filter leaves the data alone for sizes below 2 (int(size) <= 1)."""
    data = rng.normal(size=(10, 12))
    out = smooth(_map(data, backend), 1.9, kernel="box")
    np.testing.assert_allclose(to_host(out.data), data, rtol=0, atol=1e-14)


# ----------------------------------------------------------------------------- non-finite pixels


def _normalised_oracle(data, width, mode="reflect", cval=0.0):
    finite = np.isfinite(data)
    num = ndi.gaussian_filter(np.where(finite, data, 0.0), width, mode=mode, cval=cval)
    den = ndi.gaussian_filter(finite.astype(float), width, mode=mode, cval=1.0)
    return np.where(finite, num / den, np.nan)


@pytest.mark.parametrize("mode", ["reflect", "constant"])
def test_nonfinite_pixels_are_left_out(backend, rng, mode):
    data = rng.normal(size=(40, 50)) + 5
    data[10, 10] = np.nan
    data[30:33, 40:44] = np.inf
    data[0, 0] = -np.inf
    with pytest.warns(gpumask.NonFiniteInputWarning, match="14 non-finite"):
        got = to_host(smooth(_map(data, backend), 2.0, mode=mode, cval=2.0).data)
    ref = _normalised_oracle(data, 2.0, mode=mode, cval=2.0)
    bad = ~np.isfinite(data)
    assert np.all(np.isnan(got[bad]))
    assert np.all(np.isfinite(got[~bad]))
    np.testing.assert_allclose(got[~bad], ref[~bad], rtol=0, atol=1e-12)
    # far from the bad pixels nothing changed against the plain filter
    plain = ndi.gaussian_filter(np.where(bad, 0.0, data), 2.0, mode=mode, cval=2.0)
    far = ~ndi.binary_dilation(bad, structure=np.ones((3, 3)), iterations=9)
    np.testing.assert_allclose(got[far], plain[far], atol=1e-12)


def test_all_nonfinite_neighbourhood_is_nan(backend):
    data = np.ones((30, 30))
    data[5:25, 5:25] = np.nan
    with pytest.warns(gpumask.NonFiniteInputWarning):
        got = to_host(smooth(_map(data, backend), 1.0, kernel="box", mode="nearest").data)
    assert np.all(np.isnan(got[5:25, 5:25]))
    np.testing.assert_allclose(got[:5], 1.0, atol=1e-12)


def test_finite_maps_do_not_warn(backend, rng):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        smooth(_map(rng.normal(size=(10, 10)), backend), 1.0)


# ----------------------------------------------------------------------------- residency, metadata


def test_result_stays_on_backend_without_transfers(backend, rng):
    data = rng.normal(size=(2, 30, 40)).astype(np.float32)
    axis = MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=2)
    m = _map(data, backend, axes=[axis])
    m.meta["origin"] = "test"
    before = to_host(m.data).copy()
    with gpumask.count_transfers() as counter:
        out = smooth(m, "0.1 deg", kernel="disk")
    assert counter.calls == 0 and counter.device_calls == 0
    assert_on_backend(out, backend)
    assert out.geom == m.geom and out.unit == m.unit and out.meta == {"origin": "test"}
    np.testing.assert_array_equal(to_host(m.data), before)


def test_map_method_when_present(backend, rng):
    if not hasattr(Map, "smooth"):
        pytest.skip("Map.smooth is not there yet")
    m = _map(rng.normal(size=(20, 25)), backend)
    a = smooth(m, "0.15 deg", kernel="disk", mode="nearest")
    b = m.smooth("0.15 deg", kernel="disk", mode="nearest")
    np.testing.assert_array_equal(to_host(a.data), to_host(b.data))


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("width", [0, -1.0, np.nan, np.inf, "3", "1 m", "0 deg", [1, 2], True, None,
                                   u.Quantity([0.1, 0.2], "deg")])
def test_bad_width(width):
    m = _map(np.zeros((5, 5)), gpumask.get_backend("numpy"))
    with pytest.raises(ValueError, match="width"):
        smooth(m, width)


@pytest.mark.parametrize("kernel,kwargs,match", [
    ("gaussian", {}, "Invalid kernel"),
    (None, {}, "Invalid kernel"),
    ("gauss", {"sigma": 2}, "does not take"),
    ("gauss", {"output": np.float32}, "does not take"),
    ("disk", {"truncate": 3.0}, "does not take"),
    ("gauss", {"order": 1}, "order must be 0"),
    ("gauss", {"radius": -1}, "radius"),
    ("gauss", {"radius": 2.5}, "radius"),
    ("gauss", {"truncate": -1}, "truncate"),
    ("gauss", {"mode": "edge"}, "mode must be one of"),
    ("gauss", {"mode": ("reflect",)}, "mode must be one of"),
    ("gauss", {"cval": np.nan}, "cval"),
    ("box", {"origin": 5}, "origin"),
    ("box", {"origin": 1.5}, "origin"),
    ("disk", {"origin": (0, 0, 0)}, "origin"),
])
def test_bad_arguments(kernel, kwargs, match):
    m = _map(np.zeros((5, 5)), gpumask.get_backend("numpy"))
    with pytest.raises(ValueError, match=match):
        smooth(m, 3.0, kernel, **kwargs)


def test_needs_a_map():
    with pytest.raises(TypeError, match="gpumask Map"):
        smooth(np.zeros((5, 5)), 1.0)


@pytest.mark.gpu
def test_device_reads_on_the_emulated_gpu(device_reads, rng):
    """Clean map: one 1-byte read (the non-finite flag).  With NaN: the flag and
    the count of bad pixels (2 integers), no map data."""
    backend = gpumask.get_backend("cupy")
    data = rng.normal(size=(2, 30, 40))
    m = _map(data, backend, axes=[MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=2)])
    device_reads.clear()
    smooth(m, "0.1 deg", kernel="gauss", mode="constant", cval=1.0)
    assert [r.nbytes for r in device_reads] == [1]
    data[1, 5, 5] = np.nan
    m = _map(data, backend, axes=[MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=2)])
    device_reads.clear()
    with pytest.warns(gpumask.NonFiniteInputWarning):
        smooth(m, 2.0, kernel="box")
    assert [r.nbytes for r in device_reads] == [1, 2 * 8]


@pytest.mark.gammapy
def test_gammapy_map_is_accepted(gammapy_maps, rng):
    data = rng.normal(size=(20, 30))
    gmap = gammapy_maps.Map.create(npix=(30, 20), binsz=0.05, frame="galactic")
    gmap.data = data.copy()
    with gpumask.use_backend("numpy"):
        out = smooth(gmap, "0.1 deg", kernel="disk")
    assert isinstance(out, Map)
    assert _rel(out, gmap.smooth("0.1 deg", kernel="disk").data, data) < TOL
