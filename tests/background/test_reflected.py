"""ReflectedRegionsFinder, method="sky": exact on the sphere.

Oracles: a plain sequential re-implementation of gammapy's search with astropy
angular separations (circles), astropy separations for rigidity (distances to the
pointing and between vertices preserved), gpumask's own ``region_mask`` for "no
excluded pixel inside", and gammapy 2.1 for the count and placement up to its TAN
pixel grid.
"""

from __future__ import annotations

import math

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import Angle, SkyCoord
from regions import (
    CircleAnnulusSkyRegion,
    CircleSkyRegion,
    EllipseSkyRegion,
    PointSkyRegion,
    PolygonSkyRegion,
    RectangleSkyRegion,
)

import gpumask
from gpumask.background.reflected import ReflectedRegionsFinder


def _mask(center, rng, n=4, frame="galactic", width=6.0, binsz=0.02):
    """A boolean exclusion mask (True = usable) with ``n`` random excluded circles."""
    geom = gpumask.WcsGeom.create(skydir=center, width=width, binsz=binsz, frame=frame)
    lon = center.icrs.ra.deg + rng.uniform(-1.8, 1.8, n) / max(math.cos(center.icrs.dec.rad), 0.2)
    lat = np.clip(center.icrs.dec.deg + rng.uniform(-1.8, 1.8, n), -89.9, 89.9)
    regions = [f"icrs;circle({a},{b},{r})" for a, b, r in zip(lon, lat, rng.uniform(0.1, 0.35, n))]
    return geom.region_mask(regions, inside=False)


def _sequential_circles(on, pointing, mask, finder):
    """gammapy's search, written plainly with astropy separations (the oracle)."""
    geom = mask.geom
    lon, lat = geom.get_coord(backend="numpy")
    excluded = ~gpumask.to_host(mask.data)
    pix = SkyCoord(lon[excluded], lat[excluded], unit="deg", frame=geom.frame)
    dist = pointing.separation(on.center)
    pa0 = pointing.position_angle(on.center)
    r = on.radius
    size = 2 * np.arcsin(np.sin(r.to_value(u.rad)) / np.sin(dist.to_value(u.rad)))
    angle_min = size + finder.min_distance.to_value(u.rad)
    angle_max = 2 * np.pi - angle_min - finder.min_distance_input.to_value(u.rad)
    angle = angle_min + finder.min_distance_input.to_value(u.rad)
    found = []
    while angle < angle_max:
        c = pointing.directional_offset_by(pa0 + angle * u.rad, dist)
        if np.any(pix.separation(c) <= r):
            angle += finder.angle_increment.to_value(u.rad)
        else:
            found.append(c)
            if len(found) >= finder.max_region_number:
                break
            angle += angle_min
    return found


def test_circles_equal_a_sequential_astropy_search(backend):
    rng = np.random.default_rng(19)
    for case in range(12):
        pointing = SkyCoord(rng.uniform(0, 360), rng.uniform(-70, 70), unit="deg")
        offset = rng.uniform(0.3, 2.0)
        on = CircleSkyRegion(pointing.directional_offset_by(rng.uniform(0, 360) * u.deg, offset * u.deg),
                             rng.uniform(0.05, min(0.3, offset * 0.6)) * u.deg)
        mask = _mask(pointing, rng)
        mask = gpumask.Map.from_geom(mask.geom, data=gpumask.to_host(mask.data), backend=backend.name)
        finder = ReflectedRegionsFinder(angle_increment=f"{rng.uniform(0.03, 0.2)} rad",
                                        min_distance=f"{rng.uniform(0, 0.1)} rad",
                                        min_distance_input=f"{rng.uniform(0, 0.3)} rad")
        with gpumask.count_transfers() as counter:
            regions, _ = finder.run(on, pointing, exclusion_mask=mask)
        if backend.name == "numpy":
            assert counter.calls == 1  # the mask, once per call
        else:  # the mask once, then one copy of the flags per search step (not per pair)
            steps = 2 * np.pi / finder.angle_increment.to_value(u.rad) + 2
            assert 1 < counter.calls <= 1 + steps
        expected = _sequential_circles(on, pointing, mask, finder)
        assert len(regions) == len(expected), case
        for got, want in zip(regions, expected):
            assert got.center.separation(want).to_value(u.deg) < 1e-9
            assert got.radius == on.radius


