"""gammapy 2.1's pixel reflected-region search (``find_reflected_pixel``) against gammapy
2.1's ``ReflectedRegionsFinder.run`` on seeded random cases.

Measured: identical regions (same count and order, centres and sizes equal to the last
bit) and an identical reference WCS on every case; the tolerance asserted (1e-6 deg on
centres, 1e-9 relative on sizes) leaves room for other numpy/astropy builds.  The
exclusion mask sampled on the reference grid equals gammapy's ``interp_to_geom`` bit for
bit, ties between aligned grids included (where ``gpumask.Map.interp_to_geom``, computed
with its own projection code, can break them the other way).
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import Angle, SkyCoord
from regions import (
    CircleAnnulusSkyRegion,
    CirclePixelRegion,
    CircleSkyRegion,
    EllipseSkyRegion,
    PixCoord,
    PointSkyRegion,
    PolygonSkyRegion,
    RectangleSkyRegion,
)

import gpumask
from gpumask import WcsGeom
from gpumask.background._reflected_pixel import (
    _excluded_reference,
    _reference_geometry,
    find_reflected_pixel,
    region_center,
)

SHAPES = ("circle", "ellipse", "rectangle", "polygon", "annulus")
DEFAULTS = {"angle_increment": Angle("0.1 rad"), "min_distance": Angle("0 rad"),
            "min_distance_input": Angle("0.1 rad"), "max_region_number": 10000, "binsz": Angle("0.01 deg")}
N_CASES = 36


def _offset(center, pa_deg, sep_deg):
    return center.directional_offset_by(pa_deg * u.deg, sep_deg * u.deg)


def _region(rng, shape, center):
    size = rng.uniform(0.05, 0.4)
    angle = Angle(rng.uniform(0, 360), "deg")
    if shape == "circle":
        return CircleSkyRegion(center, Angle(size / 2 + 0.025, "deg"))
    if shape == "ellipse":
        return EllipseSkyRegion(center, Angle(size, "deg"), Angle(size * rng.uniform(0.3, 1), "deg"), angle)
    if shape == "rectangle":
        return RectangleSkyRegion(center, Angle(size, "deg"), Angle(size * rng.uniform(0.3, 1), "deg"), angle)
    if shape == "polygon":
        n = int(rng.integers(3, 8))
        pas = np.sort(rng.uniform(0, 360, n))
        radii = size / 2 * rng.uniform(0.5, 1.0, n)
        vertices = _offset(center, pas, radii)
        return PolygonSkyRegion(vertices)
    inner = size / 2 * rng.uniform(0.2, 0.7)
    return CircleAnnulusSkyRegion(center, Angle(inner, "deg"), Angle(size / 2 + 0.025, "deg"))


def _case(seed):
    """(region, pointing, gpumask mask or None, finder kwargs) for one seeded case."""
    rng = np.random.default_rng(1000 + seed)
    frame = ("icrs", "galactic")[seed % 2]
    kind = seed % 6
    if kind == 0:  # near a pole
        lon, lat = rng.uniform(0, 360), rng.choice([-1, 1]) * rng.uniform(85, 89.5)
    elif kind == 1:  # across lon 0
        lon, lat = rng.uniform(-1.5, 1.5) % 360, rng.uniform(-60, 60)
    else:
        lon, lat = rng.uniform(0, 360), rng.uniform(-80, 80)
    pointing = SkyCoord(lon, lat, unit="deg", frame=frame)
    if seed % 3 == 0:  # the pointing in the other frame than the region
        pointing = pointing.transform_to("galactic" if frame == "icrs" else "icrs")
    sep = rng.uniform(0.3, 2.5)
    on_center = _offset(pointing, rng.uniform(0, 360), sep).transform_to(frame)
    region = _region(rng, SHAPES[seed % len(SHAPES)], on_center)

    kwargs = dict(DEFAULTS)
    if seed % 4 == 1:
        kwargs.update(angle_increment=Angle(rng.uniform(0.03, 0.3), "rad"),
                      min_distance=Angle(rng.uniform(0, 10), "deg"),
                      min_distance_input=Angle(rng.uniform(0, 0.5), "rad"))
    if seed % 5 == 2:
        kwargs.update(max_region_number=int(rng.integers(1, 5)))
    if seed % 7 == 3:
        kwargs.update(binsz=Angle(rng.choice([0.02, 0.015, 0.6 / 60 * 1.5]), "deg"))

    mask = None
    if seed % 9 != 4:
        mframe = ("icrs", "galactic")[int(rng.integers(2))]
        proj = ("CAR", "TAN", "AIT")[int(rng.integers(3))]
        if abs(lat) > 80 and proj == "CAR":
            proj = "TAN"
        if seed % 8 == 5:  # aligned with the reference grid: pixel ties, as gammapy breaks them
            mframe, proj, mbinsz, mcenter = frame, "TAN", float(kwargs["binsz"].deg) * 2, pointing
        else:
            mbinsz = float(rng.choice([0.01, 0.02, 0.03]))
            mcenter = _offset(pointing, rng.uniform(0, 360), rng.uniform(0, 0.5))
        geom = WcsGeom.create(skydir=mcenter, binsz=mbinsz, width=2 * sep + 1.5, frame=mframe, proj=proj)
        n = int(rng.integers(2, 6))
        pas = rng.uniform(0, 360, n)
        excluded = [CircleSkyRegion(_offset(pointing, pa, sep + rng.uniform(-0.3, 0.3)),
                                    Angle(rng.uniform(0.05, 0.3), "deg")) for pa in pas]
        if seed % 2:
            mask = geom.region_mask(excluded, inside=False, backend="numpy")
        else:
            mask = gpumask.exclusion_mask(geom, regions=excluded, backend="numpy")
    return region, pointing, mask, kwargs


class _CenteredPolygon(PolygonSkyRegion):
    """A polygon with gpumask's centre, for gammapy (whose finder reads ``region.center``)."""

    @property
    def center(self):
        return region_center(PolygonSkyRegion(self.vertices))


