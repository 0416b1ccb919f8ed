"""Morphology against scipy.ndimage, scikit-image, gammapy 2.1 and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
from astropy import units as u

import gpumask
from gpumask import Map, MapAxis, WcsGeom
from gpumask.masks import morphology as mo
from gpumask.stats.convolution import convolve, gaussian_kernel

from ..conftest import assert_on_backend

RADII = (0, 0.5, 1, 1.5, 2, 5, 7.3, 25)
DENSITIES = (0.002, 0.03, 0.3, 0.7, 0.97)
SHAPES = ((1, 1), (1, 37), (29, 1), (17, 23), (40, 31), (64, 64))


def _host(x):
    return gpumask.to_host(x.data if isinstance(x, Map) else x)


def _dev(backend, array):
    return gpumask.to_device(np.asarray(array), backend)


def _masks(rng, shapes=SHAPES, densities=DENSITIES):
    for shape in shapes:
        for density in densities:
            yield rng.uniform(size=shape) < density


def _disk(r2):
    """Brute-force square-pixel disk i^2 + j^2 <= r2."""
    h = math.isqrt(int(math.floor(r2)))
    i, j = np.mgrid[-h : h + 1, -h : h + 1]
    return i * i + j * j <= r2


def _per_plane(func, data, *args, **kwargs):
    out = np.empty(data.shape, dtype=bool)
    for idx in np.ndindex(*data.shape[:-2]):
        out[idx] = func(data[idx], *args, **kwargs)
    return out


@pytest.fixture
def geom():
    return WcsGeom.create(npix=(41, 33), binsz=0.02, frame="galactic", skydir=(10, 1))


# ----------------------------------------------------------------------------- footprints


@pytest.mark.parametrize("r", RADII + (3, 4, 10))
def test_disk_footprint_is_the_inclusive_integer_disk(r):
    got = mo.footprint(r)
    np.testing.assert_array_equal(got, _disk(r * r))
    mid = got.shape[0] // 2
    assert got.shape[0] % 2 == 1 and got[mid, 0] and got[mid, -1]  # the tips are inside


def test_angle_width_snaps_float_noise(geom):
    # 0.1 / 0.02 is 5.000000000000001 in floats: still the r = 5 disk with its 4 tips
    for width in ("0.1 deg", 0.1 * u.deg, "6 arcmin", (0.1 + 1e-13) * u.deg, (0.1 - 1e-13) * u.deg):
        fp = mo.footprint(width, geom=geom)
        np.testing.assert_array_equal(fp, _disk(25))
    assert mo.footprint("0.0999 deg", geom=geom).sum() == 81 - 12  # i^2 + j^2 = 25: 12 offsets


def test_non_square_pixel_footprint_brute_force():
    geom = WcsGeom.create(npix=(30, 20), binsz=(0.02, 0.03), frame="galactic")
    sx, sy = geom.pixel_scales.deg
    assert (sx, sy) == pytest.approx((0.02, 0.03))
    for w in (0.03, 0.05, 0.1, 0.17):
        fp = mo.footprint(f"{w} deg", geom=geom)
        hy, hx = (s // 2 for s in fp.shape)
        i, j = np.mgrid[-hy : hy + 1, -hx : hx + 1]
        np.testing.assert_array_equal(fp, (i * sy) ** 2 + (j * sx) ** 2 <= w * w * (1 + 1e-9))
        assert fp[hy].all() and fp[:, hx].all()  # no empty border rows or columns
    box = mo.footprint("0.1 deg", kernel="box", geom=geom)
    assert box.shape == (3, 5)  # |dy| <= 0.05 deg: 1 row each side; |dx|: 2 columns


@pytest.mark.parametrize("width, side", [(0, 1), (1, 1), (2, 3), (2.9, 3), (4, 5), (5, 5), (10.2, 11)])
def test_box_footprint_has_odd_side(width, side):
    assert mo.footprint(width, kernel="box").shape == (side, side)


@pytest.mark.parametrize("width, radius", [(1, 1), (2, 3), (2.5, 3), (3, 3), (10, 11), (0, 1)])
def test_gammapy_rounding_radius(width, radius):
    np.testing.assert_array_equal(mo.footprint(width, gammapy_rounding=True), _disk(radius * radius))
    side = mo.footprint(width, kernel="box", gammapy_rounding=True).shape
    assert side == (radius, radius)


# ----------------------------------------------------------------------------- dilation / erosion


def test_dilate_erode_equal_scipy_on_random_masks(backend, rng):
    """Every radius, density and shape; the public path and each algorithm."""
    be = backend
    for m in _masks(rng):
        dm = _dev(be, m)
        for r in RADII:
            fp = mo._Footprint.disk(r)
            s = fp.array()
            want_d = ndi.binary_dilation(m, s)
            want_e = {bv: ndi.binary_erosion(m, s, border_value=bv) for bv in (0, 1)}
            got = mo.binary_dilate(dm, r)
            assert_on_backend(got, be)
            np.testing.assert_array_equal(_host(got), want_d, err_msg=f"r={r} {m.shape}")
            for bv in (0, 1):
                np.testing.assert_array_equal(_host(mo.binary_erode(dm, r, border_value=bool(bv))), want_e[bv])
            if fp.is_identity:
                continue
            for method in ("fft", "edt", "direct"):
                np.testing.assert_array_equal(_host(mo._dilate_data(be, dm, fp, method)), want_d)
                for bv in (0, 1):
                    got = mo._erode_data(be, dm, fp, bool(bv), method)
                    np.testing.assert_array_equal(_host(got), want_e[bv], err_msg=f"{method} r={r}")


def test_box_dilate_erode_equal_scipy(backend, rng):
    for m in _masks(rng, shapes=((1, 25), (19, 1), (30, 41)), densities=(0.01, 0.3, 0.9)):
        dm = _dev(backend, m)
        for width in (0, 1, 2, 3, 4.5, 7, 25, 90):
            fp = mo._make_footprint(width, "box", None, False, "test")
            s = fp.array()
            want = ndi.binary_dilation(m, s)
            np.testing.assert_array_equal(_host(mo.binary_dilate(dm, width, kernel="box")), want)
            for method in ("box", "box-sums"):
                np.testing.assert_array_equal(_host(mo._dilate_data(backend, dm, fp, method)), want)
            for bv in (False, True):
                got = mo.binary_erode(dm, width, kernel="box", border_value=bv)
                np.testing.assert_array_equal(_host(got), ndi.binary_erosion(m, s, border_value=bv))


def test_tiled_edt_equals_scipy(backend, rng):
    """The tiling used on the GPU for elongated maps (forced here on any backend)."""
    for shape in ((12, 300), (250, 9), (40, 130)):
        m = rng.uniform(size=shape) < 0.01
        m[0, -1] = m[-1, 0] = True
        dm = _dev(backend, m)
        for r in (1, 2, 5, 7.3, 25):
            fp = mo._Footprint.disk(r)
            want = ndi.binary_dilation(m, fp.array())
            for length in (2 * fp.hx + 1, 2 * fp.hx + 7, 60):
                got = mo._dilate_data(backend, dm, fp, "edt", tile_length=length)
                np.testing.assert_array_equal(_host(got), want, err_msg=f"{shape} r={r} tile={length}")
    m = np.zeros((5, 200), bool)  # empty tiles between two lone pixels
    m[2, 3] = m[4, 190] = True
    fp = mo._Footprint.disk(3)
    got = mo._dilate_data(backend, _dev(backend, m), fp, "edt", tile_length=20)
    np.testing.assert_array_equal(_host(got), ndi.binary_dilation(m, fp.array()))


def test_special_masks(backend):
    xp = backend.xp
    for shape in ((1, 1), (1, 9), (9, 1), (13, 17)):
        for fill in (False, True):
            m = xp.full(shape, fill)
            for r in (1, 2, 6):
                for method in ("fft", "edt", None):
                    fp = mo._Footprint.disk(r)
                    assert bool(_host(mo._dilate_data(backend, m, fp, method) == fill).all())
                    assert bool(_host(mo._erode_data(backend, m, fp, True, method) == fill).all())
    # an isolated pixel in a corner grows into a quarter disk, never vanishes
    m = np.zeros((20, 20), bool)
    m[0, 0] = True
    got = _host(mo.binary_dilate(_dev(backend, m), 5))
    assert got.sum() == np.count_nonzero(_disk(25)[5:, 5:])
    # an isolated hole in an exclusion mask grows; with border True the edge stays
    usable = ~m
    eroded = _host(mo.binary_erode(_dev(backend, usable), 5))
    np.testing.assert_array_equal(eroded, ~got)
    strip = _host(mo.binary_erode(_dev(backend, np.ones((20, 20), bool)), 2, border_value=False))
    assert strip.sum() == 16 * 16 and strip[2:-2, 2:-2].all()


def test_map_with_energy_axis_and_angle_widths(backend, rng):
    axis = MapAxis.from_energy_bounds(1, 10, 3, unit="TeV")
    geom = WcsGeom.create(npix=(60, 45), binsz=0.02, frame="galactic", axes=[axis])
    mask = rng.uniform(size=geom.data_shape) < 0.01
    mask[1] = False  # an empty plane must stay empty (no leak across planes)
    mask[2, 0, 0] = True
    m = Map.from_geom(geom, data=_dev(backend, mask))
    out = mo.binary_dilate(m, "0.1 deg")
    assert isinstance(out, Map) and out.geom == geom and out.is_mask
    assert_on_backend(out, backend)
    want = _per_plane(ndi.binary_dilation, mask, _disk(25))
    np.testing.assert_array_equal(out.to_numpy(), want)
    assert not out.to_numpy()[1].any()
    for method in ("fft", "edt", "direct"):
        got = mo._dilate_data(backend, m.data, mo._Footprint.disk(5), method)
        np.testing.assert_array_equal(_host(got), want)
    ero = m.binary_erode("0.1 deg", border_value=False)
    np.testing.assert_array_equal(ero.to_numpy(), _per_plane(ndi.binary_erosion, mask, _disk(25)))
    np.testing.assert_array_equal(m.binary_dilate(5.0).to_numpy(), want)


def test_non_square_pixels(backend, rng):
    geom = WcsGeom.create(npix=(50, 40), binsz=(0.02, 0.035), frame="icrs", skydir=(80, 20))
    mask = rng.uniform(size=geom.data_shape) < 0.02
    m = Map.from_geom(geom, data=_dev(backend, mask))
    for width in ("0.05 deg", "0.1 deg", "0.3 deg", "1 deg"):
        fp = mo._make_footprint(width, "disk", geom, False, "test")
        assert not fp.square
        s = mo.footprint(width, geom=geom)
        want = ndi.binary_dilation(mask, s)
        np.testing.assert_array_equal(m.binary_dilate(width).to_numpy(), want)
        got = mo._dilate_data(backend, m.data, fp, "edt")
        np.testing.assert_array_equal(_host(got), want, err_msg=width)
        for bv in (False, True):
            got = m.binary_erode(width, border_value=bv).to_numpy()
            np.testing.assert_array_equal(got, ndi.binary_erosion(mask, s, border_value=bv))


def test_gpu_code_paths_on_a_numpy_stand_in(rng):
    """The CuPy-only branches (auto tiling of elongated planes, FFT for every disk,
    running-sum boxes, add.at sums) run here on a Backend named "cupy" whose
    modules are numpy and scipy.ndimage."""
    fake = gpumask.Backend("cupy", np)
    fake.__dict__["ndimage"] = ndi  # what the cached property would hold
    m = rng.uniform(size=(2, 20, 600)) < 0.003
    m[0, :, 300] = True
    for r in (1, 5, 7.3, 30):
        fp = mo._Footprint.disk(r)
        assert mo._choose_method(fake, fp, None) == "fft"
        want = _per_plane(ndi.binary_dilation, m, fp.array())
        np.testing.assert_array_equal(mo._dilate_data(fake, m, fp), want)
        want = _per_plane(ndi.binary_erosion, ~m, fp.array(), border_value=0)
        np.testing.assert_array_equal(mo._erode_data(fake, ~m, fp, False), want)
    assert mo._tile_length(fake, (20, 600), 30) == 256
    assert mo._tile_length(fake, (500, 18000), 100) == 500
    assert mo._tile_length(fake, (2000, 2000), 100) is None
    box = mo._Footprint("box", 2, 3)
    np.testing.assert_array_equal(mo._dilate_data(fake, m, box), _per_plane(ndi.binary_dilation, m, box.array()))
    labels, n = mo._label_stack(fake, m, 1)
    weights = rng.uniform(size=m.shape[-2:])
    np.testing.assert_allclose(mo._component_sums(fake, labels, n, weights),
                               np.bincount(labels.ravel(), np.broadcast_to(weights, m.shape).ravel(), n + 1))
    np.testing.assert_array_equal(mo._component_sums(fake, labels, n, None), np.bincount(labels.ravel()))


# ----------------------------------------------------------------------------- gammapy


def _gammapy_pair(gammapy_maps, backend, mask, binsz=0.02):
    ny, nx = mask.shape
    gm = gammapy_maps.Map.create(npix=(nx, ny), binsz=binsz, frame="galactic", skydir=(0, 0), dtype=bool)
    gm.data = mask.copy()
    geom = WcsGeom.create(npix=(nx, ny), binsz=binsz, frame="galactic", skydir=(0, 0))
    return gm, Map.from_geom(geom, data=_dev(backend, mask))


@pytest.mark.gammapy
def test_gammapy_rounding_equals_gammapy_exact_method(gammapy_maps, backend, rng):
    mask = rng.uniform(size=(70, 90)) < 0.01
    mask[0, 0] = mask[35, 45] = True
    gm, m = _gammapy_pair(gammapy_maps, backend, mask)
    for width in ("0.02 deg", "0.04 deg", "0.05 deg", "0.1 deg", "0.2 deg", 0.13 * u.deg):
        for kernel in ("disk", "box"):
            s = gm.geom.binary_structure(width, kernel=kernel)
            np.testing.assert_array_equal(
                mo.footprint(width, kernel, geom=m.geom, gammapy_rounding=True), s.astype(bool)
            )
            want = gm.binary_dilate(width, kernel=kernel, use_fft=False).data
            got = m.binary_dilate(width, kernel=kernel, gammapy_rounding=True)
            np.testing.assert_array_equal(got.to_numpy(), want, err_msg=f"{width} {kernel}")
            want = (~gm).binary_erode(width, kernel=kernel, use_fft=False).data
            got = (~m).binary_erode(width, kernel=kernel, gammapy_rounding=True, border_value=False)
            np.testing.assert_array_equal(got.to_numpy(), want, err_msg=f"{width} {kernel}")


@pytest.mark.gammapy
def test_gammapy_fft_dilation_drops_isolated_pixels(gammapy_maps, backend):
    """gammapy's default dilation is conv(mask, disk) > 1: a lone pixel vanishes (a
    gammapy bug, documented in gammapy-facts.md); gpumask grows it."""
    mask = np.zeros((30, 30), bool)
    mask[15, 15] = True
    gm, m = _gammapy_pair(gammapy_maps, backend, mask)
    assert not gm.binary_dilate("0.1 deg").data.any()
    ours = m.binary_dilate("0.1 deg", use_fft=True, gammapy_rounding=True).to_numpy()
    np.testing.assert_array_equal(ours, gm.binary_dilate("0.1 deg", use_fft=False).data)
    assert ours.sum() == 81  # 0.1 / 0.02 = 5, already odd: r = 5
    # 0.12 deg = 6 px: gammapy rounds the radius up to 7, the exact disk keeps 6
    assert m.binary_dilate("0.12 deg", gammapy_rounding=True).to_numpy().sum() == np.count_nonzero(_disk(49))
    assert m.binary_dilate("0.12 deg").to_numpy().sum() == np.count_nonzero(_disk(36))


# ----------------------------------------------------------------------------- labels


def _same_partition(a, b):
    """Labels equal up to renumbering (one-to-one between the labels)."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


