"""Exact sky point-in-region tests (gpumask.masks._region_points) against brute-force
astropy separations and against WcsGeom.region_mask(method="sky") at pixel centres."""

from __future__ import annotations

import operator

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from regions import (
    CircleAnnulusSkyRegion,
    CirclePixelRegion,
    CircleSkyRegion,
    EllipseAnnulusSkyRegion,
    EllipseSkyRegion,
    PixCoord,
    PointSkyRegion,
    PolygonSkyRegion,
    RectangleSkyRegion,
    TextSkyRegion,
)
from scipy import sparse

from gpumask import WcsGeom
from gpumask.masks._region_points import contains_points, count_in_regions


def _random_points(rng, center, radius_deg, n):
    """Points scattered up to ``radius_deg`` around ``center`` (any frame)."""
    pa = rng.uniform(0, 360, n) * u.deg
    sep = np.sqrt(rng.uniform(0, 1, n)) * radius_deg * u.deg
    return center.directional_offset_by(pa, sep)


@pytest.mark.parametrize("center", [
    SkyCoord(83.63, 22.01, unit="deg"),          # Crab
    SkyCoord(359.95, -0.3, unit="deg"),          # across RA 0
    SkyCoord(10.0, 89.4, unit="deg"),            # near the pole
])
def test_circles_annuli_match_brute_force_separation(rng, center):
    events = _random_points(rng, center, 3.0, 20000)
    regions, radii = [], []
    for _ in range(25):
        c = _random_points(rng, center, 2.0, 1)[0].galactic  # regions in another frame
        r_in, r_out = np.sort(rng.uniform(0.05, 1.2, 2))
        regions.append(CircleSkyRegion(c, r_out * u.deg))
        radii.append((c, None, r_out))
        regions.append(CircleAnnulusSkyRegion(c, r_in * u.deg, r_out * u.deg))
        radii.append((c, r_in, r_out))
    got = contains_points(regions, events)
    assert isinstance(got, sparse.csr_array) and got.shape == (len(regions), len(events))
    got = got.toarray()
    for k, (c, r_in, r_out) in enumerate(radii):
        sep = events.separation(c).deg
        expect = sep <= r_out if r_in is None else (sep >= r_in) & (sep <= r_out)
        np.testing.assert_array_equal(got[k], expect, err_msg=f"region {k}")
    counts = count_in_regions(regions, events)
    np.testing.assert_array_equal(counts, got.sum(axis=1).astype(float))


def _shapes(rng, geom, n):
    """Random ellipses, boxes and polygons inside ``geom`` (its frame)."""
    out = []
    lon0, lat0 = geom.center_skydir.galactic.l.deg, geom.center_skydir.galactic.b.deg
    for k in range(n):
        c = SkyCoord(lon0 + rng.uniform(-1.2, 1.2), lat0 + rng.uniform(-0.9, 0.9), unit="deg",
                     frame="galactic")
        w, h = rng.uniform(0.1, 1.0, 2) * u.deg
        angle = rng.uniform(0, 180) * u.deg
        kind = k % 3
        if kind == 0:
            out.append(EllipseSkyRegion(c, w, h, angle=angle))
        elif kind == 1:
            out.append(RectangleSkyRegion(c, w, h, angle=angle))
        else:
            nv = int(rng.integers(3, 8))
            pa = np.sort(rng.uniform(0, 360, nv)) * u.deg
            sep = rng.uniform(0.1, 0.6, nv) * u.deg
            out.append(PolygonSkyRegion(c.directional_offset_by(pa, sep)))
    return out


def _pixel_centres(geom, frame):
    ny, nx = geom.data_shape_image
    y, x = np.mgrid[:ny, :nx]
    lon, lat = geom.pix_to_coord((x.astype(float), y.astype(float)))
    coords = SkyCoord(lon.ravel(), lat.ravel(), unit="deg", frame=geom.frame)
    return coords if frame is None else coords.transform_to(frame)


@pytest.mark.parametrize("frame", [None, "icrs"])
def test_shapes_match_region_mask_at_pixel_centres(rng, backend, frame):
    geom = WcsGeom.create(npix=(150, 110), binsz=0.02, skydir=(30.0, 0.5), frame="galactic", proj="TAN")
    points = _pixel_centres(geom, frame)
    regions = _shapes(rng, geom, 18)
    got = contains_points(regions, points, dense=True)
    for k, region in enumerate(regions):
        expect = geom.region_mask(region, method="sky", backend=backend).to_numpy().ravel()
        assert expect.any(), "the shape should cover some pixel centres"
        np.testing.assert_array_equal(got[k], expect, err_msg=f"{k}: {region}")