def _for_gammapy(region):
    return _CenteredPolygon(region.vertices) if isinstance(region, PolygonSkyRegion) else region


def _assert_same_regions(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert type(a) is type(b)
        if isinstance(a, PolygonSkyRegion):
            assert a.vertices.separation(b.vertices).deg.max() < 1e-6
            continue
        assert a.center.separation(b.center).deg < 1e-6
        for name in ("radius", "width", "height", "inner_radius", "outer_radius"):
            if hasattr(a, name):
                np.testing.assert_allclose(getattr(a, name).to_value("deg"),
                                           getattr(b, name).to_value("deg"), rtol=1e-9)
        if hasattr(a, "angle"):
            np.testing.assert_allclose(Angle(a.angle - b.angle).wrap_at("180 deg").deg, 0, atol=1e-9)


def _assert_same_wcs(ours, theirs):
    assert tuple(ours.array_shape) == tuple(int(n) for n in theirs.array_shape)
    assert list(ours.wcs.ctype) == list(theirs.wcs.ctype)
    np.testing.assert_array_equal(ours.wcs.crval, theirs.wcs.crval)
    np.testing.assert_array_equal(ours.wcs.crpix, theirs.wcs.crpix)
    np.testing.assert_array_equal(ours.wcs.cdelt, theirs.wcs.cdelt)


@pytest.mark.gammapy
@pytest.mark.parametrize("seed", range(N_CASES))
def test_matches_gammapy_random(seed):
    makers = pytest.importorskip("gammapy.makers")
    region, pointing, mask, kwargs = _case(seed)
    gmask = None if mask is None else mask.to_gammapy()
    theirs, their_wcs = makers.ReflectedRegionsFinder(**kwargs).run(_for_gammapy(region), pointing,
                                                                          exclusion_mask=gmask)
    ours, our_wcs = find_reflected_pixel(region, pointing, mask, **kwargs)
    _assert_same_regions(ours, theirs)
    _assert_same_wcs(our_wcs, their_wcs)


@pytest.mark.gammapy
def test_random_cases_exercise_rejections():
    """The random set is not trivial: masks reject candidates and several regions are found."""
    makers = pytest.importorskip("gammapy.makers")
    with_rejection = 0
    counts = []
    for seed in range(0, N_CASES, 3):
        region, pointing, mask, kwargs = _case(seed)
        found, _ = find_reflected_pixel(region, pointing, mask, **kwargs)
        free, _ = find_reflected_pixel(region, pointing, None, **kwargs)
        with_rejection += len(found) < len(free)
        counts.append(len(found))
    assert with_rejection >= 3
    assert max(counts) >= 5
    assert makers is not None


@pytest.mark.gammapy
@pytest.mark.parametrize("seed", range(12))
def test_mask_resampling_matches_gammapy(seed):
    """The reference-grid exclusion equals gammapy's ``interp_to_geom(fill_value=True)``
    bit for bit, aligned grids (ties at half pixels) included."""
    pytest.importorskip("gammapy.maps")
    rng = np.random.default_rng(seed)
    frame, mframe = ("icrs", "galactic")[seed % 2], ("icrs", "galactic")[(seed // 2) % 2]
    pointing = SkyCoord(rng.uniform(0, 360), rng.uniform(-89, 89), unit="deg", frame="icrs")
    region = CircleSkyRegion(_offset(pointing, 30, 1.0 + 0.01 * seed).transform_to(frame), Angle(0.1, "deg"))
    ref = _reference_geometry(region, pointing, Angle("0.01 deg"))
    if seed % 3 == 0:
        mgeom = WcsGeom.create(skydir=pointing, binsz=0.02, width=(3.0 + 0.01 * seed, 3.1), frame=frame,
                               proj="TAN")
    else:
        mgeom = WcsGeom.create(skydir=pointing, binsz=0.02, width=4, frame=mframe,
                               proj=("CAR", "TAN", "AIT")[seed % 3])
    data = rng.random(mgeom.data_shape) > 0.5
    mask = gpumask.Map.from_geom(mgeom, data=data, backend="numpy")
    theirs = ~mask.to_gammapy().interp_to_geom(ref.to_gammapy(), fill_value=True).data
    ours = _excluded_reference(ref, mask)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.gammapy
def test_device_mask_same_answer_one_copy(backend):
    pytest.importorskip("gammapy")
    region, pointing, mask, kwargs = _case(7)
    assert mask is not None
    expected, _ = find_reflected_pixel(region, pointing, mask, **kwargs)
    moved = mask.to_backend(backend)
    with gpumask.count_transfers() as counter:
        ours, _ = find_reflected_pixel(region, pointing, moved, **kwargs)
    assert counter.calls == 1
    assert moved.backend.name == backend.name
    _assert_same_regions(ours, expected)
    assert [r.center.ra.deg if hasattr(r.center, "ra") else r.center.l.deg for r in ours] == \
        [r.center.ra.deg if hasattr(r.center, "ra") else r.center.l.deg for r in expected]


@pytest.mark.gammapy
def test_mask_with_single_bin_axis_and_gammapy_map():
    pytest.importorskip("gammapy")
    region, pointing, mask, kwargs = _case(5)
    expected, _ = find_reflected_pixel(region, pointing, mask, **kwargs)
    axis = gpumask.MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=1)
    cube = gpumask.Map.from_geom(mask.geom.to_cube([axis]), data=mask.data[None], backend="numpy")
    _assert_same_regions(find_reflected_pixel(region, pointing, cube, **kwargs)[0], expected)
    _assert_same_regions(find_reflected_pixel(region, pointing, mask.to_gammapy(), **kwargs)[0], expected)


def _simple():
    pointing = SkyCoord(83.2, 22.7, unit="deg")
    return CircleSkyRegion(SkyCoord(83.9, 22.9, unit="deg"), Angle(0.11, "deg")), pointing


def test_errors():
    region, pointing = _simple()
    with pytest.raises(TypeError, match="WobbleRegionsFinder"):
        find_reflected_pixel(PointSkyRegion(region.center), pointing, None, **DEFAULTS)
    wcs = WcsGeom.create(skydir=pointing, binsz=0.01, width=3, proj="TAN").wcs
    with pytest.raises(TypeError, match="pixel region"):
        find_reflected_pixel(CirclePixelRegion(PixCoord(1, 2), 3), pointing, None, **DEFAULTS)
    assert wcs is not None
    with pytest.raises(TypeError, match="center"):
        find_reflected_pixel(region, (83.2, 22.7), None, **DEFAULTS)
    with pytest.raises(ValueError, match="angle_increment"):
        find_reflected_pixel(region, pointing, None, **{**DEFAULTS, "angle_increment": Angle(0, "rad")})
    with pytest.raises(ValueError, match="min_distance"):
        find_reflected_pixel(region, pointing, None, **{**DEFAULTS, "min_distance": Angle(-1, "deg")})
    with pytest.raises(ValueError, match="binsz"):
        find_reflected_pixel(region, pointing, None, **{**DEFAULTS, "binsz": "banana"})
    with pytest.raises(ValueError, match="max_region_number"):
        find_reflected_pixel(region, pointing, None, **{**DEFAULTS, "max_region_number": 0})
    geom = WcsGeom.create(skydir=pointing, binsz=0.05, width=4)
    with pytest.raises(ValueError, match="boolean"):
        find_reflected_pixel(region, pointing, gpumask.Map.from_geom(geom, backend="numpy"), **DEFAULTS)
    with pytest.raises(TypeError, match="exclusion_mask"):
        find_reflected_pixel(region, pointing, np.ones((10, 10), bool), **DEFAULTS)
    axis = gpumask.MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=2)
    cube = gpumask.Map.from_geom(geom.to_cube([axis]), dtype=bool, backend="numpy")
    with pytest.raises(ValueError, match="image"):
        find_reflected_pixel(region, pointing, cube, **DEFAULTS)
    tiny = CircleSkyRegion(region.center, Angle(0.001, "deg"))
    with pytest.raises(ValueError, match="pixel centre|min_distance"):
        find_reflected_pixel(tiny, pointing, None, **DEFAULTS)


def test_no_mask_and_max_region_number():
    region, pointing = _simple()
    found, wcs = find_reflected_pixel(region, pointing, None, **DEFAULTS)
    assert len(found) > 5
    # every off region sits at the on region's distance from the pointing
    seps = np.array([r.center.separation(pointing).deg for r in found])
    np.testing.assert_allclose(seps, region.center.separation(pointing).deg, atol=0.01)
    two, _ = find_reflected_pixel(region, pointing, None, **{**DEFAULTS, "max_region_number": 2})
    _assert_same_regions(two, found[:2])
    assert wcs.wcs.ctype[0].endswith("TAN")


@pytest.mark.gammapy
@pytest.mark.parametrize("seed", [2, 7, 23])
def test_reachable_sampling_equals_full_grid(seed):
    """Sampling only the pixels a rotation can reach gives the full grid's values there."""
    from gpumask.background._reflected_pixel import _reachable

    region, pointing, mask, kwargs = _case(seed)
    ref = _reference_geometry(region, pointing, kwargs["binsz"])
    center_pix = PixCoord.from_sky(pointing, ref.wcs)
    reachable = _reachable(ref.data_shape_image, center_pix, region.to_pixel(ref.wcs))
    assert reachable is not None and 0 < reachable.sum() < reachable.size
    full = _excluded_reference(ref, mask)
    part = _excluded_reference(ref, mask, reachable)
    np.testing.assert_array_equal(part[reachable], full[reachable])
    assert not part[~reachable].any()