def test_label_equals_scipy(backend, rng):
    for m in _masks(rng, densities=(0.1, 0.45, 0.6, 0.9)):
        for c in (1, 2):
            got = mo.label(_dev(backend, m), connectivity=c)
            assert got.dtype == np.int32
            assert_on_backend(got, backend)
            want, n = ndi.label(m, ndi.generate_binary_structure(2, c))
            got = _host(got)
            if backend.name == "numpy":
                np.testing.assert_array_equal(got, want)
            assert _same_partition(got, want) and got.max() == n


def test_label_numbers_each_plane_from_one(backend, rng):
    axis = MapAxis.from_energy_bounds(1, 10, 4, unit="TeV")
    geom = WcsGeom.create(npix=(30, 20), binsz=0.1, axes=[axis])
    mask = rng.uniform(size=geom.data_shape) < 0.4
    mask[2] = False
    lab = Map.from_geom(geom, data=_dev(backend, mask)).label(connectivity=2)
    assert lab.geom == geom and lab.dtype == np.int32
    host = lab.to_numpy()
    for k in range(4):
        want, n = ndi.label(mask[k], np.ones((3, 3)))
        if backend.name == "numpy":
            np.testing.assert_array_equal(host[k], want)
        assert _same_partition(host[k], want) and host[k].max() == n
    np.testing.assert_array_equal(_host(lab.data.max(axis=(-2, -1))), host.max(axis=(-2, -1)))


