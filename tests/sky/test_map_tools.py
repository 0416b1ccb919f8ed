"""Map tools (values at coordinates, interpolation, crop/pad, down/upsampling,
axis resampling, reductions, iteration) against gammapy 2.1 on seeded random maps
(CAR/TAN/AIT, icrs/galactic, 0-3 non-spatial axes, bool/int32/float32/float64 data),
on every backend, with device residency checked.

Tolerances, stated per test: exact equality for values picked by index (get_by_*,
nearest, crop, pad, order-0 repeats, mask rules, integer and boolean sums); 1e-12
relative for linear interpolation and float64 arithmetic; 1e-6 relative for float32
sums (summation order); 5e-4 relative where counts are shared by solid angle
(gpumask's exact solid angles against gammapy's planar estimate, which is off by
~1e-4 for 1 deg pixels: gpumask keeps the counts of each coarse pixel to 5e-5).
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u

import gpumask
from gpumask import Map, MapAxis, WcsGeom

from ..conftest import assert_on_backend
from .test_geom_tools import geom_pair, make_axes, random_axes

DTYPES = (np.bool_, np.int32, np.float32, np.float64)
CASES = range(8)
LINEAR_RTOL = 1e-12
FLOAT32_RTOL = 1e-6
SOLID_ANGLE_RTOL = 5e-4


@pytest.fixture
def gm():
    return pytest.importorskip("gammapy.maps")


def random_data(rng, shape, dtype, nan_fraction=0.0):
    if dtype == np.bool_:
        return rng.random(shape) > 0.3
    if np.issubdtype(dtype, np.integer):
        return rng.integers(-5, 50, shape).astype(dtype)
    data = rng.normal(3.0, 2.0, shape).astype(dtype)
    if nan_fraction:
        data[rng.random(shape) < nan_fraction] = np.nan
    return data


def map_pair(gm, rng, backend, dtype=np.float64, nan_fraction=0.0, **kwargs):
    """(gpumask map on ``backend``, gammapy map, host data) on the same random geometry."""
    ours, theirs, _, _ = geom_pair(gm, rng, **kwargs)
    data = random_data(rng, ours.data_shape, dtype, nan_fraction)
    m = Map.from_geom(ours, data=data, backend=backend, unit="cm-2", meta={"origin": "test"})
    g = gm.Map.from_geom(theirs, data=data.copy(), unit="cm-2")
    return m, g, data


def host(x):
    return gpumask.to_host(x.data if isinstance(x, Map) else x)


def assert_same_map(ours, theirs, backend, rtol=0.0, dtype=True):
    """Data (NaN where NaN), geometry and unit of a gpumask and a gammapy map; the
    gpumask map on ``backend`` with the unit and meta kept."""
    assert_on_backend(ours, backend)
    assert ours.geom.data_shape == tuple(int(n) for n in theirs.geom.data_shape)
    h1, h2 = ours.geom.to_header(), theirs.geom.to_header()
    assert list(h1.keys()) == list(h2.keys()) and all(h1[k] == h2[k] for k in h2.keys())
    got = host(ours)
    if dtype:
        assert got.dtype == theirs.data.dtype, (got.dtype, theirs.data.dtype)
    if rtol:
        np.testing.assert_allclose(got, theirs.data, rtol=rtol, atol=rtol * np.nanmax(np.abs(theirs.data)))
    else:
        np.testing.assert_array_equal(got, theirs.data)
    assert ours.unit == theirs.unit and ours.meta.get("origin") == "test"


def random_pix(rng, geom, n=300):
    sizes = list(geom.npix) + [ax.nbin for ax in geom.axes]
    pix = [rng.uniform(-1.2, s + 0.2, n) for s in sizes]
    for p, s in zip(pix, sizes):
        p[:6] = [-0.5, s - 0.5, -0.5000001, s - 0.50001, 0.0, s - 1.0]
        p[6] = np.nan
        half = rng.random(n) < 0.1
        p[half] = np.round(p[half] * 2) / 2  # ties: scipy's nearest goes down, floor(p + 0.5) up
    return pix


# ---------------------------------------------------------------------- values


@pytest.mark.gammapy
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_get_by_pix_coord_idx_match_gammapy(gm, backend, case, dtype):
    """Exact values and gammapy's dtype rule (data dtype when all inside, else float64)."""
    rng = np.random.default_rng(100 + case)
    m, g, _ = map_pair(gm, rng, backend, dtype)
    pix = random_pix(rng, m.geom)
    inside = [p[:5] for p in pix]
    for sample in (pix, inside):
        expected = g.get_by_pix(tuple(sample))
        with gpumask.count_transfers() as counter:
            got = m.get_by_pix(tuple(backend.xp.asarray(p) for p in sample))
        assert counter.calls == 0
        assert_on_backend(got, backend)
        assert host(got).dtype == expected.dtype
        np.testing.assert_array_equal(host(got), expected)
    # fill values of other types
    np.testing.assert_array_equal(host(m.get_by_pix(tuple(pix), fill_value=-1)),
                                  g.get_by_pix(tuple(pix), fill_value=-1))
    idx = tuple(rng.integers(0, n, 50) for n in list(m.geom.npix) + [ax.nbin for ax in m.geom.axes])
    np.testing.assert_array_equal(host(m.get_by_idx(idx)), g.get_by_idx(idx))
    # coordinates: positions off pixel borders (there the round trip's float noise decides)
    with np.errstate(invalid="ignore"):
        clear = np.all([np.abs((p % 1.0) - 0.5) > 1e-6 for p in pix], axis=0)
    coords = g.geom.pix_to_coord(tuple(p[clear] for p in pix))
    expected = g.get_by_coord(coords)
    with gpumask.count_transfers() as counter:
        got = m.get_by_coord(tuple(np.asarray(c.value) for c in coords))
    assert counter.calls == 0
    np.testing.assert_array_equal(host(got), expected)
    names = ["lon", "lat"] + [ax.name for ax in m.geom.axes]
    np.testing.assert_array_equal(host(m.get_by_coord(dict(zip(names, coords)))), expected)