def test_compound_regions_match_region_mask(rng, backend):
    geom = WcsGeom.create(npix=(120, 100), binsz=0.02, skydir=(266.4, -29.0), frame="icrs", proj="CAR")
    points = _pixel_centres(geom, "galactic")  # points in another frame than the regions
    c1 = SkyCoord(266.3, -29.1, unit="deg")
    c2 = SkyCoord(266.6, -28.9, unit="deg")
    a = CircleSkyRegion(c1, 0.4 * u.deg)
    b = EllipseSkyRegion(c2, 0.6 * u.deg, 0.3 * u.deg, angle=30 * u.deg)
    box = RectangleSkyRegion(c1, 0.5 * u.deg, 0.2 * u.deg, angle=-20 * u.deg)
    excluded = CircleSkyRegion(c2, 0.2 * u.deg)
    excluded.meta["include"] = False  # an operand's complement inside a compound
    regions = [a | b, a & b, a ^ b, (a | b) & box, a & excluded,
               EllipseAnnulusSkyRegion(c2, 0.2 * u.deg, 0.6 * u.deg, 0.1 * u.deg, 0.4 * u.deg,
                                       angle=10 * u.deg),
               a.union(b).symmetric_difference(box)]
    got = contains_points(regions, points, dense=True)
    for k, region in enumerate(regions):
        expect = geom.region_mask(region, method="sky", backend=backend).to_numpy().ravel()
        np.testing.assert_array_equal(got[k], expect, err_msg=f"compound {k}")


def test_compound_true_outside_its_leaves():
    """An operand complement makes a compound contain points far from every shape."""
    c = SkyCoord(0, 0, unit="deg")
    inner = CircleSkyRegion(c, 1 * u.deg)
    hole = CircleSkyRegion(c, 0.5 * u.deg)
    hole.meta["include"] = False
    pts = SkyCoord([0.0, 0.7, 50.0], [0.0, 0.0, 0.0], unit="deg")
    got = contains_points([inner | hole, inner & hole], pts, dense=True)
    np.testing.assert_array_equal(got, [[True, True, True], [False, True, False]])


def test_weights_and_energy_one_hot(rng):
    center = SkyCoord(120.0, -40.0, unit="deg")
    events = _random_points(rng, center, 2.0, 5000)
    regions = [CircleSkyRegion(_random_points(rng, center, 1.0, 1)[0], 0.5 * u.deg) for _ in range(6)]
    m = contains_points(regions, events, dense=True).astype(float)
    w = rng.uniform(0, 2, len(events))
    np.testing.assert_allclose(count_in_regions(regions, events, weights=w), m @ w, rtol=1e-12)
    onehot = np.eye(4)[rng.integers(0, 4, len(events))]
    np.testing.assert_allclose(count_in_regions(regions, events, weights=onehot), m @ onehot, rtol=1e-12)
    with pytest.raises(ValueError, match="weights must have shape"):
        count_in_regions(regions, events, weights=np.ones(3))


def test_nan_points_scalar_and_annotations():
    c = SkyCoord(10.0, 10.0, unit="deg")
    pts = SkyCoord([10.0, np.nan, 10.1], [10.0, 10.0, np.nan], unit="deg")
    text = TextSkyRegion(c, "label")
    got = contains_points([CircleSkyRegion(c, 1 * u.deg), text], pts, dense=True)
    np.testing.assert_array_equal(got, [[True, False, False], [False, False, False]])
    one = contains_points(CircleSkyRegion(c, 1 * u.deg), c, dense=True)
    np.testing.assert_array_equal(one, [[True]])
    assert contains_points([], pts).shape == (0, 3)
    np.testing.assert_array_equal(count_in_regions("icrs; circle(10, 10, 0.5)", pts), [1.0])


def test_errors():
    c = SkyCoord(10.0, 10.0, unit="deg")
    with pytest.raises(TypeError, match="coords must be an astropy SkyCoord"):
        contains_points(CircleSkyRegion(c, 1 * u.deg), [(10, 10)])
    with pytest.raises(TypeError, match="points have no area"):
        contains_points(PointSkyRegion(c), c)
    with pytest.raises(TypeError, match="points have no area"):
        contains_points(c, c)
    with pytest.raises(TypeError, match="CirclePixelRegion is not supported"):
        contains_points(CirclePixelRegion(PixCoord(1, 1), 2), c)
    with pytest.raises(ValueError, match="too large for method='sky'"):
        contains_points(EllipseSkyRegion(c, 200 * u.deg, 1 * u.deg), c)
    bad = SkyCoord(np.nan, 10.0, unit="deg")
    with pytest.raises(ValueError, match="center is not finite"):
        contains_points([CircleSkyRegion(c, 1 * u.deg), CircleSkyRegion(bad, 1 * u.deg)], c)


def test_large_batch_uses_candidates(rng):
    """Many events x many regions: the k-d tree prefilter gives exact counts."""
    center = SkyCoord(300.0, 30.0, unit="deg")
    events = _random_points(rng, center, 4.0, 200_000)
    centres = _random_points(rng, center, 3.5, 300)
    regions = [CircleSkyRegion(cc, 0.1 * u.deg) for cc in centres]
    counts = count_in_regions(regions, events)
    # brute force on a subset of regions
    for k in rng.choice(len(regions), 10, replace=False):
        assert counts[k] == np.count_nonzero(events.separation(centres[k]).deg <= 0.1)
    assert counts.sum() > 0
    assert operator.eq(len(counts), 300)