def test_no_excluded_pixel_centre_inside_any_shape():
    """Every shape kind: no off region holds an excluded pixel centre (the mask's own
    geometry, method="sky"), and with the exclusions gone there are more regions."""
    rng = np.random.default_rng(7)
    pointing = SkyCoord(266.4, -29.0, unit="deg")
    on_center = pointing.directional_offset_by(40 * u.deg, 1.2 * u.deg)
    shapes = [
        CircleSkyRegion(on_center, 0.2 * u.deg),
        CircleAnnulusSkyRegion(on_center, 0.05 * u.deg, 0.2 * u.deg),
        EllipseSkyRegion(on_center, 0.5 * u.deg, 0.2 * u.deg, angle=25 * u.deg),
        RectangleSkyRegion(on_center, 0.4 * u.deg, 0.15 * u.deg, angle=-60 * u.deg),
        PolygonSkyRegion(SkyCoord(on_center.ra.deg + np.array([-0.2, 0.25, 0.1, -0.1]),
                                  on_center.dec.deg + np.array([-0.1, -0.15, 0.2, 0.15]), unit="deg")),
    ]
    mask = _mask(pointing, rng, n=6)
    for on in shapes:
        regions, _ = ReflectedRegionsFinder().run(on, pointing, exclusion_mask=mask)
        free, _ = ReflectedRegionsFinder().run(on, pointing)
        assert 0 < len(regions) < len(free), type(on).__name__
        for off in regions:
            inside = gpumask.to_host(mask.geom.region_mask([off]).data)
            assert not np.any(inside & ~gpumask.to_host(mask.data)), type(off).__name__
            assert type(off) is type(on)


def test_turns_are_rigid_on_the_sphere():
    """Polygons: every vertex keeps its distance to the pointing and to every other
    vertex (astropy separations), across RA 0 and near the pole."""
    for pointing in (SkyCoord(0.3, 10.0, unit="deg"), SkyCoord(120.0, 88.5, unit="deg")):
        ra = np.array([-0.5, 0.1, 0.4, -0.2]) + 0.0
        on = PolygonSkyRegion(SkyCoord(np.mod(pointing.ra.deg - 0.3 + ra, 360),
                                       pointing.dec.deg + np.array([1.0, 1.2, 0.9, 0.7]) * np.sign(
                                           45 - pointing.dec.deg), unit="deg"))
        regions, _ = ReflectedRegionsFinder(min_distance_input="0.3 rad").run(on, pointing)
        assert len(regions) >= 3
        d_on = pointing.separation(on.vertices).deg
        pair_on = on.vertices[:, None].separation(on.vertices[None, :]).deg
        for off in regions:
            np.testing.assert_allclose(pointing.separation(off.vertices).deg, d_on, atol=1e-9)
            np.testing.assert_allclose(off.vertices[:, None].separation(off.vertices[None, :]).deg,
                                       pair_on, atol=1e-9)


def test_spacing_without_a_mask_is_the_exact_angular_size():
    """Circles around a pole-near pointing: consecutive regions are exactly
    2 asin(sin r / sin d) + min_distance apart in position angle."""
    pointing = SkyCoord(10.0, 89.0, unit="deg")
    on = CircleSkyRegion(pointing.directional_offset_by(200 * u.deg, 1.5 * u.deg), 0.3 * u.deg)
    finder = ReflectedRegionsFinder(min_distance="0.05 rad")
    regions, _ = finder.run(on, pointing)
    step = 2 * math.asin(math.sin(math.radians(0.3)) / math.sin(math.radians(1.5))) + 0.05
    pas = [pointing.position_angle(r.center).rad for r in [on, *regions]]
    gaps = np.diff(np.unwrap(pas))
    np.testing.assert_allclose(gaps[0], step + 0.1, atol=1e-9)  # first: + min_distance_input
    np.testing.assert_allclose(gaps[1:], step, atol=1e-9)
    assert len(regions) == int(np.floor((2 * np.pi - 2 * step - 0.1 - 1e-12 - 0.1) / step)) + 1