@pytest.mark.gammapy
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("method", ["linear", "nearest"])
@pytest.mark.parametrize("fill_value", [None, np.nan, -3.5])
def test_interp_by_pix_matches_gammapy(gm, backend, case, method, fill_value):
    """Linear: 1e-12 relative (exact in the test's float64 scale); nearest: exact."""
    rng = np.random.default_rng(200 + case)
    dtype = DTYPES[case % len(DTYPES)]
    m, g, _ = map_pair(gm, rng, backend, dtype, nan_fraction=0.05)
    pix = random_pix(rng, m.geom)
    expected = g.interp_by_pix(tuple(pix), method=method, fill_value=fill_value)
    with gpumask.count_transfers() as counter:
        got = m.interp_by_pix(tuple(backend.xp.asarray(p) for p in pix), method=method, fill_value=fill_value)
    assert counter.calls == 0
    assert_on_backend(got, backend)
    got = host(got)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    if method == "nearest":
        np.testing.assert_array_equal(got, expected)
    else:
        scale = np.nanmax(np.abs(expected))
        np.testing.assert_allclose(got, expected, rtol=LINEAR_RTOL, atol=LINEAR_RTOL * scale)


@pytest.mark.gammapy
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("values_scale", ["lin", "log", "sqrt"])
def test_interp_by_coord_matches_gammapy(gm, backend, case, values_scale):
    """Coordinates as tuples, dicts and MapCoords; axes interpolated in their interp
    scale through the pixel coordinates; 1e-12 relative."""
    rng = np.random.default_rng(300 + case)
    m, g, data = map_pair(gm, rng, backend, np.float64)
    if values_scale != "lin":
        m.data = backend.xp.asarray(np.abs(data) + 0.1)
        g.data = np.abs(data) + 0.1
    pix = random_pix(rng, m.geom)
    coords = g.geom.pix_to_coord(tuple(pix))
    names = ["lon", "lat"] + [ax.name for ax in m.geom.axes]
    for method in ("linear", "nearest"):
        expected = g.interp_by_coord(coords, method=method, values_scale=values_scale)
        scale = np.nanmax(np.abs(expected))
        for form in (tuple(np.asarray(c.value) for c in coords), dict(zip(names, coords)),
                     gm.MapCoord.create(dict(zip(names, coords)), frame=m.geom.frame)):
            with gpumask.count_transfers() as counter:
                got = m.interp_by_coord(form, method=method, values_scale=values_scale)
            assert counter.calls == 0
            assert_on_backend(got, backend)
            np.testing.assert_allclose(host(got), expected, rtol=LINEAR_RTOL, atol=LINEAR_RTOL * scale)


