"""Reprojection (gpumask.sky.reproject): masks against an astropy brute force, values
against ``scipy.ndimage.map_coordinates(order=1)`` at astropy pixel coordinates,
counts against their totals and gammapy 2.1, Fermi GC maps, axes, residency, errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
from astropy.coordinates import SkyCoord

import gpumask
from gpumask import Map, MapAxis, WcsGeom
from gpumask.backend import to_host
from gpumask.sky.reproject import _sample_count, reproject_to_geom

from ..conftest import assert_on_backend

GC_ICRS = (266.40498829, -28.93617776)  # galactic (0, 0)
SOURCE = dict(npix=(90, 60), binsz=0.1, frame="galactic", proj="CAR", skydir=(0.0, 0.0))
#: targets: other frames, projections, finer / equal / coarser pixels, partial overlaps
TARGETS = {
    "tan-icrs": dict(npix=(70, 50), binsz=0.1, frame="icrs", proj="TAN", skydir=GC_ICRS),
    "car-icrs-coarse": dict(npix=(30, 25), binsz=0.2, frame="icrs", proj="CAR", skydir=GC_ICRS),
    "ait-gal-fine": dict(npix=(120, 90), binsz=0.04, frame="galactic", proj="AIT", skydir=(1.0, 0.5)),
    "zea-fk5-coarse3": dict(npix=(40, 30), binsz=0.27, frame="fk5", proj="ZEA", skydir=GC_ICRS),
    "sin-gal-edge": dict(npix=(80, 80), binsz=0.1, frame="galactic", proj="SIN", skydir=(4.0, -2.5)),
}


def _source(data, backend, **kw):
    geom = WcsGeom.create(**{**SOURCE, **kw})
    return Map.from_geom(geom, data=backend.xp.asarray(data), unit="cm-2 s-1 sr-1")


def _astropy_pix(target: WcsGeom, source: WcsGeom, dx=0.0, dy=0.0):
    """Source pixel coordinates of target points, by astropy (the oracle)."""
    nx, ny = target.npix
    xx, yy = np.meshgrid(np.arange(nx) + dx, np.arange(ny) + dy)
    sky = SkyCoord.from_pixel(xx, yy, wcs=target.wcs, origin=0)
    return sky.to_pixel(source.wcs, origin=0)


def _smooth_field(rng, shape, sigma=4.0):
    field = ndi.gaussian_filter(rng.normal(size=shape), sigma)
    return 10.0 + field / field.std()


def _bilinear_oracle(data, x, y):
    """map_coordinates(order=1) with gpumask's edge rule: inside [-0.5, n - 0.5),
    clamped to the edge value in the outer half pixel, NaN outside."""
    ny, nx = data.shape[-2:]
    inside = (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)
    cx, cy = np.clip(np.nan_to_num(x), 0, nx - 1), np.clip(np.nan_to_num(y), 0, ny - 1)
    vals = ndi.map_coordinates(data, [cy, cx], order=1, mode="nearest")
    return np.where(inside, vals, np.nan), inside


# ----------------------------------------------------------------------------- masks


@pytest.mark.parametrize("name", TARGETS)
def test_mask_takes_the_source_pixel_containing_each_centre(backend, rng, name):
    mask = rng.uniform(size=(60, 90)) > 0.5
    m = _source(mask, backend)
    target = WcsGeom.create(**TARGETS[name])
    out = reproject_to_geom(m, target)
    assert_on_backend(out, backend)
    assert out.dtype == bool and out.geom == target
    x, y = _astropy_pix(target, m.geom)
    with np.errstate(invalid="ignore"):
        ix, iy = np.floor(x + 0.5), np.floor(y + 0.5)
        inside = (ix >= 0) & (ix < 90) & (iy >= 0) & (iy < 60)
    expected = np.where(inside, mask[np.where(inside, iy, 0).astype(int), np.where(inside, ix, 0).astype(int)], True)
    # centres within 1e-6 px of a pixel edge may fall either way (1e-9 deg differences)
    frac = np.abs(np.mod(np.nan_to_num(x), 1.0) - 0.5)
    fray = np.abs(np.mod(np.nan_to_num(y), 1.0) - 0.5)
    ambiguous = (frac < 1e-6) | (fray < 1e-6)
    got = to_host(out.data)
    assert np.array_equal(got[~ambiguous], expected[~ambiguous])
    # a fill value other than True
    out = to_host(reproject_to_geom(m, target, fill_value=False).data)
    assert not out[~inside & ~ambiguous].any()
    assert np.array_equal(out[inside & ~ambiguous], expected[inside & ~ambiguous])


# ----------------------------------------------------------------------------- values


@pytest.mark.parametrize("name", TARGETS)
def test_values_match_bilinear_oracle(backend, rng, name):
    """Bilinear samples, n x n of them per target pixel (n = ceil(target / source pixel size)),
    averaged over those inside the source; the oracle is scipy at astropy coordinates."""
    data = rng.normal(size=(60, 90)) * 5 + 2
    m = _source(data, backend)
    target = WcsGeom.create(**TARGETS[name])
    n = _sample_count(m.geom, target)
    assert n == {"tan-icrs": 1, "car-icrs-coarse": 2, "ait-gal-fine": 1, "zea-fk5-coarse3": 3,
                 "sin-gal-edge": 1}[name]
    total, hits = 0.0, 0
    for dy in (np.arange(n) + 0.5) / n - 0.5:
        for dx in (np.arange(n) + 0.5) / n - 0.5:
            vals, inside = _bilinear_oracle(data, *_astropy_pix(target, m.geom, dx, dy))
            total = total + np.where(inside, vals, 0.0)
            hits = hits + inside
    expected = np.where(hits > 0, total / np.maximum(hits, 1), 0.0)
    got = to_host(reproject_to_geom(m, target).data)
    assert (hits > 0).any() and (hits == 0).any() if name == "sin-gal-edge" else True
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9 * np.abs(data).max())
    # NaN fill
    got = to_host(reproject_to_geom(m, target, fill_value=np.nan).data)
    assert np.array_equal(np.isnan(got), hits == 0)


def test_aligned_coarser_grid_is_the_block_mean_and_sum(backend, rng):
    """2x coarser, same frame and projection: samples fall on source centres."""
    data = rng.poisson(5.0, size=(40, 60)).astype(float)
    m = _source(data, backend, npix=(60, 40), skydir=(10.0, 30.0))
    target = WcsGeom.create(npix=(30, 20), binsz=0.2, frame="galactic", proj="CAR", skydir=(10.0, 30.0))
    mean = to_host(reproject_to_geom(m, target).data)
    np.testing.assert_allclose(mean, data.reshape(20, 2, 30, 2).mean(axis=(1, 3)), rtol=0, atol=1e-11)
    counts = to_host(reproject_to_geom(m, target, preserve_counts=True).data)
    # block sums up to the difference between the solid angle of a 2x2 block and of
    # its four pixels (great-circle edges at b = 30 deg), then the exact total
    np.testing.assert_allclose(counts, data.reshape(20, 2, 30, 2).sum(axis=(1, 3)), rtol=1e-4)
    assert counts.sum() == pytest.approx(data.sum(), rel=1e-13)


def test_identity_is_a_copy(backend, rng):
    data = rng.normal(size=(60, 90)).astype(np.float32)
    m = _source(data, backend)
    out = reproject_to_geom(m, m.geom.copy())
    assert out.data is not m.data and out.dtype == np.float32
    np.testing.assert_array_equal(to_host(out.data), data)


def test_nan_stays_local(backend, rng):
    data = _smooth_field(rng, (60, 90))
    data[30, 45] = np.nan
    m = _source(data, backend)
    target = WcsGeom.create(**TARGETS["tan-icrs"])
    got = to_host(reproject_to_geom(m, target).data)
    x, y = _astropy_pix(target, m.geom)
    near = (np.abs(x - 45) < 1) & (np.abs(y - 30) < 1)
    assert np.all(np.isnan(got[near]))
    assert not np.isnan(got[~near]).any()


@pytest.mark.gammapy
@pytest.mark.parametrize("name,tol", [
    ("tan-icrs", 0.01), ("car-icrs-coarse", 0.01), ("ait-gal-fine", 0.03), ("zea-fk5-coarse3", 0.01),
])
def test_smooth_map_interior_matches_gammapy(backend, rng, gammapy_maps, name, tol):
    """gammapy averages nearest-neighbour sub-pixels (piecewise constant), gpumask
    interpolates: on a smooth field (sigma 4 px) the interior agrees within ``tol``
    of the map's maximum (measured 0.5 %, 0.2 %, 2.6 %, 0.2 %: gammapy's staircase
    on the finer AIT grid)."""
    data = _smooth_field(rng, (60, 90))
    gmap = gammapy_maps.Map.create(**SOURCE)
    gmap.data = data.copy()
    ref = gmap.reproject_to_geom(gammapy_maps.WcsGeom.create(**TARGETS[name])).data
    target = WcsGeom.create(**TARGETS[name])
    got = to_host(reproject_to_geom(_source(data, backend), target).data)
    x, y = _astropy_pix(target, WcsGeom.create(**SOURCE), 0, 0)
    n = _sample_count(WcsGeom.create(**SOURCE), target)
    margin = 2 + n
    interior = (x > margin) & (x < 89 - margin) & (y > margin) & (y < 59 - margin)
    assert interior.sum() > 200
    assert np.abs(got - ref)[interior].max() < tol * np.abs(data).max()


# ----------------------------------------------------------------------------- counts


@pytest.mark.parametrize("name", ["tan-icrs", "ait-gal-fine", "zea-fk5-coarse3"])
def test_counts_exact_total_when_the_target_covers_the_source(backend, rng, name):
    data = rng.poisson(3.0, size=(30, 40)).astype(float)
    m = _source(data, backend, npix=(40, 30), binsz=0.05)
    target = WcsGeom.create(**{**TARGETS[name], "npix": (int(6 / TARGETS[name]["binsz"]),) * 2,
                               "skydir": (0.0, 0.0), "frame": "galactic"})
    out = reproject_to_geom(m, target, preserve_counts=True)
    assert to_host(out.data).sum() == pytest.approx(data.sum(), rel=1e-12)


def _piecewise_counts(data, source, target, k=8):
    """Counts oracle: counts uniform within each source pixel (the model gammapy
    uses too), integrated over each target pixel with k x k astropy points."""
    ny, nx = data.shape
    omega_s = source.solid_angle(backend="numpy")
    acc = 0.0
    for dy in (np.arange(k) + 0.5) / k - 0.5:
        for dx in (np.arange(k) + 0.5) / k - 0.5:
            x, y = _astropy_pix(target, source, dx, dy)
            with np.errstate(invalid="ignore"):
                ix, iy = np.floor(x + 0.5), np.floor(y + 0.5)
                ok = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
            idx = np.where(ok, iy, 0).astype(int), np.where(ok, ix, 0).astype(int)
            acc = acc + np.where(ok, (data / omega_s)[idx], 0.0)
    return acc / k**2 * target.solid_angle(backend="numpy")


@pytest.mark.parametrize("name,tol", [
    ("tan-icrs", 0.005), ("car-icrs-coarse", 0.005), ("ait-gal-fine", 0.03), ("sin-gal-edge", 0.005),
])
def test_counts_partial_overlap_against_brute_force(backend, rng, name, tol):
    """Partial overlap: each target pixel holds the counts that fall on it.

    Smooth field: totals within 1e-3 of the oracle (measured <= 4.8e-4), target
    pixels inside the source within ``tol`` of the maximum (measured 0.2 %, 0.05 %,
    1.7 %: the oracle's steps on the finer AIT grid, 0.2 %).  Target pixels cut by
    the source's edge are sampled at n x n points (their centre for n = 1), so they
    are not compared one by one.  Spiky Poisson counts: totals within 2e-3
    (measured <= 1.0e-3).
    """
    target = WcsGeom.create(**TARGETS[name])
    data = _smooth_field(rng, (60, 90)) * 100
    m = _source(data, backend)
    expected = _piecewise_counts(data, m.geom, target)
    got = to_host(reproject_to_geom(m, target, preserve_counts=True).data)
    assert got.sum() == pytest.approx(expected.sum(), rel=1e-3)
    x, y = _astropy_pix(target, m.geom)
    inner = (x > 1.5) & (x < 87.5) & (y > 1.5) & (y < 57.5)
    assert np.abs(got - expected)[inner].max() < tol * expected[inner].max()

    data = rng.poisson(ndi.gaussian_filter(rng.exponential(size=(60, 90)), 2) * 20).astype(float)
    got = to_host(reproject_to_geom(_source(data, backend), target, preserve_counts=True).data)
    assert got.sum() == pytest.approx(_piecewise_counts(data, m.geom, target).sum(), rel=2e-3)


@pytest.mark.gammapy
@pytest.mark.parametrize("name", ["tan-icrs", "car-icrs-coarse", "sin-gal-edge"])
def test_counts_total_matches_gammapy(backend, rng, gammapy_maps, name):
    data = rng.poisson(4.0, size=(60, 90)).astype(float)
    gmap = gammapy_maps.Map.create(**SOURCE)
    gmap.data = data.copy()
    ref = gmap.reproject_to_geom(gammapy_maps.WcsGeom.create(**TARGETS[name]), preserve_counts=True).data
    got = to_host(reproject_to_geom(_source(data, backend), WcsGeom.create(**TARGETS[name]),
                                    preserve_counts=True).data)
    assert got.sum() == pytest.approx(ref.sum(), rel=1e-3)


@pytest.mark.gammapy
@pytest.mark.data
def test_fermi_gc_counts_and_exposure(backend, data_dir, gammapy_maps):
    """Counts: totals within 1.5e-3 of gammapy's (measured 9e-5 on the TAN target,
    whose edges cut the Galactic plane; exact when the target covers the map; the
    11-plane cube gives the same per plane); exposure: interior values within 1e-3
    (measured 2e-4).  gammapy is given float counts: with the file's integers it
    truncates every sub-pixel share to 0."""
    folder = data_dir / "fermi-3fhl-gc"
    counts = gpumask.read_map(folder / "fermi-3fhl-gc-counts.fits.gz", backend=backend.name)
    gcounts = gammapy_maps.Map.read(folder / "fermi-3fhl-gc-counts.fits.gz")
    gcounts = gcounts.copy(data=gcounts.data.astype(float))
    cube = gpumask.read_map(folder / "fermi-3fhl-gc-counts-cube.fits.gz", backend=backend.name)
    exposure = gpumask.read_map(folder / "fermi-3fhl-gc-exposure.fits.gz", backend=backend.name)
    gexposure = gammapy_maps.Map.read(folder / "fermi-3fhl-gc-exposure.fits.gz")
    for kw in (dict(npix=(150, 100), binsz=0.1, frame="icrs", proj="TAN", skydir=GC_ICRS),
               dict(npix=(500, 300), binsz=0.08, frame="galactic", proj="CAR", skydir=(0, 0))):
        target, gtarget = WcsGeom.create(**kw), gammapy_maps.WcsGeom.create(**kw)
        got = reproject_to_geom(counts, target, preserve_counts=True)
        assert_on_backend(got, backend)
        ref = gcounts.reproject_to_geom(gtarget, preserve_counts=True).data
        assert float(to_host(got.data).sum()) == pytest.approx(ref.sum(), rel=1.5e-3)
        if kw["proj"] == "CAR":
            assert float(to_host(got.data).sum()) == pytest.approx(float(to_host(counts.data).sum()), rel=1e-12)
        planes = reproject_to_geom(cube, target, preserve_counts=True)
        assert planes.geom.axes_names == ["lon", "lat", "energy"] and planes.dtype == np.float64
        first = reproject_to_geom(cube.slice_by_idx({"energy": 0}), target, preserve_counts=True)
        np.testing.assert_allclose(to_host(planes.data)[0], to_host(first.data), rtol=1e-12, atol=1e-12)
        got = to_host(reproject_to_geom(exposure, target).data)
        ref = gexposure.reproject_to_geom(gtarget).data
        x, y = _astropy_pix(target, exposure.geom)
        interior = (x > 3) & (x < 396) & (y > 3) & (y < 196)
        assert np.abs(got - ref)[interior].max() < 1e-3 * ref.max()


# ----------------------------------------------------------------------------- axes


def test_planes_are_reprojected_alike(backend, rng):
    data = rng.normal(size=(3, 60, 90))
    axis = MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=3)
    geom = WcsGeom.create(**SOURCE, axes=[axis])
    cube = Map.from_geom(geom, data=backend.xp.asarray(data))
    target = WcsGeom.create(**TARGETS["car-icrs-coarse"])
    for preserve_counts in (False, True):
        out = reproject_to_geom(cube, target, preserve_counts=preserve_counts)
        assert out.geom == target.to_cube([axis])
        # the same with the cube geometry as target
        same = reproject_to_geom(cube, target.to_cube([axis]), preserve_counts=preserve_counts)
        np.testing.assert_array_equal(to_host(same.data), to_host(out.data))
        for i in range(3):
            plane = reproject_to_geom(_source(data[i], backend), target, preserve_counts=preserve_counts)
            np.testing.assert_allclose(to_host(out.data)[i], to_host(plane.data), rtol=1e-13, atol=1e-13)


def test_mismatched_axes_raise(backend):
    axis = MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=3)
    cube = Map.from_geom(WcsGeom.create(**SOURCE, axes=[axis]), backend=backend.name)
    other = MapAxis.from_energy_bounds("1 TeV", "100 TeV", nbin=3)
    with pytest.raises(ValueError, match="differ from the map's"):
        reproject_to_geom(cube, WcsGeom.create(**TARGETS["tan-icrs"], axes=[other]))
    renamed = MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=3, name="energy_true")
    with pytest.raises(ValueError, match="Axis names"):
        reproject_to_geom(cube, WcsGeom.create(**TARGETS["tan-icrs"], axes=[renamed]))


# ----------------------------------------------------------------------------- residency, backends


def test_no_transfer_and_same_backend(backend, rng):
    data = rng.normal(size=(2, 60, 90)).astype(np.float32)
    axis = MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=2)
    cube = Map.from_geom(WcsGeom.create(**SOURCE, axes=[axis]), data=backend.xp.asarray(data), unit="ct")
    cube.meta["origin"] = "test"
    target = WcsGeom.create(**TARGETS["zea-fk5-coarse3"])
    with gpumask.count_transfers() as counter:
        a = reproject_to_geom(cube, target)
        b = reproject_to_geom(cube, target, preserve_counts=True)
        c = reproject_to_geom(cube > 0, target)
    assert counter.calls == 0 and counter.device_calls == 0 and counter.flags == 0
    for out in (a, b):
        assert_on_backend(out, backend)
        assert out.unit == cube.unit and out.meta == {"origin": "test"}
    assert_on_backend(c, backend)
    assert a.dtype == np.float32 and b.dtype == np.float32 and c.dtype == bool


@pytest.mark.gpu
def test_cupy_equals_numpy(rng):
    cupy_be = gpumask.get_backend("cupy")
    data = rng.normal(size=(60, 90))
    target = WcsGeom.create(**TARGETS["ait-gal-fine"])
    for preserve_counts in (False, True):
        host = reproject_to_geom(_source(data, gpumask.get_backend("numpy")), target, preserve_counts=preserve_counts)
        dev = reproject_to_geom(_source(data, cupy_be), target, preserve_counts=preserve_counts)
        # values are O(1); the device's coordinate transforms (libdevice, FMA) move
        # the interpolation weights by ~1e-12 (1.1e-12 seen on an H200)
        np.testing.assert_allclose(to_host(dev.data), host.data, rtol=1e-10, atol=1e-10)


@pytest.mark.gpu
def test_cupy_projection_without_device_code():
    """Source: raise (numpy would have to do it); target: astropy on the host,
    uploaded, no device data leaves."""
    cupy_be = gpumask.get_backend("cupy")
    data = np.arange(60 * 90, dtype=float).reshape(60, 90)
    mer = _source(data, cupy_be, proj="MER")
    with pytest.raises(NotImplementedError, match="numpy"):
        reproject_to_geom(mer, WcsGeom.create(**TARGETS["tan-icrs"]))
    target = WcsGeom.create(**{**TARGETS["tan-icrs"], "proj": "MER"})
    assert not target.device_projection
    m = _source(data, cupy_be)
    with gpumask.count_transfers() as counter:
        out = reproject_to_geom(m, target)
    assert counter.calls == 0
    host = reproject_to_geom(_source(data, gpumask.get_backend("numpy")), target)
    np.testing.assert_allclose(to_host(out.data), host.data, rtol=1e-10)


@pytest.mark.gpu
def test_no_device_reads_on_the_emulated_gpu(device_reads, rng):
    """Not one byte is read back: geometry is host-side, data stays on the device."""
    cupy_be = gpumask.get_backend("cupy")
    m = _source(rng.normal(size=(60, 90)), cupy_be)
    covering = WcsGeom.create(npix=(120, 120), binsz=0.1, frame="icrs", proj="TAN", skydir=GC_ICRS)
    device_reads.clear()
    for target in (WcsGeom.create(**TARGETS["zea-fk5-coarse3"]), covering):
        reproject_to_geom(m, target)
        reproject_to_geom(m, target, preserve_counts=True)
        reproject_to_geom(m > 0, target)
    assert len(device_reads) == 0


def test_map_method_when_present(backend, rng):
    if not hasattr(Map, "reproject_to_geom"):
        pytest.skip("Map.reproject_to_geom is not there yet")
    m = _source(rng.normal(size=(60, 90)), backend)
    target = WcsGeom.create(**TARGETS["tan-icrs"])
    a = reproject_to_geom(m, target, preserve_counts=True)
    b = m.reproject_to_geom(target, preserve_counts=True)
    np.testing.assert_array_equal(to_host(a.data), to_host(b.data))


# ----------------------------------------------------------------------------- errors


def test_bad_arguments(backend):
    m = _source(np.zeros((60, 90)), backend)
    target = WcsGeom.create(**TARGETS["tan-icrs"])
    with pytest.raises(TypeError, match="gpumask Map"):
        reproject_to_geom(np.zeros((60, 90)), target)
    with pytest.raises(TypeError, match="WcsGeom"):
        reproject_to_geom(m, target.wcs)
    with pytest.raises(ValueError, match="preserve_counts"):
        reproject_to_geom(m, target, preserve_counts="yes")
    with pytest.raises(ValueError, match="preserve_counts=True is for counts"):
        reproject_to_geom(m > 0, target, preserve_counts=True)
    for bad in (0, -1, np.nan, "10", True):
        with pytest.raises(ValueError, match="precision_factor"):
            reproject_to_geom(m, target, precision_factor=bad)
    with pytest.raises(ValueError, match="fill_value"):
        reproject_to_geom(m > 0, target, fill_value=0.5)
    with pytest.raises(ValueError, match="fill_value"):
        reproject_to_geom(m, target, fill_value="nan")


@pytest.mark.gammapy
def test_gammapy_inputs_are_accepted(gammapy_maps, rng):
    data = rng.normal(size=(60, 90))
    gmap = gammapy_maps.Map.create(**SOURCE)
    gmap.data = data.copy()
    gtarget = gammapy_maps.WcsGeom.create(**TARGETS["tan-icrs"])
    numpy_be = gpumask.get_backend("numpy")
    expected = reproject_to_geom(_source(data, numpy_be), WcsGeom.create(**TARGETS["tan-icrs"]))
    with gpumask.use_backend("numpy"):
        out = reproject_to_geom(gmap, gtarget)
    assert isinstance(out, Map)
    np.testing.assert_allclose(out.data, expected.data, rtol=1e-12, atol=1e-12)
