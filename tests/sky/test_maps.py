"""Map container: creation, residency, algebra, reductions, display."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

import gpumask
from gpumask import Map, MapAxis, WcsGeom
from gpumask.backend import backend_of

from ..conftest import assert_on_backend

CRAB = SkyCoord(83.633083, 22.0145, unit="deg", frame="icrs")


@pytest.fixture
def geom():
    return WcsGeom.create(skydir=CRAB, width="5 deg", binsz=0.1, frame="galactic")


@pytest.fixture
def cube_geom():
    axis = MapAxis.from_energy_bounds("1 TeV", "100 TeV", nbin=4)
    return WcsGeom.create(skydir=(10, -2), npix=(30, 20), binsz=0.2, frame="galactic", axes=[axis])


def host(x):
    return gpumask.to_host(x.data if isinstance(x, Map) else x)


# ---------------------------------------------------------------------- creation


def test_from_geom_defaults(geom, backend):
    m = Map.from_geom(geom, backend=backend)
    assert m.dtype == np.float32 and m.data.shape == geom.data_shape == (50, 50)
    assert_on_backend(m.data, backend)
    assert not host(m).any()


def test_from_geom_keeps_given_arrays_where_they_are(geom, backend):
    data = backend.xp.ones(geom.data_shape, dtype=bool)
    m = Map.from_geom(geom, data=data)
    assert m.data is data and m.is_mask
    listed = Map.from_geom(geom, data=np.zeros(geom.data_shape).tolist(), backend=backend)
    assert_on_backend(listed, backend)
    moved = Map.from_geom(geom, data=np.ones(geom.data_shape), backend=backend)
    assert_on_backend(moved, backend)


def test_from_geom_quantity_sets_unit(geom):
    m = Map.from_geom(geom, data=np.ones(geom.data_shape) * u.Unit("cm2 s"))
    assert m.unit == u.Unit("cm2 s")


def test_shape_mismatch_is_explained(geom):
    with pytest.raises(ValueError, match=r"data shape \(3, 3\) does not match.*\(50, 50\)"):
        Map.from_geom(geom, data=np.zeros((3, 3)))


def test_create_passes_geometry_arguments(backend):
    m = Map.create(npix=(7, 5), binsz=0.3, frame="galactic", proj="TAN", dtype=np.int32, backend=backend)
    assert m.geom.npix == (7, 5) and m.geom.projection == "TAN" and m.dtype == np.int32
    assert_on_backend(m, backend)


def test_data_setter_validates(geom, backend):
    m = Map.from_geom(geom, backend=backend)
    with pytest.raises(ValueError, match="does not match"):
        m.data = backend.xp.zeros((2, 2))
    m.data = backend.xp.ones(geom.data_shape)
    assert float(host(m).sum()) == 2500.0


# ---------------------------------------------------------------------- algebra


def test_seed_notebook_mask_combination(geom, backend, rng):
    a = rng.random(geom.data_shape) > 0.3
    b = rng.random(geom.data_shape) > 0.5
    mask = Map.from_geom(geom, data=a, backend=backend)
    other = Map.from_geom(geom, data=b, backend=backend)
    before = mask.data
    mask *= other  # the notebook's "mask_map *= mask_map_catalog"
    assert mask.data is before and mask.is_mask
    np.testing.assert_array_equal(host(mask), a & b)
    assert_on_backend(mask, backend)


def test_logical_and_comparison_ops(geom, backend, rng):
    x = rng.normal(size=geom.data_shape)
    m = Map.from_geom(geom, data=x, backend=backend)
    lo, hi = m < 0.5, m >= -0.5
    assert lo.is_mask and lo.unit == u.dimensionless_unscaled
    np.testing.assert_array_equal(host(lo & hi), (x < 0.5) & (x >= -0.5))
    np.testing.assert_array_equal(host(lo | hi), (x < 0.5) | (x >= -0.5))
    np.testing.assert_array_equal(host(lo ^ hi), (x < 0.5) ^ (x >= -0.5))
    np.testing.assert_array_equal(host(~lo), ~(x < 0.5))
    np.testing.assert_array_equal(host(m == m), np.ones_like(x, bool))
    np.testing.assert_array_equal(host(m != 0.1), x != 0.1)
    np.testing.assert_array_equal(host(m > 0), x > 0)
    np.testing.assert_array_equal(host(m <= 0), x <= 0)
    for out in (lo, hi, lo & hi, ~lo):
        assert_on_backend(out, backend)
    acc = lo.copy()
    acc &= hi
    acc |= ~hi
    np.testing.assert_array_equal(host(acc), ((x < 0.5) & (x >= -0.5)) | ~(x >= -0.5))


def test_arithmetic_with_maps_scalars_and_arrays(geom, backend, rng):
    x, y = rng.random(geom.data_shape), rng.random(geom.data_shape) + 1
    a = Map.from_geom(geom, data=x, backend=backend)
    b = Map.from_geom(geom, data=y, backend=backend)
    np.testing.assert_allclose(host(a + b), x + y)
    np.testing.assert_allclose(host(a - 2), x - 2)
    np.testing.assert_allclose(host(2 - a), 2 - x)
    np.testing.assert_allclose(host(a * b), x * y)
    np.testing.assert_allclose(host(3 * a), 3 * x)
    np.testing.assert_allclose(host(a / b), x / y)
    np.testing.assert_allclose(host(1 / b), 1 / y)
    np.testing.assert_allclose(host(a**2), x**2)
    np.testing.assert_allclose(host(-a), -x)
    np.testing.assert_allclose(host(abs(-a)), x)
    np.testing.assert_allclose(host(a * backend.xp.asarray(y)), x * y)
    c = a.copy()
    c += b
    c -= 1
    c *= 2
    c /= b
    np.testing.assert_allclose(host(c), (x + y - 1) * 2 / y)


def test_host_array_on_the_left_defers_to_map(geom):
    a = Map.from_geom(geom, data=np.ones(geom.data_shape))
    out = np.full(geom.data_shape, 2.0) * a
    assert isinstance(out, Map)


def test_units_follow_the_operation(geom):
    a = Map.from_geom(geom, data=np.ones(geom.data_shape), unit="cm2 s")
    b = Map.from_geom(geom, data=np.ones(geom.data_shape), unit="m2 s")
    assert (a * b).unit == u.Unit("cm2 s") * u.Unit("m2 s")
    np.testing.assert_allclose(host(a + b), 1 + 1e4)  # b converted to a's unit
    assert (a / b).unit == u.Unit("cm2 s") / u.Unit("m2 s")
    np.testing.assert_array_equal(host(a < 2 * u.Unit("m2 s")), True)
    with pytest.raises(u.UnitConversionError, match="not convertible"):
        a + Map.from_geom(geom, data=np.ones(geom.data_shape), unit="TeV")


def test_geometry_mismatch_is_refused(geom):
    other = WcsGeom.create(skydir=CRAB, width="5 deg", binsz=0.05, frame="galactic")
    a = Map.from_geom(geom, data=np.ones(geom.data_shape))
    b = Map.from_geom(other, data=np.ones(other.data_shape))
    with pytest.raises(ValueError, match="geometries differ"):
        a + b
    with pytest.raises(ValueError, match="geometries differ"):
        (a > 0) & (b > 0)


def test_logic_on_float_maps_is_refused(geom):
    a = Map.from_geom(geom)
    with pytest.raises(TypeError, match="boolean"):
        ~a


def test_no_implicit_host_conversion(geom):
    m = Map.from_geom(geom)
    with pytest.raises(TypeError, match="to_numpy"):
        np.asarray(m)
    with pytest.raises(TypeError, match="ambiguous"):
        bool(m > 0)


# ---------------------------------------------------------------------- conversions


def test_to_backend_to_numpy_copy_astype(geom, backend):
    m = Map.from_geom(geom, data=np.arange(2500.0).reshape(50, 50), backend=backend)
    assert m.to_backend(backend.name) is m
    with gpumask.count_transfers() as c:
        arr = m.to_numpy()
    assert c.calls == 1 and type(arr) is np.ndarray
    on_host = m.to_backend("numpy")
    assert on_host.backend.name == "numpy" and on_host.geom == m.geom
    cp = m.copy()
    cp.data[0, 0] = -1
    assert float(host(m)[0, 0]) == 0.0
    as_int = m.astype(np.int16)
    assert as_int.dtype == np.int16
    assert_on_backend(as_int, backend)
    assert m.copy(unit="TeV").unit == u.TeV


# ---------------------------------------------------------------------- reductions


@pytest.mark.gammapy
def test_sum_over_axes_matches_gammapy(cube_geom, backend, rng, gammapy_maps):
    data = rng.poisson(3.0, size=cube_geom.data_shape).astype(np.float32)
    m = Map.from_geom(cube_geom, data=data, backend=backend)
    gm = gammapy_maps.Map.from_geom(_gammapy_geom(cube_geom, gammapy_maps), data=data)
    for keepdims in (True, False):
        ours, theirs = m.sum_over_axes(keepdims=keepdims), gm.sum_over_axes(keepdims=keepdims)
        np.testing.assert_allclose(host(ours), theirs.data, rtol=1e-6)
        assert ours.geom.data_shape == theirs.geom.data_shape
        if keepdims:
            np.testing.assert_allclose(ours.geom.axes[0].edges.value, theirs.geom.axes[0].edges.value)
        assert_on_backend(ours, backend)


def test_reduce_masks_over_energy(cube_geom, backend, rng):
    data = rng.random(cube_geom.data_shape) > 0.7
    m = Map.from_geom(cube_geom, data=data, backend=backend)
    np.testing.assert_array_equal(host(m.reduce_over_axes("any", keepdims=False)), data.any(axis=0))
    np.testing.assert_array_equal(host(m.reduce_over_axes("all", keepdims=True)), data.all(axis=0, keepdims=True))
    # gammapy's default: the reduced axes are dropped
    np.testing.assert_array_equal(host(m.reduce_over_axes(np.logical_and)), data.all(axis=0))
    np.testing.assert_array_equal(host(m.sum_over_axes(keepdims=False)), data.sum(axis=0))
    with pytest.raises(ValueError, match="func"):
        m.reduce_over_axes("median")
    with pytest.raises(ValueError, match="no axis 'time'"):
        m.reduce_over_axes(axes_names=["time"])


@pytest.mark.gammapy
def test_slice_by_idx_matches_gammapy(cube_geom, rng, gammapy_maps):
    data = rng.random(cube_geom.data_shape).astype(np.float32)
    m = Map.from_geom(cube_geom, data=data)
    gm = gammapy_maps.Map.from_geom(_gammapy_geom(cube_geom, gammapy_maps), data=data)
    for sel in (1, slice(1, 3)):
        ours, theirs = m.slice_by_idx({"energy": sel}), gm.slice_by_idx({"energy": sel})
        np.testing.assert_array_equal(host(ours), theirs.data)
        assert ours.geom.data_shape == theirs.geom.data_shape
    np.testing.assert_array_equal(host(m.get_image_by_idx((2,))), data[2])
    with pytest.raises(IndexError, match="out of range"):
        m.slice_by_idx({"energy": 9})


@pytest.mark.gammapy
def test_cutout_matches_gammapy(geom, backend, rng, gammapy_maps):
    data = rng.random(geom.data_shape)
    m = Map.from_geom(geom, data=data, backend=backend)
    gm = gammapy_maps.Map.from_geom(_gammapy_geom(geom, gammapy_maps), data=data)
    pos = SkyCoord(184.0, -5.0, unit="deg", frame="galactic")
    for mode in ("trim", "partial"):
        ours = m.cutout(pos, "1.3 deg", mode=mode)
        theirs = gm.cutout(pos, 1.3 * u.deg, mode=mode)
        np.testing.assert_array_equal(host(ours), theirs.data)
        assert ours.geom.wcs.wcs.compare(theirs.geom.wcs.wcs, tolerance=1e-12)
        assert_on_backend(ours, backend)


def _gammapy_geom(geom, gammapy_maps):
    axes = [gammapy_maps.MapAxis.from_edges(ax.edges, interp=ax.interp, name=ax.name) for ax in geom.axes]
    return gammapy_maps.WcsGeom(geom.wcs.deepcopy(), geom.npix, axes=axes)


# ---------------------------------------------------------------------- residency


def test_whole_pipeline_copies_nothing_until_write(geom, backend, tmp_path):
    """Geometry -> maps -> masks -> algebra -> reductions: no call to the funnel;
    writing the mask is the one copy."""
    with gpumask.count_transfers() as counter:
        counts = Map.from_geom(geom, backend=backend) + 3.0
        significance = (counts - 1.0) / 2.0
        excl = significance < 0.5
        excl &= geom.boundary_mask("0.3 deg", backend=backend)
        excl *= ~(counts > 10)
        cube = Map.from_geom(geom.to_cube([MapAxis.from_energy_bounds(1, 10, 3, unit="TeV")]), backend=backend)
        summed = (cube + 1).sum_over_axes(keepdims=False)
        both = excl & (summed > 0)
        _ = geom.get_coord(backend=backend)
    assert counter.calls == 0 and counter.device_bytes == 0
    assert_on_backend(both, backend)
    with gpumask.count_transfers() as counter:
        both.write(tmp_path / "mask.fits")
    assert counter.calls == 1


# ---------------------------------------------------------------------- display


def test_repr_and_html_describe_the_map(geom, backend):
    mask = Map.from_geom(geom, data=backend.xp.ones(geom.data_shape, dtype=bool))
    mask.data[:5] = False
    text = repr(mask)
    for token in ("(50, 50)", "bool", backend.name, "galactic", "CAR", "250 of 2500", "10.00 %"):
        assert token in text
    html = mask._repr_html_()
    assert "<table>" in html and "10.00 %" in html
    assert "excluded" not in repr(Map.from_geom(geom))


def test_plot_draws_on_wcsaxes(geom):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mask = geom.boundary_mask("1 deg")
    with gpumask.count_transfers() as c:
        ax = mask.plot()
    assert c.calls == 1
    assert len(ax.images) == 1
    plt.close("all")
    cube = Map.from_geom(geom.to_cube([MapAxis.from_energy_bounds(1, 10, 2, unit="TeV")]))
    with pytest.raises(ValueError, match="sum_over_axes"):
        cube.plot()


def test_wcsndmap_alias():
    assert gpumask.WcsNDMap is Map
    assert backend_of(Map.create(npix=2, binsz=1)).name in ("numpy", "cupy")


# ----------------------------------------------------------------------------- resampling


@pytest.mark.parametrize("target", [
    dict(npix=(80, 50), binsz=0.07, skydir=(266.4, -28.9), frame="icrs", proj="TAN"),
    dict(npix=(30, 30), binsz=0.2, skydir=(2.0, 1.0), frame="galactic", proj="CAR"),
])
def test_interp_to_geom_nearest_matches_gammapy(backend, rng, target):
    gmaps = pytest.importorskip("gammapy.maps")
    src = dict(npix=(60, 40), binsz=0.1, skydir=(0, 0), frame="galactic")
    data = rng.random((40, 60)) > 0.5
    m = gpumask.Map.from_geom(gpumask.WcsGeom.create(**src), data=backend.xp.asarray(data))
    got = m.interp_to_geom(gpumask.WcsGeom.create(**target))
    ref = gmaps.Map.from_geom(gmaps.WcsGeom.create(**src), data=data).interp_to_geom(
        gmaps.WcsGeom.create(**target), method="nearest", fill_value=True
    )
    assert got.backend.name == backend.name and got.is_mask
    np.testing.assert_array_equal(got.to_numpy(), ref.data.astype(bool))


def test_interp_to_geom_fill_values_and_cubes(rng):
    geom = gpumask.WcsGeom.create(npix=(10, 10), binsz=1, skydir=(0, 0), frame="galactic")
    far = gpumask.WcsGeom.create(npix=(5, 5), binsz=1, skydir=(90, 0), frame="galactic")
    mask = gpumask.Map.from_geom(geom, data=np.zeros((10, 10), bool))
    assert mask.interp_to_geom(far).to_numpy().all()  # outside: not excluded
    image = gpumask.Map.from_geom(geom, data=rng.normal(size=(10, 10)))
    assert np.isnan(image.interp_to_geom(far).to_numpy()).all()
    assert image.interp_to_geom(geom) is image
    axis = gpumask.MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=3)
    cube = gpumask.Map.from_geom(geom.to_cube([axis]), data=rng.normal(size=(3, 10, 10)))
    half = gpumask.WcsGeom.create(npix=(4, 4), binsz=1, skydir=(0, 0), frame="galactic")
    out = cube.interp_to_geom(half.to_cube([axis]))
    np.testing.assert_array_equal(out.to_numpy(), cube.to_numpy()[:, 3:7, 3:7])
    with pytest.raises(ValueError, match="same axes"):
        cube.interp_to_geom(half)
    with pytest.raises(ValueError, match="nearest"):
        image.interp_to_geom(half, method="linear")