def test_interp_on_device_coordinates_stays_on_device(backend, rng):
    """Device lon/lat go through the device projection (1e-9 deg of astropy), so
    the values agree with host coordinates to 1e-6 relative."""
    energy = MapAxis.from_energy_bounds("1 TeV", "100 TeV", 5)
    m = Map.create(npix=(20, 15), binsz=0.2, skydir=(30.0, 10.0), frame="galactic", axes=[energy],
                   backend=backend)
    m.data = backend.xp.asarray(rng.random(m.data.shape).astype(np.float32))
    lon = rng.uniform(28.5, 31.5, 100)
    lat = rng.uniform(8.8, 11.2, 100)
    e = np.exp(rng.uniform(0.0, np.log(100.0), 100))
    dev = {"lon": backend.xp.asarray(lon), "lat": backend.xp.asarray(lat), "energy": backend.xp.asarray(e)}
    with gpumask.count_transfers() as counter:
        got = m.interp_by_coord(dev)
        nearest = m.get_by_coord(dev)
    assert counter.calls == 0
    assert_on_backend(got, backend)
    expected = m.interp_by_coord({"lon": lon, "lat": lat, "energy": e * u.TeV})
    np.testing.assert_allclose(host(got), host(expected), rtol=1e-6)
    np.testing.assert_array_equal(host(nearest), host(m.get_by_coord((lon, lat, e))))


# ---------------------------------------------------------------------- crop / pad


@pytest.mark.gammapy
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_crop_and_pad_match_gammapy(gm, backend, case, dtype):
    """Exact.  Spatial pad: gammapy always fills with cval (its mode is ignored);
    gpumask's mode="edge" is checked against numpy.pad."""
    rng = np.random.default_rng(400 + case)
    m, g, data = map_pair(gm, rng, backend, dtype, npix_multiple=4)
    with gpumask.count_transfers() as counter:
        cropped = m.crop((1, 2))
        padded = m.pad(2, cval=1)
        padded_xy = m.pad((1, 3))
        edge = m.pad(2, mode="edge")
    assert counter.calls == 0
    assert_same_map(cropped, g.crop((1, 2)), backend)
    assert_same_map(padded, g.pad(2, cval=1), backend)
    assert_same_map(padded_xy, g.pad((1, 3)), backend)
    widths = [(0, 0)] * (data.ndim - 2) + [(2, 2), (2, 2)]
    np.testing.assert_array_equal(host(edge), np.pad(data, widths, mode="edge"))
    assert edge.geom == padded.geom
    for ax in m.geom.axes:
        if ax.interp == "sqrt":
            continue  # gammapy folds sqrt extrapolation below 0 (see test_geom_tools)
        for mode in ("constant", "edge"):
            assert_same_map(m.pad((1, 2), axis_name=ax.name, mode=mode, cval=7),
                            g.pad((1, 2), axis_name=ax.name, mode=mode, cval=7), backend)


# ---------------------------------------------------------------------- downsample


@pytest.mark.gammapy
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.int32, np.float32, np.float64])
@pytest.mark.parametrize("preserve_counts", [True, False])
def test_downsample_numbers_match_gammapy(gm, backend, case, dtype, preserve_counts):
    """Exact for integers, 1e-12 (float64) / 1e-6 (float32) relative; NaN count as 0."""
    rng = np.random.default_rng(500 + case)
    m, g, data = map_pair(gm, rng, backend, dtype, nan_fraction=0.05, npix_multiple=6, nbins=(4, 6))
    rtol = 0 if dtype == np.int32 else (1e-12 if dtype == np.float64 else FLOAT32_RTOL)
    for factor in (2, 3):
        with gpumask.count_transfers() as counter:
            ours = m.downsample(factor, preserve_counts=preserve_counts)
        assert counter.calls == 0
        assert_same_map(ours, g.downsample(factor, preserve_counts=preserve_counts), backend, rtol=rtol)
        weights = rng.random(data.shape)
        theirs = g.downsample(factor, preserve_counts=preserve_counts, weights=weights)
        wmap = Map.from_geom(m.geom, data=weights, backend=backend)
        assert_same_map(m.downsample(factor, preserve_counts=preserve_counts, weights=wmap), theirs, backend,
                        rtol=max(rtol, 1e-6) if dtype == np.int32 and not preserve_counts else rtol or 1e-12,
                        dtype=True)
    for ax in m.geom.axes:
        assert_same_map(m.downsample(2, preserve_counts=preserve_counts, axis_name=ax.name),
                        g.downsample(2, preserve_counts=preserve_counts, axis_name=ax.name), backend, rtol=rtol)
    assert m.downsample(1) is m