def test_scipy_numbers_labels_in_raster_order(rng):
    """The property that makes cupyx's labels (roots at the first pixel, sorted)
    equal to scipy's."""
    for m in _masks(rng, densities=(0.3, 0.6)):
        for c in (1, 2):
            lab, n = ndi.label(m, ndi.generate_binary_structure(2, c))
            flat = lab.ravel()[lab.ravel() > 0]
            _, first = np.unique(flat, return_index=True)
            np.testing.assert_array_equal(flat[np.sort(first)], np.arange(1, n + 1))


def test_fill_holes_equals_scipy(backend, rng):
    for m in _masks(rng, densities=(0.3, 0.55, 0.7, 0.9)):
        got = mo.fill_holes(_dev(backend, m))
        assert_on_backend(got, backend)
        np.testing.assert_array_equal(_host(got), ndi.binary_fill_holes(m))
    ring = np.zeros((7, 7), bool)
    ring[1:6, 1:6] = True
    ring[2:5, 2:5] = False
    ring[3, 3] = True  # an island in the hole is filled around
    np.testing.assert_array_equal(_host(mo.fill_holes(_dev(backend, ring))), ndi.binary_fill_holes(ring))
    # a diagonal gap does not connect a hole to the edge (4-connected background)
    diag = np.ones((5, 5), bool)
    diag[1, 1] = diag[0, 0] = False
    assert _host(mo.fill_holes(_dev(backend, diag)))[1, 1]
    axis = MapAxis.from_edges([1, 2, 3], unit="TeV", name="energy", interp="lin")
    stack = rng.uniform(size=(2, 25, 25)) < 0.6
    geom = WcsGeom.create(npix=(25, 25), binsz=0.1, axes=[axis])
    out = Map.from_geom(geom, data=_dev(backend, stack)).fill_holes()
    np.testing.assert_array_equal(out.to_numpy(), _per_plane(ndi.binary_fill_holes, stack))


