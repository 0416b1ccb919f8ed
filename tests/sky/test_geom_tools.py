"""Geometry tools (crop, pad, downsample, upsample, to_binsz, indices, axis edits)
against gammapy 2.1 on seeded random geometries.

Random geometries: CAR/TAN/AIT, icrs/galactic, 0-3 non-spatial axes (log energy,
linear and sqrt axes).  Tolerances: headers, shapes and indices are compared for
exact equality; axis edges and centre coordinates to 1e-12 relative.  The random pairs (the same
``create`` arguments in both libraries) are built by :func:`geom_pair`, which
tests/sky/test_map_tools.py shares.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

import gpumask
from gpumask import MapAxis, WcsGeom
from gpumask.sky.axes import MapAxes

from ..conftest import assert_on_backend

PROJS = ("CAR", "TAN", "AIT")
FRAMES = ("icrs", "galactic")
EDGE_RTOL = 1e-12

# axis kinds: (name, nodes, unit, interp, node_type)
AXIS_KINDS = (
    ("energy", lambda rng, n: np.sort(rng.uniform(0.1, 100.0, n + 1)), "TeV", "log", "edges"),
    ("rad", lambda rng, n: np.sort(rng.uniform(0.0, 2.0, n + 1)), "deg", "lin", "edges"),
    ("migra", lambda rng, n: np.sort(rng.uniform(0.2, 3.0, n + 1)), "", "sqrt", "edges"),
)


def random_axes(rng, naxes, nbins=None):
    """``naxes`` random axis specs (name, nodes, unit, interp, node_type)."""
    kinds = rng.permutation(len(AXIS_KINDS))[:naxes]
    specs = []
    for i, k in enumerate(kinds):
        name, make, unit, interp, node_type = AXIS_KINDS[k]
        n = int(rng.integers(2, 6)) if nbins is None else nbins[i % len(nbins)]
        nodes = make(rng, n)
        while np.any(np.diff(nodes) <= 1e-3):
            nodes = make(rng, n)
        specs.append((name, nodes, unit, interp, node_type))
    return specs


def make_axes(specs, lib):
    return [lib.MapAxis(u.Quantity(nodes, unit), interp=interp, name=name, node_type=node_type)
            for name, nodes, unit, interp, node_type in specs]


def random_geom_kwargs(rng, npix_multiple=1):
    proj = str(rng.choice(PROJS))
    frame = str(rng.choice(FRAMES))
    nx, ny = (int(rng.integers(2, 7)) * npix_multiple for _ in range(2))
    binsz = float(rng.uniform(0.05, 1.0))
    lon = float(rng.uniform(0.0, 360.0))
    lat = float(rng.uniform(-70.0, 70.0))
    return dict(npix=(nx, ny), binsz=binsz, proj=proj, frame=frame, skydir=(lon, lat))


def geom_pair(gm, rng, naxes=None, npix_multiple=1, nbins=None):
    """(gpumask geom, gammapy geom, create kwargs, axis specs) built alike."""
    kwargs = random_geom_kwargs(rng, npix_multiple)
    naxes = int(rng.integers(0, 4)) if naxes is None else naxes
    specs = random_axes(rng, naxes, nbins)
    ours = WcsGeom.create(axes=make_axes(specs, gpumask), **kwargs)
    theirs = gm.WcsGeom.create(axes=make_axes(specs, gm), **kwargs)
    return ours, theirs, kwargs, specs


def assert_same_geom(ours, theirs):
    """Exact header (every card), shape and axes of a gpumask and a gammapy geometry."""
    h1, h2 = ours.to_header(), theirs.to_header()
    assert list(h1.keys()) == list(h2.keys())
    for key in h2.keys():
        assert h1[key] == h2[key], (key, h1[key], h2[key])
    assert ours.data_shape == tuple(int(n) for n in theirs.data_shape)
    assert [ax.name for ax in ours.axes] == list(theirs.axes.names)
    for a, b in zip(ours.axes, theirs.axes):
        assert a.node_type == b.node_type and a.interp == b.interp and a.unit == b.unit
        np.testing.assert_allclose(a.edges.value, b.edges.value, rtol=EDGE_RTOL)


CASES = range(12)


@pytest.fixture
def gm():
    return pytest.importorskip("gammapy.maps")


# ---------------------------------------------------------------------- WCS arithmetic


@pytest.mark.gammapy
@pytest.mark.parametrize("case", CASES)
def test_crop_pad_downsample_upsample_give_gammapys_header(gm, case):
    rng = np.random.default_rng(1000 + case)
    ours, theirs, _, _ = geom_pair(gm, rng, npix_multiple=6)
    nx, ny = ours.npix
    crop = (int(rng.integers(0, nx // 2)), int(rng.integers(0, ny // 2)))
    assert_same_geom(ours.crop(crop), theirs.crop(crop))
    assert_same_geom(ours.crop(min(crop)), theirs.crop(min(crop)))
    pad = (int(rng.integers(0, 4)), int(rng.integers(0, 4)))
    assert_same_geom(ours.pad(pad), theirs.pad(pad, None))
    assert_same_geom(ours.pad(2), theirs.pad(2, None))
    for factor in (2, 3, 6):
        assert_same_geom(ours.downsample(factor), theirs.downsample(factor))
    for factor in (2, 3):
        assert_same_geom(ours.upsample(factor), theirs.upsample(factor))
    # chained: the header arithmetic composes as gammapy's
    assert_same_geom(ours.upsample(2).crop(1).pad(3).downsample(2),
                     theirs.upsample(2).crop(1).pad(3, None).downsample(2))


@pytest.mark.gammapy
@pytest.mark.parametrize("case", CASES)
def test_to_binsz_matches_gammapy(gm, case):
    rng = np.random.default_rng(2000 + case)
    ours, theirs, _, _ = geom_pair(gm, rng)
    binsz = float(rng.uniform(0.03, 0.6))
    assert_same_geom(ours.to_binsz(binsz), theirs.to_binsz(binsz))


@pytest.mark.gammapy
@pytest.mark.parametrize("case", CASES)
def test_center_coord_flat_allsky_match_gammapy(gm, case):
    rng = np.random.default_rng(3000 + case)
    ours, theirs, _, _ = geom_pair(gm, rng)
    a, b = ours.center_coord, theirs.center_coord
    assert len(a) == len(b) == ours.ndim
    for x, y in zip(a, b):
        assert isinstance(x, u.Quantity) and x.unit == y.unit and x.shape == np.shape(y)
        np.testing.assert_allclose(x.value, y.value, rtol=EDGE_RTOL, atol=1e-12)
    assert ours.is_flat == theirs.is_flat
    assert ours.is_allsky == theirs.is_allsky
    for name in [ax.name for ax in ours.axes]:
        assert ours.squash(name).is_flat == theirs.squash(name).is_flat


@pytest.mark.gammapy
@pytest.mark.parametrize("kwargs", [dict(binsz=10.0, proj="AIT"), dict(binsz=5.0, frame="galactic"),
                                    dict(binsz=5.0, width=(360.0, 90.0))])
def test_is_allsky_matches_gammapy(gm, kwargs):
    assert WcsGeom.create(**kwargs).is_allsky == gm.WcsGeom.create(**kwargs).is_allsky


@pytest.mark.gammapy
def test_to_image_to_cube_pixel_scales_still_match_gammapy(gm, rng):
    for _ in range(5):
        ours, theirs, _, specs = geom_pair(gm, rng, naxes=2)
        assert_same_geom(ours.to_image(), theirs.to_image())
        np.testing.assert_array_equal(ours.pixel_scales.deg, theirs.pixel_scales.deg)
        extra = random_axes(np.random.default_rng(5), 1)
        extra = [(n + "2", *rest) for n, *rest in extra]
        assert_same_geom(ours.to_cube(make_axes(extra, gpumask)), theirs.to_cube(make_axes(extra, gm)))


# ---------------------------------------------------------------------- indices


def _random_pix(rng, geom, n=200):
    """Pixel coordinates in and around the map, some NaN, some on half-integers."""
    sizes = list(geom.npix) + [ax.nbin for ax in geom.axes]
    pix = []
    for size in sizes:
        p = rng.uniform(-1.5, size + 0.5, n)
        half = rng.random(n) < 0.1
        p[half] = np.round(p[half] * 2) / 2
        p[:5] = [-0.5, size - 0.5, size - 0.5000001, -0.49999, np.nan]
        pix.append(p)
    return pix


@pytest.mark.gammapy
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("clip", [False, True])
def test_pix_to_idx_and_coord_to_idx_match_gammapy(gm, backend, case, clip):
    rng = np.random.default_rng(4000 + case)
    ours, theirs, _, _ = geom_pair(gm, rng)
    pix = _random_pix(rng, ours)
    expected = theirs.pix_to_idx(tuple(pix), clip=clip)
    dev = [backend.xp.asarray(p) for p in pix]
    with gpumask.count_transfers() as counter:
        got = ours.pix_to_idx(dev, clip=clip)
    assert counter.calls == 0
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert_on_backend(a, backend)
        np.testing.assert_array_equal(gpumask.to_host(a), b)

    # coordinates: host (lon, lat, c_0, ...) -> the same pixels as gammapy (positions
    # on a pixel border are left out: there the round trip's float noise decides)
    with np.errstate(invalid="ignore"):
        clear = np.all([np.abs((p % 1.0) - 0.5) > 1e-6 for p in pix], axis=0)
    coords = theirs.pix_to_coord(tuple(p[clear] for p in pix))
    host_coords = tuple(np.asarray(c.value) for c in coords)
    expected = theirs.coord_to_idx(coords, clip=clip)
    for a, b in zip(ours.coord_to_idx(host_coords, clip=clip), expected):
        np.testing.assert_array_equal(a, b)
    as_dict = dict(zip(["lon", "lat"] + [ax.name for ax in ours.axes], coords))
    for a, b in zip(ours.coord_to_idx(as_dict, clip=clip), expected):
        np.testing.assert_array_equal(a, b)


@pytest.mark.gammapy
def test_coord_to_idx_accepts_gammapys_coordinate_forms(gm, backend, rng):
    ours, theirs, _, _ = geom_pair(gm, rng, naxes=1)
    name = ours.axes[0].name
    pix = _random_pix(rng, ours)
    lon, lat, c0 = theirs.pix_to_coord(tuple(pix))
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(lon.value) & np.all([np.abs((p % 1.0) - 0.5) > 1e-6 for p in pix], axis=0)
    sky = SkyCoord(lon[ok], lat[ok], frame=ours.frame).transform_to(
        "galactic" if ours.frame == "icrs" else "icrs")
    expected = theirs.coord_to_idx({"skycoord": sky, name: c0[ok]})
    for form in ({"skycoord": sky, name: c0[ok]}, (sky, c0[ok]),
                 gm.MapCoord.create({"skycoord": sky, name: c0[ok]})):
        for a, b in zip(ours.coord_to_idx(form), expected):
            np.testing.assert_array_equal(a, b)
    # device arrays (deg and the axis unit) stay on the device
    dev = {"lon": backend.xp.asarray(lon.value[ok]), "lat": backend.xp.asarray(lat.value[ok]),
           name: backend.xp.asarray(c0.value[ok])}
    with gpumask.count_transfers() as counter:
        got = ours.coord_to_idx(dev)
    assert counter.calls == 0
    for a, b in zip(got, theirs.coord_to_idx({"lon": lon[ok], "lat": lat[ok], name: c0[ok]})):
        assert_on_backend(a, backend)
        np.testing.assert_array_equal(gpumask.to_host(a), b)


def test_coord_to_pix_needs_all_or_no_axis_coordinates():
    axes = [MapAxis.from_energy_bounds("1 TeV", "10 TeV", 2), MapAxis.from_edges([0, 1, 2], name="rad")]
    geom = WcsGeom.create(npix=4, axes=axes)
    assert len(geom.coord_to_pix((0.0, 0.0))) == 2
    assert len(geom.coord_to_pix((0.0, 0.0, "2 TeV", 0.5))) == 4
    with pytest.raises(ValueError, match=r"axes \['rad'\] are missing"):
        geom.coord_to_pix({"lon": 0.0, "lat": 0.0, "energy": 2.0})
    with pytest.raises(ValueError, match="3 non-spatial coordinate"):
        geom.coord_to_pix((0.0, 0.0, 1.0, 2.0, 3.0))
    with pytest.raises(TypeError, match="SkyCoord, a"):
        geom.coord_to_pix(5.0)


# ---------------------------------------------------------------------- axis edits


@pytest.mark.gammapy
@pytest.mark.parametrize("case", CASES)
def test_axis_edits_match_gammapy(gm, case):
    rng = np.random.default_rng(5000 + case)
    ours, theirs, _, specs = geom_pair(gm, rng, naxes=2, nbins=(4, 6))
    for ax in ours.axes:
        name = ax.name
        assert_same_geom(ours.squash(name), theirs.squash(name))
        assert_same_geom(ours.drop(name), theirs.drop(name))
        for width in (1, (2, 0)):
            padded = ours.pad(width, axis_name=name)
            if ax.interp == "sqrt" and padded.axes[name].nodes.value[0] < 0:
                continue  # gammapy folds sqrt extrapolation below 0 back (see the MapAxis test)
            assert_same_geom(padded, theirs.pad(width, axis_name=name))
        assert_same_geom(ours.upsample(3, axis_name=name), theirs.upsample(3, axis_name=name))
        assert_same_geom(ours.downsample(2, axis_name=name), theirs.downsample(2, axis_name=name))
        for sel in (0, -1, slice(1, 3), slice(None, 2), slice(2, None)):
            assert_same_geom(ours.slice_by_idx({name: sel}), theirs.slice_by_idx({name: sel}))
    # names the geometry lacks are ignored, as gammapy
    sl = {"energy_true": 0, ours.axes[0].name: slice(0, 2)}
    assert_same_geom(ours.slice_by_idx(sl), theirs.slice_by_idx(sl))


@pytest.mark.gammapy
@pytest.mark.parametrize("case", CASES)
def test_resample_axis_matches_gammapy(gm, case):
    rng = np.random.default_rng(6000 + case)
    ours, theirs, _, specs = geom_pair(gm, rng, naxes=2, nbins=(8, 5))
    for ax in ours.axes:
        edges = ax.edges
        # coarser edges: a random subset, or random values inside and beyond the range
        picks = np.sort(rng.choice(ax.nbin + 1, size=int(rng.integers(2, ax.nbin + 1)), replace=False))
        for new_edges in (edges[picks],
                          np.sort(rng.uniform(edges[0].value * 0.8, edges[-1].value * 1.1, 4)) * edges.unit):
            new = MapAxis.from_edges(new_edges, interp=ax.interp, name=ax.name)
            gm_new = gm.MapAxis.from_edges(new_edges, interp=ax.interp, name=ax.name)
            try:
                expected = theirs.resample_axis(gm_new)
            except ValueError:
                with pytest.raises(ValueError, match="no overlap"):
                    ours.resample_axis(new)
                continue
            assert_same_geom(ours.resample_axis(new), expected)


@pytest.mark.gammapy
@pytest.mark.parametrize("interp", ["lin", "log", "sqrt"])
@pytest.mark.parametrize("node_type", ["edges", "center"])
def test_map_axis_pad_upsample_downsample_match_gammapy(gm, rng, interp, node_type):
    for nbin in (1, 3, 4, 7):
        nodes = np.sort(rng.uniform(0.5, 30.0, nbin + (node_type == "edges")))
        ours = MapAxis(nodes, interp=interp, name="x", node_type=node_type, unit="m")
        theirs = gm.MapAxis(nodes * u.m, interp=interp, name="x", node_type=node_type)

        def same(a, b):
            assert a.node_type == b.node_type and a.nbin == b.nbin and a.unit == b.unit
            assert a.interp == b.interp and a.name == b.name
            np.testing.assert_allclose(a.edges.value, b.edges.value, rtol=EDGE_RTOL)
            np.testing.assert_allclose(a.center.value, b.center.value, rtol=EDGE_RTOL)

        for width in (1, (0, 2), (3, 1)):
            if node_type == "center" and nbin == 1:
                with pytest.raises(ValueError, match="single node"):
                    ours.pad(width)
                continue
            padded = ours.pad(width)
            try:
                expected = theirs.pad(width)
            except ValueError:
                # gammapy's sqrt inverse is p**2 without the sign: extrapolating below
                # 0 folds back and its nodes are no longer sorted; ours stay monotonic
                assert interp == "sqrt" and padded.nodes.value[0] < 0
                continue
            if interp == "sqrt" and padded.nodes.value[0] < 0:
                theirs_nodes = expected.edges if node_type == "edges" else expected.center
                np.testing.assert_allclose(np.abs(padded.nodes.value), theirs_nodes.value, rtol=EDGE_RTOL)
                assert np.all(np.diff(padded.nodes.value) > 0)
                continue
            same(padded, expected)
        for factor in (1, 2, 5):
            if node_type == "center" and nbin == 1:
                continue
            same(ours.upsample(factor), theirs.upsample(factor))
        for factor in (1, 2, 3):
            for strict in (True, False):
                try:
                    expected = theirs.downsample(factor, strict=strict)
                except ValueError:
                    with pytest.raises(ValueError, match="not divisible"):
                        ours.downsample(factor, strict=strict)
                    continue
                same(ours.downsample(factor, strict=strict), expected)
        if ours.nbin > 1 or node_type == "edges":  # gammapy cannot squash one centre node
            same(ours.squash(), theirs.squash())


def test_map_axes_is_a_tuple_indexed_by_name():
    energy = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 3)
    rad = MapAxis.from_edges([0.0, 1.0], name="rad", unit="deg")
    geom = WcsGeom.create(npix=3, axes=[energy, rad])
    axes = geom.axes
    assert isinstance(axes, MapAxes) and isinstance(axes, tuple)
    assert axes["rad"] is rad and axes[0] is energy and axes == (energy, rad)
    assert axes.names == ["energy", "rad"] and axes.shape == (3, 1)
    assert axes.index_data("energy") == 1 and axes.index_data("rad") == 0
    assert isinstance(axes[:1], MapAxes) and WcsGeom.create(npix=3).axes == ()
    with pytest.raises(KeyError, match="no axis 'time'"):
        axes["time"]


# ---------------------------------------------------------------------- errors


def test_geometry_tool_errors_name_the_bad_value():
    energy = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 3)
    geom = WcsGeom.create(npix=(10, 6), binsz=0.1, axes=[energy])
    with pytest.raises(ValueError, match="not divisible by factor 4"):
        geom.downsample(4)
    with pytest.raises(ValueError, match="factor must be a positive integer, got 1.5"):
        geom.upsample(1.5)
    with pytest.raises(ValueError, match="factor must be a positive integer, got 0"):
        geom.downsample(0)
    with pytest.raises(ValueError, match="leaves no pixel"):
        geom.crop(3)
    with pytest.raises(ValueError, match="crop_width must be non-negative whole pixel counts"):
        geom.crop(1.5)
    with pytest.raises(ValueError, match="no axis 'time'"):
        geom.squash("time")
    with pytest.raises(ValueError, match="Number of energy bins \\(3\\) is not divisible by 2"):
        geom.downsample(2, axis_name="energy")
    with pytest.raises(IndexError, match="out of range for axis 'energy'"):
        geom.slice_by_idx({"energy": 3})
    with pytest.raises(ValueError, match="no overlap"):
        geom.resample_axis(MapAxis.from_energy_bounds("20 TeV", "30 TeV", 1))
    # an angle crops by rounded pixels, as gammapy's Map.crop
    assert geom.crop("0.2 deg").npix == (6, 2)
    assert geom.crop(("0.1 deg", "0 deg")).npix == (8, 6)