def _brute_mask_downsample(mask, factor, rule, weights=None):
    ny, nx = mask.shape[-2:]
    out = np.zeros(mask.shape[:-2] + (ny // factor, nx // factor), dtype=bool)
    w = np.ones(mask.shape) if weights is None else np.broadcast_to(weights, mask.shape)
    for idx in np.ndindex(out.shape):
        *lead, j, i = idx
        block = mask[tuple(lead) + (slice(j * factor, (j + 1) * factor), slice(i * factor, (i + 1) * factor))]
        wb = w[tuple(lead) + (slice(j * factor, (j + 1) * factor), slice(i * factor, (i + 1) * factor))]
        taking = wb != 0
        if rule == "all":
            out[idx] = bool(np.all(block[taking]))
        elif rule == "any":
            out[idx] = bool(np.any(block[taking]))
        else:
            out[idx] = 2 * np.sum(wb * block) > np.sum(wb)
    return out


@pytest.mark.gammapy
@pytest.mark.parametrize("case", CASES)
def test_downsample_masks_by_rule(gm, backend, case):
    """Exact.  "any" is what gammapy computes; "all" (default) and "majority" against
    a brute-force loop; every excluded fine pixel stays excluded under "all"."""
    rng = np.random.default_rng(600 + case)
    m, g, data = map_pair(gm, rng, backend, np.bool_, npix_multiple=6)
    for factor in (2, 3):
        with gpumask.count_transfers() as counter:
            results = {rule: m.downsample(factor, mask_rule=rule) for rule in ("all", "any", "majority")}
        assert counter.calls == 0
        assert_same_map(results["any"], g.downsample(factor), backend)
        assert_same_map(results["any"], g.downsample(factor, preserve_counts=False), backend)
        for rule, result in results.items():
            assert_on_backend(result, backend)
            assert result.is_mask and result.geom == results["any"].geom
            np.testing.assert_array_equal(host(result), _brute_mask_downsample(data, factor, rule))
        # nothing excluded is lost under "all": upsampling back covers every excluded pixel
        back = host(results["all"].upsample(factor))
        assert not np.any(back & ~data)
        weights = (rng.random(data.shape[-2:]) > 0.2).astype(float)
        for rule in ("all", "any", "majority"):
            got = m.downsample(factor, mask_rule=rule, weights=weights)
            np.testing.assert_array_equal(host(got), _brute_mask_downsample(data, factor, rule, weights))
        assert_same_map(m.downsample(factor, mask_rule="any", weights=weights),
                        g.downsample(factor, weights=np.broadcast_to(weights, data.shape)), backend)


# ---------------------------------------------------------------------- upsample


@pytest.mark.gammapy
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_upsample_matches_gammapy(gm, backend, case, dtype):
    """order 0 without preserve_counts and masks: exact (repeats); splines: 1e-10
    relative; preserve_counts: 5e-4 relative to gammapy (exact vs planar solid
    angles) while the counts of every coarse pixel are kept to 5e-5."""
    rng = np.random.default_rng(700 + case)
    m, g, _ = map_pair(gm, rng, backend, dtype)
    for factor in (2, 3):
        with gpumask.count_transfers() as counter:
            ours = m.upsample(factor, preserve_counts=False)
        assert counter.calls == 0
        assert_same_map(ours, g.upsample(factor, preserve_counts=False), backend)
        if dtype == np.bool_:
            assert_same_map(m.upsample(factor), g.upsample(factor), backend)
            continue
        if dtype == np.int32:
            continue  # shared counts are truncated to int: solid-angle noise moves the cut
        shared = m.upsample(factor)
        assert_same_map(shared, g.upsample(factor), backend, rtol=SOLID_ANGLE_RTOL)
        *lead, ny, nx = m.data.shape
        blocks = host(shared).astype(np.float64).reshape(*lead, ny, factor, nx, factor).sum(axis=(-3, -1))
        np.testing.assert_allclose(blocks, host(m), rtol=5e-5, atol=1e-6)
        for order in (1, 3):
            assert_same_map(m.upsample(factor, order=order, preserve_counts=False),
                            g.upsample(factor, order=order, preserve_counts=False), backend,
                            rtol=1e-10 if dtype == np.float64 else FLOAT32_RTOL)
        for ax in m.geom.axes:
            for order, preserve in ((0, False), (0, True), (1, False), (1, True)):
                assert_same_map(m.upsample(factor, order=order, preserve_counts=preserve, axis_name=ax.name),
                                g.upsample(factor, order=order, preserve_counts=preserve, axis_name=ax.name),
                                backend, rtol=1e-12 if dtype == np.float64 else FLOAT32_RTOL)
    assert m.upsample(1) is m


# ---------------------------------------------------------------------- axes


@pytest.mark.gammapy
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_resample_axis_matches_gammapy(gm, backend, case, dtype):
    """Exact for logical ufuncs, 1e-12 relative otherwise; gammapy's dtypes."""
    rng = np.random.default_rng(800 + case)
    m, g, data = map_pair(gm, rng, backend, dtype, naxes=int(rng.integers(1, 4)), nbins=(8, 6))
    for ax in m.geom.axes:
        picks = np.sort(rng.choice(ax.nbin + 1, size=int(rng.integers(2, ax.nbin + 1)), replace=False))
        new = MapAxis.from_edges(ax.edges[picks], interp=ax.interp, name=ax.name)
        gm_new = gm.MapAxis.from_edges(ax.edges[picks], interp=ax.interp, name=ax.name)
        for ufunc in (np.add, np.logical_and, np.logical_or, np.maximum):
            with gpumask.count_transfers() as counter:
                ours = m.resample_axis(new, ufunc=ufunc)
            assert counter.calls == 0
            exact = ufunc in (np.logical_and, np.logical_or, np.maximum) or dtype in (np.bool_, np.int32)
            rtol = 0 if exact else 1e-12
            assert_same_map(ours, g.resample_axis(gm_new, ufunc=ufunc), backend, rtol=rtol)
        weights = gm.Map.from_geom(g.geom, data=rng.random(data.shape))
        wmap = Map.from_geom(m.geom, data=weights.data, backend=backend)
        assert_same_map(m.resample_axis(new, weights=wmap), g.resample_axis(gm_new, weights=weights), backend,
                        rtol=1e-12)


@pytest.mark.gammapy
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_reductions_match_gammapy(gm, backend, case, dtype):
    """sum_over_axes / reduce_over_axes / reduce: gammapy's defaults (keepdims True
    for sum_over_axes, False otherwise), NaN left out, booleans summed as int64.
    Exact for integers and booleans, 1e-6 (float32) / 1e-12 (float64) relative."""
    rng = np.random.default_rng(900 + case)
    m, g, _ = map_pair(gm, rng, backend, dtype, nan_fraction=0.1, naxes=int(rng.integers(1, 4)))
    rtol = FLOAT32_RTOL if dtype == np.float32 else (1e-12 if dtype == np.float64 else 0)
    names = [ax.name for ax in m.geom.axes]
    with gpumask.count_transfers() as counter:
        results = [m.sum_over_axes(), m.sum_over_axes(keepdims=False), m.sum_over_axes(names[:1]),
                   m.reduce_over_axes(), m.reduce_over_axes(np.logical_or if dtype == np.bool_ else np.add,
                                                            keepdims=True),
                   m.reduce(names[-1], keepdims=True)]
    assert counter.calls == 0
    expected = [g.sum_over_axes(), g.sum_over_axes(keepdims=False), g.sum_over_axes(names[:1]),
                g.reduce_over_axes(), g.reduce_over_axes(np.logical_or if dtype == np.bool_ else np.add,
                                                         keepdims=True),
                g.reduce(names[-1], keepdims=True)]
    for ours, theirs in zip(results, expected):
        assert_same_map(ours, theirs, backend, rtol=rtol)
    if dtype == np.bool_:
        assert_same_map(m.reduce_over_axes(np.logical_and), g.reduce_over_axes(np.logical_and), backend)
        assert_same_map(m.reduce(names[0], np.logical_or), g.reduce(names[0], np.logical_or), backend)


@pytest.mark.gammapy
@pytest.mark.parametrize("case", CASES)
def test_slicing_and_iteration_match_gammapy(gm, backend, case):
    """Exact: slice_by_idx (names the map lacks are ignored, as gammapy),
    iter_by_image (maps, ndindex order), iter_by_image_data (data, index),
    iter_by_axis, to_cube."""
    rng = np.random.default_rng(1000 + case)
    m, g, data = map_pair(gm, rng, backend, np.float32, naxes=int(rng.integers(0, 4)))
    names = [ax.name for ax in m.geom.axes]
    slices = {n: (0 if i == 0 else slice(1, None)) for i, n in enumerate(names)}
    slices["energy_true"] = 3
    assert_same_map(m.slice_by_idx(slices), g.slice_by_idx(slices), backend)
    for keepdims in (False, True):
        ours, theirs = list(m.iter_by_image(keepdims=keepdims)), list(g.iter_by_image(keepdims=keepdims))
        assert len(ours) == len(theirs) == int(np.prod([ax.nbin for ax in m.geom.axes]))
        for a, b in zip(ours, theirs):
            assert_same_map(a, b, backend)
    for (a, ia), (b, ib) in zip(m.iter_by_image_data(), g.iter_by_image_data()):
        assert ia == ib
        assert_on_backend(a, backend)
        np.testing.assert_array_equal(host(a), b)
    assert list(m.iter_by_image_index()) == list(g.iter_by_image_index())
    for name in names:
        for keepdims in (False, True):
            for a, b in zip(m.iter_by_axis(name, keepdims=keepdims), g.iter_by_axis(name, keepdims=keepdims)):
                assert_same_map(a, b, backend)
    one = random_axes(rng, 1, nbins=(1,))
    one = [("extra", *rest[1:]) for rest in one]
    assert_same_map(m.to_cube(make_axes(one, gpumask)), g.to_cube(make_axes(one, gm)), backend)


# ---------------------------------------------------------------------- create / quantity


@pytest.mark.gammapy
@pytest.mark.parametrize("kwargs", [dict(), dict(width=3.0, frame="galactic"), dict(npix=(7, 5), proj="TAN"),
                                    dict(binsz=10.0, proj="AIT", frame="galactic"),
                                    dict(binsz=15.0, proj="AIT", dtype="float64", unit="TeV")])
def test_create_has_gammapys_defaults(gm, backend, kwargs):
    """Map.create's binsz defaults to 0.1 (WcsGeom.create's to 0.5); float32 zeros,
    NaN outside the projection of an all-sky map: exact."""
    ours = Map.create(backend=backend, **kwargs)
    theirs = gm.Map.create(**kwargs)
    assert_on_backend(ours, backend)
    assert ours.geom.data_shape == tuple(int(n) for n in theirs.geom.data_shape)
    h1, h2 = ours.geom.to_header(), theirs.geom.to_header()
    assert list(h1.items()) == list(h2.items())
    assert host(ours).dtype == theirs.data.dtype and ours.unit == theirs.unit
    np.testing.assert_array_equal(host(ours), theirs.data)
    assert WcsGeom.create().pixel_scales.deg[0] == 0.5 and Map.create(npix=2).geom.pixel_scales.deg[0] == 0.1
    with pytest.raises(ValueError, match="map_type must be 'wcs'"):
        Map.create(map_type="hpx")


def test_quantity_property(backend):
    m = Map.create(npix=3, unit="cm-2", backend=backend) + 2.0
    if backend.is_gpu:
        with pytest.raises(TypeError, match="to_backend\\('numpy'\\).quantity"):
            m.quantity
    else:
        q = m.quantity
        assert q.unit == u.Unit("cm-2") and np.shares_memory(q.value, m.data)
    m.quantity = np.full((3, 3), 4.0) * u.Unit("m-2")
    assert m.unit == u.Unit("m-2") and np.all(host(m) == 4.0)
    assert_on_backend(m, backend)


# ---------------------------------------------------------------------- residency


@pytest.mark.gpu
def test_tools_make_no_device_reads_but_the_documented_flag(device_reads, rng):
    """On the emulated device: every tool runs without reading device data; only
    get_by_pix/get_by_coord read one boolean (the dtype decision)."""
    backend = gpumask.get_backend("cupy")
    energy = MapAxis.from_energy_bounds("1 TeV", "100 TeV", 4)
    m = Map.create(npix=(12, 8), binsz=0.3, proj="TAN", axes=[energy], backend=backend)
    m.data = backend.xp.asarray(rng.random(m.data.shape).astype(np.float32))
    mask = m > 0.3
    xp = backend.xp
    pix = (xp.asarray(rng.uniform(-1, 12, 50)), xp.asarray(rng.uniform(-1, 8, 50)), xp.asarray(rng.uniform(0, 4, 50)))
    coarse = MapAxis.from_energy_bounds("1 TeV", "100 TeV", 2)
    device_reads.clear()
    with gpumask.count_transfers() as counter:
        m.interp_by_pix(pix)
        m.interp_by_pix(pix, method="nearest", fill_value=0.0)
        m.geom.pix_to_idx(pix)
        m.crop(1), m.pad(1, mode="edge"), m.pad(1, axis_name="energy")
        m.downsample(2), mask.downsample(2), mask.downsample(2, mask_rule="majority")
        m.upsample(2), m.upsample(2, order=1), mask.upsample(2), m.upsample(2, axis_name="energy", order=1)
        m.resample_axis(coarse), mask.resample_axis(coarse, ufunc=np.logical_and)
        m.sum_over_axes(), mask.reduce_over_axes(np.logical_or), m.slice_by_idx({"energy": 1})
        list(m.iter_by_image())
    assert len(device_reads) == 0 and counter.calls == 0
    m.get_by_pix(pix)
    assert [r.nbytes for r in device_reads] == [1] and counter.calls == 0


# ---------------------------------------------------------------------- errors


def test_map_tool_errors_name_the_bad_value(backend):
    energy = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 3)
    m = Map.create(npix=(6, 4), axes=[energy], backend=backend)
    with pytest.raises(ValueError, match="mask_rule must be one of"):
        m.downsample(2, mask_rule="most")
    with pytest.raises(ValueError, match="mode must be one of \\('constant', 'edge'\\), got 'interp'"):
        m.pad(1, mode="interp")
    with pytest.raises(ValueError, match="method must be 'linear' or 'nearest'"):
        m.interp_by_pix((0, 0, 0), method="cubic")
    with pytest.raises(ValueError, match="one array per map dimension 3"):
        m.get_by_pix((0.0, 0.0))
    with pytest.raises(ValueError, match="coordinates for the map axes"):
        m.get_by_coord((0.0, 0.0))
    with pytest.raises(ValueError, match="ufunc must be one of"):
        m.resample_axis(MapAxis.from_energy_bounds("1 TeV", "10 TeV", 1), ufunc=np.subtract)
    with pytest.raises(ValueError, match="order must be an integer spline order 0-5"):
        m.upsample(2, order=7)
    with pytest.raises(ValueError, match="no axis 'time'"):
        m.reduce("time")
    nodes = MapAxis.from_nodes([1.0, 2.0, 3.0], name="x")
    with pytest.raises(ValueError, match="centre nodes"):
        Map.create(npix=2, axes=[nodes], backend=backend).downsample(2, axis_name="x")


@pytest.mark.gammapy
def test_from_geom_allsky_nan_outside_projection_as_gammapy(backend, gammapy_maps):
    """gammapy's default data: NaN off the projection for float all-sky maps (both
    ``Map.create`` and ``Map.from_geom``); integer and bool maps stay zero."""
    ggeom = gammapy_maps.WcsGeom.create(binsz=5, proj="AIT", frame="galactic")
    want = gammapy_maps.Map.from_geom(ggeom).data
    got = gpumask.to_host(gpumask.Map.from_geom(ggeom, backend=backend).data)
    assert np.isnan(want).sum() > 0
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert not gpumask.to_host(gpumask.Map.from_geom(ggeom, dtype=int, backend=backend).data).any()