# ----------------------------------------------------------------------------- small regions


def test_remove_small_regions_equals_skimage(backend, rng):
    skm = pytest.importorskip("skimage.morphology")
    for m in _masks(rng, shapes=((1, 30), (23, 31), (50, 50)), densities=(0.2, 0.45, 0.6)):
        dm = _dev(backend, m)
        for c in (1, 2):
            for min_area in (0, 1, 2, 3, 4.5, 7, 30):
                got = _host(mo.remove_small_regions(dm, min_area, connectivity=c))
                max_size = math.ceil(min_area) - 1  # skimage 0.26: removes sizes <= max_size
                want = m if max_size < 1 else skm.remove_small_objects(m, max_size=max_size, connectivity=c)
                np.testing.assert_array_equal(got, want, err_msg=f"{min_area} c={c}")
    # a region of exactly min_area stays (strict <)
    m = np.zeros((5, 9), bool)
    m[1, 1:4] = True
    m[3, 5:7] = True
    got = _host(mo.remove_small_regions(_dev(backend, m), 3))
    assert got[1, 1:4].all() and not got[3].any()
    np.testing.assert_array_equal(_host(mo.remove_small_regions(_dev(backend, m), "3 pix")), got)


def test_remove_small_regions_by_solid_angle_brute_force(backend, rng):
    axis = MapAxis.from_energy_bounds(1, 10, 2, unit="TeV")
    geom = WcsGeom.create(npix=(60, 50), binsz=0.5, frame="galactic", skydir=(0, 70), axes=[axis])
    mask = rng.uniform(size=geom.data_shape) < 0.5
    omega = gpumask.to_host(geom.solid_angle(backend="numpy"))
    m = Map.from_geom(geom, data=_dev(backend, mask))
    for c in (1, 2):
        want = np.zeros_like(mask)
        areas = []
        for k in range(2):
            lab, n = ndi.label(mask[k], ndi.generate_binary_structure(2, c))
            for j in range(1, n + 1):
                area = omega[lab == j].sum()
                areas.append(area)
                want[k][lab == j] = area >= 1.2e-3
        assert min(abs(np.array(areas) - 1.2e-3)) > 1e-9  # not a tie
        for min_area in ("1.2e-3 sr", 1.2e-3 * u.sr, (1.2e-3 * u.sr).to(u.deg**2)):
            got = m.remove_small_regions(min_area, connectivity=c)
            assert_on_backend(got, backend)
            np.testing.assert_array_equal(got.to_numpy(), want)