@pytest.mark.gammapy
def test_close_to_gammapy_where_its_grid_is_fine():
    """Small offsets: gammapy's TAN pixel search finds the same regions up to its
    pixel quantisation of the angular size (one binsz along the circle per step)."""
    gammapy_makers = pytest.importorskip("gammapy.makers")
    rng = np.random.default_rng(3)
    for _ in range(6):
        pointing = SkyCoord(rng.uniform(0, 360), rng.uniform(-60, 60), unit="deg")
        offset = rng.uniform(0.5, 1.5)
        on = EllipseSkyRegion(pointing.directional_offset_by(rng.uniform(0, 360) * u.deg, offset * u.deg),
                              0.3 * u.deg, 0.15 * u.deg, angle=rng.uniform(0, 180) * u.deg)
        ours, _ = ReflectedRegionsFinder().run(on, pointing)
        theirs, _ = gammapy_makers.ReflectedRegionsFinder().run(on, pointing)
        # gammapy's angular size spans pixel centres only: smaller, so it may fit more
        assert 0 <= len(theirs) - len(ours) <= 2 + 0.05 * len(ours)
        for k, (a, b) in enumerate(zip(ours, theirs)):
            # per step, gammapy's pixelised angular size is off by up to ~2 binsz / offset
            tol = (k + 1) * 2 * 0.01 + 0.01
            assert a.center.separation(b.center).deg < tol
            assert abs(Angle(a.angle - b.angle).wrap_at(180 * u.deg).deg) < math.degrees(tol / offset) + 0.5


def test_run_many_equals_run_and_batches_the_search():
    rng = np.random.default_rng(11)
    pointings = SkyCoord(83.6 + rng.uniform(-1, 1, 20), 22.0 + rng.uniform(-1, 1, 20), unit="deg")
    on = CircleSkyRegion(SkyCoord(83.63, 22.51, unit="deg"), 0.11 * u.deg)
    mask = _mask(SkyCoord(83.63, 22.01, unit="deg"), rng, n=5)
    finder = ReflectedRegionsFinder(min_distance_input="0.2 deg")
    with pytest.warns(gpumask.GpumaskWarning, match="inside their on region"):
        many = finder.run_many(on, pointings[:19].insert(0, on.center), mask)
    assert many[0] == []
    for k in range(1, 20):
        single, _ = finder.run(on, pointings[k - 1], mask)
        assert len(many[k]) == len(single)
        assert all(r.center.separation(s.center).deg < 1e-9 for r, s in zip(many[k], single))
    # one region per pair
    regions = [CircleSkyRegion(p.directional_offset_by(30 * u.deg, 0.5 * u.deg), 0.1 * u.deg) for p in pointings]
    per_pair = finder.run_many(regions, pointings, mask)
    assert [len(r) for r in per_pair] == [len(finder.run(r, p, mask)[0]) for r, p in zip(regions, pointings)]


def test_errors_name_the_value():
    pointing = SkyCoord(83.63, 22.01, unit="deg")
    with pytest.raises(TypeError, match="PointSkyRegion"):
        ReflectedRegionsFinder().run(PointSkyRegion(pointing), pointing)
    with pytest.raises(ValueError, match="angle_increment is too small"):
        ReflectedRegionsFinder(angle_increment="0 rad")
    with pytest.raises(ValueError, match="max_region_number must be an integer >= 1, got 0"):
        ReflectedRegionsFinder(max_region_number=0)
    with pytest.raises(ValueError, match="method must be one of"):
        ReflectedRegionsFinder(method="tan")
    with pytest.raises(ValueError, match="min_distance must be an angle"):
        ReflectedRegionsFinder(min_distance="far")
    on = CircleSkyRegion(SkyCoord(83.63, 22.51, unit="deg"), 0.1 * u.deg)
    counts = gpumask.Map.create(skydir=pointing, width=2, binsz=0.05)
    with pytest.raises(ValueError, match="exclusion_mask must be boolean"):
        ReflectedRegionsFinder().run(on, pointing, exclusion_mask=counts)
    with pytest.raises(ValueError, match="got 2 regions and 3 centers"):
        ReflectedRegionsFinder().run_many([on, on], SkyCoord([1, 2, 3], [4, 5, 6], unit="deg"))
    with pytest.raises(TypeError, match="center must be an astropy SkyCoord"):
        ReflectedRegionsFinder().run(on, (83.6, 22.0))


def test_repr():
    finder = ReflectedRegionsFinder(min_distance_input="0.2 deg")
    assert "min_distance_input" in repr(finder) and "0.2 deg" in repr(finder)
    assert "<table" in finder._repr_html_()