# ----------------------------------------------------------------------------- hysteresis


def _brute_hysteresis_8(image, low, high):
    lab, n = ndi.label(image > low, np.ones((3, 3)))
    keep = np.zeros(n + 1, bool)
    keep[np.unique(lab[image > high])] = True
    keep[0] = False
    return keep[lab]


def test_hysteresis_equals_skimage(backend, rng):
    filters = pytest.importorskip("skimage.filters")
    for shape in ((1, 40), (31, 1), (45, 37), (80, 80)):
        for _ in range(3):
            image = ndi.gaussian_filter(rng.normal(size=shape), 1.0) * 3
            image[rng.uniform(size=shape) < 0.05] = np.nan
            di = _dev(backend, image)
            for low, high in ((0.1, 1.0), (0.5, 0.5), (-1.0, 2.0), (1.0, 10.0)):
                got = mo.hysteresis_threshold(di, low, high)
                assert_on_backend(got, backend)
                np.testing.assert_array_equal(_host(got), filters.apply_hysteresis_threshold(image, low, high))
                got8 = _host(mo.hysteresis_threshold(di, low, high, connectivity=2))
                np.testing.assert_array_equal(got8, _brute_hysteresis_8(image, low, high))
    # strict comparisons at both thresholds, as scikit-image
    image = np.array([[1.0, 0.5, 2.0, 0.5, 1.0]])
    np.testing.assert_array_equal(_host(mo.hysteresis_threshold(_dev(backend, image), 0.5, 1.0)),
                                  [[False, False, True, False, False]])
    np.testing.assert_array_equal(filters.apply_hysteresis_threshold(image, 0.5, 1.0),
                                  [[False, False, True, False, False]])


def test_hysteresis_per_plane(backend, rng):
    image = rng.normal(size=(3, 30, 40))
    got = _host(mo.hysteresis_threshold(_dev(backend, image), 0.0, 2.0))
    filters = pytest.importorskip("skimage.filters")
    np.testing.assert_array_equal(got, _per_plane(filters.apply_hysteresis_threshold, image, 0.0, 2.0))


@pytest.mark.data
def test_hysteresis_on_fermi_gc_counts(backend, data_dir):
    filters = pytest.importorskip("skimage.filters")
    counts = gpumask.read_map(data_dir / "fermi-3fhl-gc" / "fermi-3fhl-gc-counts.fits.gz", backend=backend)
    smooth = convolve(counts.astype(np.float64), gaussian_kernel("0.1 deg", geom=counts.geom))
    host = smooth.to_numpy()
    low, high = host.mean(), host.mean() + 3 * host.std()
    got = smooth.hysteresis_threshold(low, high)
    want = filters.apply_hysteresis_threshold(host, low, high)
    assert 100 < want.sum() < host.size / 2
    np.testing.assert_array_equal(got.to_numpy(), want)
    excl = gpumask.exclusion_from_significance(smooth, threshold=high, low=low)
    np.testing.assert_array_equal(excl.to_numpy(), ~want)
    assert excl.geom == counts.geom


# ----------------------------------------------------------------------------- errors


def test_errors_name_the_value(backend, geom):
    xp = backend.xp
    mask = xp.zeros((10, 10), dtype=bool)
    floats = xp.zeros((10, 10))
    cases = [
        (lambda: mo.binary_dilate(floats, 1), ValueError, "boolean mask.*float64"),
        (lambda: mo.binary_dilate(Map.from_geom(geom, backend=backend), 1), ValueError, "map of dtype float32"),
        (lambda: mo.binary_dilate(mask, -1), ValueError, "not negative.*-1"),
        (lambda: mo.binary_dilate(mask, "1 m"), ValueError, r"unit m in '1 m'"),
        (lambda: mo.binary_dilate(mask, True), ValueError, "width.*True"),
        (lambda: mo.binary_dilate(mask, [1, 2, 3]), ValueError, r"one value or a \(lon, lat\) pair.*\[1, 2, 3\]"),
            (lambda: mo.binary_dilate(mask, [1, "0.1 deg"]), ValueError, "mixes pixels and angles"),
        (lambda: mo.binary_dilate(mask, float("nan")), ValueError, "finite"),
        (lambda: mo.binary_dilate(mask, "0.1 deg"), ValueError, "needs a Map"),
        (lambda: mo.binary_dilate(mask, 1, kernel="ring"), ValueError, "'disk', 'box'.*'ring'"),
        (lambda: mo.binary_erode(mask, 1, border_value=2), ValueError, "border_value.*2"),
        (lambda: mo.binary_dilate(xp.zeros(5, dtype=bool), 1), ValueError, r"2 or more dimensions.*\(5,\)"),
        (lambda: mo.binary_dilate([[True]], 1), TypeError, "Map or a numpy/cupy array, got list"),
        (lambda: mo.label(mask, connectivity=3), ValueError, "connectivity.*got 3"),
        (lambda: mo.label(mask, connectivity=True), ValueError, "connectivity.*True"),
        (lambda: mo.fill_holes(floats), ValueError, "boolean mask"),
        (lambda: mo.remove_small_regions(mask, "1e-5 sr"), ValueError, "solid angle, which needs a Map"),
        (lambda: mo.remove_small_regions(mask, "3 m"), ValueError, "solid angle.*unit m"),
        (lambda: mo.remove_small_regions(mask, -2), ValueError, "not negative"),
        (lambda: mo.hysteresis_threshold(floats, 2, 1), ValueError, r"low \(2.0\) must not be above high \(1.0\)"),
        (lambda: mo.hysteresis_threshold(mask, 0, 1), ValueError, "real-valued image.*bool"),
        (lambda: mo.hysteresis_threshold(floats, float("nan"), 1), ValueError, "low must not be NaN"),
        (lambda: mo.hysteresis_threshold(floats, "0", 1), ValueError, "low must be a real number.*'0'"),
    ]
    for call, exc, match in cases:
        with pytest.raises(exc, match=match):
            call()
    m = Map.from_geom(geom, data=xp.zeros(geom.data_shape, dtype=bool))
    with pytest.raises(ValueError, match="use_fft must be None, True or False.*'yes'"):
        m.binary_dilate(1, use_fft="yes")


# ----------------------------------------------------------------------------- residency


def test_pipeline_copies_nothing(backend, rng):
    axis = MapAxis.from_energy_bounds(1, 10, 2, unit="TeV")
    geom = WcsGeom.create(npix=(80, 60), binsz=0.05, frame="galactic", axes=[axis])
    sqrt_ts = Map.from_geom(geom, data=_dev(backend, ndi.gaussian_filter(rng.normal(size=geom.data_shape), 2) * 20))
    with gpumask.count_transfers() as counter:
        excl = gpumask.exclusion_from_significance(sqrt_ts, 5.0, low=3.0)
        excl = excl.binary_erode("0.3 deg")
        grown = (~excl).binary_dilate("0.1 deg", kernel="box")
        cleaned = grown.remove_small_regions("1e-4 sr").fill_holes()
        labels = cleaned.label(connectivity=2)
        n_per_plane = labels.data.max(axis=(-2, -1))
        hyst = sqrt_ts.hysteresis_threshold(1.0, 4.0)
        disk = mo.binary_dilate(hyst.data, 7.3)
    assert counter.calls == 0 and counter.device_bytes == 0
    for out in (excl, grown, cleaned, labels, hyst, disk, n_per_plane):
        assert_on_backend(out, backend)
    assert cleaned.geom == geom and labels.geom == geom
