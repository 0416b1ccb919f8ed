"""``WcsGeom.region_mask(..., method="pixel")`` against gammapy 2.1 + regions 0.11.

``method="pixel"`` promises gammapy's ``WcsGeom.region_mask`` bit for bit: every
comparison here demands zero differing pixels.

* ``test_random_cases_match_gammapy``: 10 batches x 50 seeded random cases (CAR,
  TAN, AIT incl. all-sky AIT, both map frames, 1-5 sky regions of every kind in
  icrs/galactic/fk5, energy axes, ``inside`` True and False alternating).  A
  failure names its batch, case and seed and lists every failing case.
* Boundary cases where float noise decides (circles centred on pixel centres
  with integer pixel radii, shapes and polygons on the pixel grid, the seed
  notebook exclusion mask with its 1958 excluded pixels).
* Many regions (1500 and 3034 circles, the 3FGL catalogue), where gammapy itself
  hits RecursionError: against regions' own ``to_pixel(wcs).contains``.
* Pixel regions against regions' ``contains`` (gammapy cannot take them).
* Pixels without sky coordinates (all-sky AIT corners), which gammapy tests at
  pixel index (-1, -1); point regions near the AIT domain edge.
* Point regions (the 1-4 pixels with ``|dx| < 1`` and ``|dy| < 1``).
"""

from __future__ import annotations

import functools
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import FK5, CartesianRepresentation, SkyCoord

import gpumask
from gpumask import MapAxis, WcsGeom

R = pytest.importorskip("regions")

PROJS = ("CAR", "TAN", "AIT")
FRAMES = ("icrs", "galactic")
REGION_FRAMES = ("icrs", "galactic", "fk5")
OTHER_FRAME = {"icrs": "galactic", "galactic": "icrs"}

N_BATCHES = 10
CASES_PER_BATCH = 50
SEED = 20261122


# ---------------------------------------------------------------------- helpers


def _gammapy_geom(gm, **kw):
    kw = dict(kw)
    if kw.pop("energy", False):
        kw["axes"] = [gm.MapAxis.from_energy_bounds("1 TeV", "10 TeV", 3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gm.WcsGeom.create(**kw)


def _gpumask_geom(**kw):
    kw = dict(kw)
    if kw.pop("energy", False):
        kw["axes"] = [MapAxis.from_energy_bounds("1 TeV", "10 TeV", 3)]
    return WcsGeom.create(**kw)


def _gammapy_mask(gg, regions, inside=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(gg.region_mask(regions, inside=inside).data)


def _pixel_mask(geom, regions, backend, inside=True):
    m = geom.region_mask(regions, inside=inside, method="pixel", backend=backend)
    return m.to_numpy()


def _diff_text(ref, got, limit=8):
    if ref.shape != got.shape:
        return f"shape gammapy {ref.shape} != gpumask {got.shape}"
    bad = np.argwhere(ref != got)
    if not len(bad):
        return ""
    first = ", ".join(
        f"{tuple(int(i) for i in idx)}: ref={bool(ref[tuple(idx)])} got={bool(got[tuple(idx)])}"
        for idx in bad[:limit]
    )
    return (f"{len(bad)} differing pixels of {ref.size} (ref True {int(ref.sum())}, "
            f"gpumask True {int(got.sum())}); first [index (axes..., y, x)]: {first}")


def _assert_same(ref, got, what=""):
    text = _diff_text(ref, got)
    assert not text, f"{what}: {text}"


def _clean(coord, frame):
    """A plain SkyCoord (lon/lat in deg) of ``coord`` in ``frame``."""
    c = coord.transform_to(frame)
    return SkyCoord(c.spherical.lon.deg, c.spherical.lat.deg, unit="deg", frame=frame)


def _pixel_grid(nx, ny):
    x, y = np.meshgrid(np.arange(nx, dtype=float), np.arange(ny, dtype=float))
    return x, y


def _regions_union(regs, wcs, nx, ny):
    """Union of regions' own ``to_pixel(wcs).contains`` on the pixel centres,
    evaluated in a window around each pixel shape (pixels outside a circle's
    ``centre +- (radius + 1)`` window cannot be inside it)."""
    out = np.zeros((ny, nx), bool)
    for reg in regs:
        pix = reg.to_pixel(wcs)
        cx, cy, r = float(pix.center.x), float(pix.center.y), float(pix.radius)
        if not (np.isfinite(cx) and np.isfinite(cy) and np.isfinite(r)):
            continue
        x0, x1 = max(int(np.floor(cx - r)) - 1, 0), min(int(np.ceil(cx + r)) + 2, nx)
        y0, y1 = max(int(np.floor(cy - r)) - 1, 0), min(int(np.ceil(cy + r)) + 2, ny)
        if x0 >= x1 or y0 >= y1:
            continue
        x, y = np.meshgrid(np.arange(x0, x1, dtype=float), np.arange(y0, y1, dtype=float))
        out[y0:y1, x0:x1] |= pix.contains(R.PixCoord(x, y))
    return out


# ---------------------------------------------------------------------- random cases


def _loguniform(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _angle(rng, deg):
    """``deg`` degrees as a Quantity in a random angular unit."""
    r = rng.random()
    if r < 0.7:
        return deg * u.deg
    if r < 0.8:
        return (deg * 60.0) * u.arcmin
    if r < 0.9:
        return (deg * 3600.0) * u.arcsec
    return float(np.deg2rad(deg)) * u.rad


def _random_geom_kwargs(rng):
    frame = FRAMES[int(rng.integers(2))]
    if rng.random() < 0.12:
        # all-sky AIT (360 x 180 deg), sometimes centred off (0, 0)
        kw = dict(binsz=float(rng.uniform(1.0, 5.0)), frame=frame, proj="AIT")
        if rng.random() < 0.5:
            kw["skydir"] = (float(rng.uniform(0, 360)), float(rng.uniform(-30, 30)))
    else:
        if rng.random() < 0.5:
            lat = float(rng.uniform(-85.0, 85.0))
        else:
            lat = float(np.rad2deg(np.arcsin(rng.uniform(-0.996, 0.996))))
        kw = dict(
            skydir=(float(rng.uniform(0.0, 360.0)), lat),
            binsz=_loguniform(rng, 0.01, 2.0),
            npix=(int(rng.integers(10, 121)), int(rng.integers(10, 121))),
            frame=frame,
            proj=PROJS[int(rng.integers(3))],
        )
    kw["energy"] = bool(rng.random() < 0.15)
    return kw


def _random_centers(rng, geom, n):
    """``n`` sky positions near the map (partly outside), map-frame (lon, lat)
    in deg; one in five sits exactly on a pixel centre (float noise then decides
    boundaries).  Off-sky draws (AIT) are drawn again."""
    nx, ny = geom.npix
    lon, lat = [], []
    while len(lon) < n:
        m = 8 * n
        on_centre = rng.random(m) < 0.2
        x = np.where(on_centre, rng.integers(0, nx, m), rng.uniform(-0.3 * nx, 1.3 * nx - 1, m))
        y = np.where(on_centre, rng.integers(0, ny, m), rng.uniform(-0.3 * ny, 1.3 * ny - 1, m))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # off-sky pixels of AIT
            wl, wb = geom.wcs.wcs_pix2world(x.astype(float), y.astype(float), 0)
        ok = np.isfinite(wl) & np.isfinite(wb)
        lon += [float(v) for v in wl[ok]]
        lat += [float(v) for v in wb[ok]]
    return np.array(lon[:n]), np.array(lat[:n])


@functools.cache
def _rotation(frame_from, frame_to):
    """3x3 matrix taking unit vectors from one frame to another (these frames
    differ by constant rotations; obtained from astropy once)."""
    basis = SkyCoord(CartesianRepresentation([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]),
                     frame=frame_from)
    return np.asarray(basis.transform_to(frame_to).cartesian.xyz.value, dtype=float)


def _in_frames(lon, lat, map_frame, frames):
    """Scalar SkyCoords (plain lon/lat in deg) of map-frame positions in
    ``frames[i]`` (one SkyCoord array per frame, then indexed: fast)."""
    lon_r, lat_r = np.deg2rad(lon), np.deg2rad(lat)
    v = np.stack([np.cos(lat_r) * np.cos(lon_r), np.cos(lat_r) * np.sin(lon_r), np.sin(lat_r)])
    out = [None] * len(lon)
    for frame in sorted(set(frames)):
        idx = [i for i, f in enumerate(frames) if f == frame]
        w = v[:, idx] if frame == map_frame else _rotation(map_frame, frame) @ v[:, idx]
        f_lon = np.rad2deg(np.arctan2(w[1], w[0])) % 360.0
        f_lat = np.rad2deg(np.arcsin(np.clip(w[2], -1.0, 1.0)))
        if frame == map_frame:
            f_lon, f_lat = np.asarray(lon)[idx], np.asarray(lat)[idx]
        coords = SkyCoord(f_lon, f_lat, unit="deg", frame=frame)
        for k, i in enumerate(idx):
            out[i] = coords[k]
    return out


def _random_regions(rng, geom, binsz, extent):
    n = int(rng.integers(1, 6))
    frames = [REGION_FRAMES[int(k)] for k in rng.integers(0, 3, n)]
    centers = _in_frames(*_random_centers(rng, geom, n), geom.frame, frames)
    return [_random_region(rng, center, frame, binsz, extent)
            for center, frame in zip(centers, frames)]


def _random_region(rng, center, frame, binsz, extent):
    hi = 30.0 if rng.random() < 0.5 else max(1.5 * extent, 0.5 * binsz)
    size = _loguniform(rng, 0.3 * binsz, max(hi, 0.31 * binsz))
    kind = int(rng.integers(6))
    if kind == 0:
        return R.CircleSkyRegion(center, _angle(rng, size))
    if kind in (1, 2):
        w, h = size, size * float(rng.uniform(0.05, 1.0))
        if rng.random() < 0.5:
            w, h = h, w
        angle = _angle(rng, float(rng.uniform(-360.0, 720.0)))
        cls = R.EllipseSkyRegion if kind == 1 else R.RectangleSkyRegion
        return cls(center, _angle(rng, w), _angle(rng, h), angle=angle)
    if kind == 3:
        inner = size * float(rng.uniform(0.05, 0.95))
        return R.CircleAnnulusSkyRegion(center, _angle(rng, inner), _angle(rng, size))
    if kind == 4:
        nv = int(rng.integers(3, 8))
        pa = rng.uniform(0.0, 360.0, nv)
        if rng.random() < 0.8:  # simple polygon; else possibly self-intersecting
            pa = np.sort(pa)
        sep = size * rng.uniform(0.3, 1.0, nv)
        v = center.directional_offset_by(pa * u.deg, sep * u.deg)
        return R.PolygonSkyRegion(SkyCoord(v.spherical.lon.deg, v.spherical.lat.deg,
                                           unit="deg", frame=frame))
    return R.PointSkyRegion(center)


@functools.cache
def _random_case(batch, index):
    """(geometry kwargs, gpumask geometry, regions, inside) of one case (cached)."""
    rng = np.random.default_rng([SEED, batch, index])
    kw = _random_geom_kwargs(rng)
    geom = _gpumask_geom(**kw)
    nx, ny = geom.npix
    binsz = float(kw["binsz"])
    regs = _random_regions(rng, geom, binsz, binsz * max(nx, ny))
    inside = index % 2 == 0  # both conventions, alternating
    return kw, geom, regs, inside


@functools.cache
def _random_batch(batch):
    """The cases of one batch with gammapy's masks (cached: the cupy run reuses them)."""
    import gammapy.maps as gm  # only after the fixture's importorskip

    out = []
    for index in range(CASES_PER_BATCH):
        kw, geom, regs, inside = _random_case(batch, index)
        try:
            ref = _gammapy_mask(_gammapy_geom(gm, **kw), regs, inside=inside)
        except Exception as exc:  # noqa: BLE001 - reported by the test, with the case
            ref = exc
        out.append((kw, geom, regs, inside, ref))
    return out


def _describe(batch, index, kw, regs, inside):
    lines = [(f"batch {batch} case {index} (seed [{SEED}, {batch}, {index}]) inside={inside} "
              f"geom={kw}")]
    lines += [f"    {r!r}".replace("\n", " ") for r in regs]
    return "\n".join(lines)


@pytest.mark.gammapy
@pytest.mark.parametrize("batch", range(N_BATCHES))
def test_random_cases_match_gammapy(batch, backend, gammapy_maps):
    failures = []
    for index, (kw, geom, regs, inside, ref) in enumerate(_random_batch(batch)):
        if isinstance(ref, Exception):
            text = f"gammapy raised {type(ref).__name__}: {ref}"
        else:
            try:
                text = _diff_text(ref, _pixel_mask(geom, regs, backend, inside=inside))
            except Exception as exc:  # noqa: BLE001 - every failing case is listed
                text = f"gpumask raised {type(exc).__name__}: {exc}"
        if text:
            failures.append(f"{_describe(batch, index, kw, regs, inside)}\n  {text}")
    assert not failures, f"{len(failures)} of {CASES_PER_BATCH} cases differ:\n" + "\n".join(failures)


def test_random_cases_cover_the_brief():
    """The generator covers what the parity claim is about (guards against a
    generator change that silently drops a kind of case)."""
    kinds, projs, frames, rframes = set(), set(), set(), set()
    allsky = energy = 0
    for batch in range(N_BATCHES):
        for index in range(CASES_PER_BATCH):
            kw, _geom, regs, _ = _random_case(batch, index)
            projs.add(kw["proj"])
            frames.add(kw["frame"])
            allsky += "npix" not in kw
            energy += kw["energy"]
            for r in regs:
                kinds.add(type(r).__name__)
                c = r.vertices[0] if isinstance(r, R.PolygonSkyRegion) else r.center
                rframes.add(c.frame.name)
    assert projs == set(PROJS) and frames == set(FRAMES) and rframes == set(REGION_FRAMES)
    assert kinds == {"CircleSkyRegion", "EllipseSkyRegion", "RectangleSkyRegion",
                     "CircleAnnulusSkyRegion", "PolygonSkyRegion", "PointSkyRegion"}
    assert allsky >= 30 and energy >= 40


# ---------------------------------------------------------------------- boundary cases


@pytest.mark.gammapy
@pytest.mark.parametrize("proj", ["TAN", "CAR"])
@pytest.mark.parametrize("map_frame", FRAMES)
@pytest.mark.parametrize("region_frame", ["same", "other", "fk5"])
def test_circle_on_pixel_centre_integer_pixel_radius(proj, map_frame, region_frame, backend,
                                                     gammapy_maps):
    """Centre on the map's central pixel centre, radius k pixels: the pixels at
    distance exactly k (e.g. (k, 0), (6, 8)) are decided by the float noise of the
    sky -> pixel conversion and the 1-arcsec pixel scale."""
    binsz, n = 0.05, 61
    frame = {"same": map_frame, "other": OTHER_FRAME[map_frame], "fk5": "fk5"}[region_frame]
    x, y = _pixel_grid(n, n)
    dist = np.hypot(x - (n - 1) / 2, y - (n - 1) / 2)
    for lat in (0.0, 37.3, -71.0):
        kw = dict(skydir=(123.4, lat), binsz=binsz, npix=(n, n), frame=map_frame, proj=proj)
        gg = _gammapy_geom(gammapy_maps, **kw)
        geom = _gpumask_geom(**kw)
        center = gg.center_skydir.transform_to(frame)
        for k in (5, 10, 13):
            reg = R.CircleSkyRegion(center, k * binsz * u.deg)
            ref = _gammapy_mask(gg, [reg])
            assert np.any(np.abs(dist - k) < 1e-9)  # there are pixels on the circle
            _assert_same(ref, _pixel_mask(geom, [reg], backend), f"lat={lat} k={k}")
            _assert_same(~ref, _pixel_mask(geom, [reg], backend, inside=False),
                         f"lat={lat} k={k} inside=False")


@pytest.mark.gammapy
def test_integer_radius_boundary_is_noise_decided(gammapy_maps):
    """The cases above are sensitive: over them, gammapy keeps some but not all
    of the pixels at exactly the radius (so an exact, noise-free test in gpumask
    would differ)."""
    binsz, n = 0.05, 61
    x, y = _pixel_grid(n, n)
    dist = np.hypot(x - 30, y - 30)
    kept = total = 0
    for proj in ("TAN", "CAR"):
        for frame in FRAMES:
            kw = dict(skydir=(123.4, 37.3), binsz=binsz, npix=(n, n), frame=frame, proj=proj)
            gg = _gammapy_geom(gammapy_maps, **kw)
            for rframe in REGION_FRAMES:
                center = gg.center_skydir.transform_to(rframe)
                for k in (5, 10, 13):
                    ref = _gammapy_mask(gg, [R.CircleSkyRegion(center, k * binsz * u.deg)])
                    on = np.abs(dist - k) < 1e-9
                    kept += int(ref[on].sum())
                    total += int(on.sum())
    assert 0 < kept < total


def _grid_shapes(gg, frame):
    """Shapes whose boundaries pass through pixel centres of a 61 x 61 map."""
    c = gg.center_skydir.transform_to(frame)
    b = float(np.abs(gg.pixel_scales[1].deg))
    wcs = gg.wcs
    poly_pix = [(30, 30), (40, 30), (40, 45), (22, 37)]
    poly = wcs.pixel_to_world(np.array([p[0] for p in poly_pix], float),
                              np.array([p[1] for p in poly_pix], float))
    tri_pix = [(5, 5), (25, 5), (5, 25)]
    tri = wcs.pixel_to_world(np.array([p[0] for p in tri_pix], float),
                             np.array([p[1] for p in tri_pix], float))
    return [
        [R.EllipseSkyRegion(c, 20 * b * u.deg, 12 * b * u.deg, angle=0 * u.deg)],
        [R.EllipseSkyRegion(c, 20 * b * u.deg, 12 * b * u.deg, angle=90 * u.deg)],
        [R.RectangleSkyRegion(c, 20 * b * u.deg, 12 * b * u.deg, angle=0 * u.deg)],
        [R.RectangleSkyRegion(c, 21 * b * u.deg, 13 * b * u.deg, angle=90 * u.deg)],
        [R.RectangleSkyRegion(c, 20 * b * u.deg, 20 * b * u.deg, angle=45 * u.deg)],
        [R.CircleAnnulusSkyRegion(c, 5 * b * u.deg, 10 * b * u.deg)],
        [R.PolygonSkyRegion(_clean(poly, frame))],
        [R.PolygonSkyRegion(_clean(tri, frame))],
        [R.PointSkyRegion(c)],
        # all of them at once (one union)
        [R.CircleSkyRegion(c, 10 * b * u.deg),
         R.RectangleSkyRegion(c, 20 * b * u.deg, 12 * b * u.deg, angle=0 * u.deg),
         R.PolygonSkyRegion(_clean(tri, frame)), R.PointSkyRegion(c)],
    ]


@pytest.mark.gammapy
@pytest.mark.parametrize("proj", ["TAN", "CAR"])
@pytest.mark.parametrize("map_frame", FRAMES)
def test_shapes_on_the_pixel_grid(proj, map_frame, backend, gammapy_maps):
    """Ellipses, boxes, annuli with integer pixel sizes, polygons with vertices on
    pixel centres (edges through pixel centres), points on a pixel centre."""
    kw = dict(skydir=(266.4, -28.9), binsz=0.05, npix=(61, 61), frame=map_frame, proj=proj)
    gg = _gammapy_geom(gammapy_maps, **kw)
    geom = _gpumask_geom(**kw)
    for frame in (map_frame, OTHER_FRAME[map_frame]):
        for regs in _grid_shapes(gg, frame):
            _assert_same(_gammapy_mask(gg, regs), _pixel_mask(geom, regs, backend),
                         f"{frame} {regs!r}")


@pytest.mark.gammapy
def test_tan_regions_beyond_the_projection_domain(backend, gammapy_maps):
    """A 180-deg TAN map: polygon vertices on the far hemisphere have no pixel
    coordinates (regions' crossing test then skips the edges that touch them),
    centres on the far hemisphere give no pixel shape at all."""
    kw = dict(skydir=(10.0, 20.0), binsz=1.5, npix=(120, 120), frame="icrs", proj="TAN")
    gg = _gammapy_geom(gammapy_maps, **kw)
    geom = _gpumask_geom(**kw)
    cases = [
        [R.PolygonSkyRegion(SkyCoord([0, 60, 150, 200], [10, 30, -20, 60], unit="deg"))],
        [R.PolygonSkyRegion(SkyCoord([300, 40, 190], [-10, 50, 5], unit="deg",
                                     frame="galactic"))],
        [R.CircleSkyRegion(SkyCoord(190, -20, unit="deg"), 100 * u.deg)],
        [R.CircleSkyRegion(SkyCoord(90, 20, unit="deg"), 60 * u.deg),
         R.EllipseSkyRegion(SkyCoord(90, 20, unit="deg"), 60 * u.deg, 30 * u.deg)],
        [R.RectangleSkyRegion(SkyCoord(95, 10, unit="deg", frame="fk5"), 40 * u.deg,
                              10 * u.deg, angle=33 * u.deg),
         R.PointSkyRegion(SkyCoord(95, 10, unit="deg"))],
    ]
    for regs in cases:
        _assert_same(_gammapy_mask(gg, regs), _pixel_mask(geom, regs, backend), repr(regs))


@pytest.mark.gammapy
def test_compound_unions_and_asymmetric_annuli(backend, gammapy_maps):
    """What gammapy 2.1 accepts beyond plain shapes: ``a | b`` compounds (other
    operators raise there), ellipse and box annuli, ds9 text."""
    kw = dict(skydir=(10.0, 20.0), binsz=0.05, npix=(101, 81), frame="icrs", proj="TAN")
    gg = _gammapy_geom(gammapy_maps, **kw)
    geom = _gpumask_geom(**kw)
    c = SkyCoord(10.1, 20.05, unit="deg")
    cases = [
        R.CircleSkyRegion(c, 0.3 * u.deg) | R.RectangleSkyRegion(c, 1 * u.deg, 0.2 * u.deg),
        [R.CircleSkyRegion(c, 0.3 * u.deg) | R.PolygonSkyRegion(
            SkyCoord([9.5, 10.5, 10.0], [19.5, 19.6, 20.6], unit="deg", frame="fk5")),
         R.CircleSkyRegion(SkyCoord(9.2, 19.4, unit="deg"), 0.2 * u.deg)],
        [R.EllipseAnnulusSkyRegion(c, 0.3 * u.deg, 0.6 * u.deg, 0.5 * u.deg, 0.9 * u.deg,
                                   angle=20 * u.deg)],
        [R.RectangleAnnulusSkyRegion(c, 0.3 * u.deg, 0.6 * u.deg, 0.5 * u.deg, 0.9 * u.deg,
                                     angle=20 * u.deg)],
        "icrs;circle(10,20,0.3)\nicrs;box(10.2,20.1,0.5,0.3,30)\ngalactic;ellipse(112.9,-42.6,0.4,0.2,10)",
    ]
    for regs in cases:
        ref = _gammapy_mask(gg, regs)
        assert ref.any()
        _assert_same(ref, _pixel_mask(geom, regs, backend), repr(regs))


SEED_TEXT = ["galactic;box(185,-4,1.0,0.5, 45)", "icrs;circle(83.633083, 22.0145, 0.3)"]
SEED_GEOM = dict(skydir=SkyCoord(83.633083, 22.0145, unit="deg", frame="icrs"), width="5 deg",
                 binsz=0.02, frame="galactic")


@pytest.mark.gammapy
def test_seed_notebook_exclusion_mask(backend, gammapy_maps):
    """The seed notebook's exclusion mask: 1958 excluded pixels, as gammapy."""
    from regions import Regions

    gg = _gammapy_geom(gammapy_maps, **SEED_GEOM)
    geom = WcsGeom.create(**SEED_GEOM)
    regs = [Regions.parse(t, format="ds9")[0] for t in SEED_TEXT]
    ref = _gammapy_mask(gg, regs, inside=False)
    assert ref.shape == (250, 250)
    assert int((~ref).sum()) == 1958
    for given in (SEED_TEXT, "\n".join(SEED_TEXT), regs,
                  [gpumask.make_region(t) for t in SEED_TEXT]):
        got = _pixel_mask(geom, given, backend, inside=False)
        _assert_same(ref, got, f"regions given as {given!r}")
        assert int((~got).sum()) == 1958
    _assert_same(~ref, _pixel_mask(geom, SEED_TEXT, backend, inside=True), "inside=True")


@pytest.mark.gammapy
def test_seed_notebook_mask_with_energy_axis(backend, gammapy_maps):
    gg = _gammapy_geom(gammapy_maps, energy=True, **SEED_GEOM)
    geom = _gpumask_geom(energy=True, **SEED_GEOM)
    ref = _gammapy_mask(gg, SEED_TEXT[0] + "\n" + SEED_TEXT[1], inside=False)
    got = _pixel_mask(geom, SEED_TEXT, backend, inside=False)
    assert got.shape == ref.shape == (3, 250, 250)
    _assert_same(ref, got, "energy axis")
    assert [int((~p).sum()) for p in got] == [1958] * 3


# ---------------------------------------------------------------------- many regions

MANY_GEOM = dict(skydir=(0.0, 0.0), binsz=0.1, npix=(300, 200), frame="galactic", proj="CAR")


def _could_touch(coords, radius_deg, half_lon, half_lat):
    """Circles that could touch a CAR map centred on (0, 0) in its own frame.

    In that projection pixel x, y are linear in the map frame's (lon, lat), and
    the 1-arcsec north step that sets regions' pixel scale spans at least
    1 arcsec / binsz pixels, so a circle's pixel radius is at most radius / binsz:
    a circle whose centre lies more than radius (+ a margin) outside the map's
    lon/lat box cannot contain a pixel centre.
    """
    lon = coords.spherical.lon.wrap_at(180 * u.deg).deg
    lat = coords.spherical.lat.deg
    margin = 1.0
    return (np.abs(lon) <= half_lon + radius_deg + margin) & (
        np.abs(lat) <= half_lat + radius_deg + margin)


def _synthetic_circles(n, seed):
    """``n`` circles: 200 over and around the map (mixed frames and radius units),
    the rest anywhere on the sky.  Returns the regions and their galactic
    (lon, lat, radius) in deg."""
    rng = np.random.default_rng(seed)
    near = 200
    lon = np.r_[rng.uniform(-17, 17, near), rng.uniform(0, 360, n - near)]
    lat = np.r_[rng.uniform(-12, 12, near),
                np.rad2deg(np.arcsin(rng.uniform(-1, 1, n - near)))]
    radius = np.r_[np.exp(rng.uniform(np.log(0.05), np.log(2.0), near)),
                   np.exp(rng.uniform(np.log(0.05), np.log(3.0), n - near))]
    gal = SkyCoord(lon, lat, unit="deg", frame="galactic")
    icrs, fk5 = gal.icrs, gal.fk5
    regs = []
    for i in range(n):
        if i % 10 == 3:
            c = SkyCoord(icrs.ra.deg[i], icrs.dec.deg[i], unit="deg", frame="icrs")
        elif i % 10 == 7:
            c = SkyCoord(fk5.ra.deg[i], fk5.dec.deg[i], unit="deg", frame="fk5")
        else:
            c = SkyCoord(lon[i], lat[i], unit="deg", frame="galactic")
        r = radius[i] * u.deg if i % 4 else (radius[i] * 60) * u.arcmin
        regs.append(R.CircleSkyRegion(c, r))
    return regs, gal, radius


@functools.cache
def _many_reference(n):
    regs, gal, radius = _synthetic_circles(n, seed=n)
    geom = WcsGeom.create(**MANY_GEOM)
    nx, ny = geom.npix
    touch = _could_touch(gal, radius, 15.0, 10.0)
    ref = _regions_union([r for r, t in zip(regs, touch) if t], geom.wcs, nx, ny)
    return regs, ref, int(touch.sum())


@pytest.mark.parametrize("n", [1500, 3034])
def test_many_circles_match_regions_contains(n, backend):
    """gammapy raises RecursionError from ~973 regions; gpumask takes them all and
    equals the union of regions' own pixel containment."""
    regs, ref, n_touch = _many_reference(n)
    assert len(regs) == n and 150 <= n_touch < n
    geom = WcsGeom.create(**MANY_GEOM)
    got = _pixel_mask(geom, regs, backend)
    _assert_same(ref, got, f"{n} circles")
    assert 0.05 < ref.mean() < 0.95
    _assert_same(~ref, _pixel_mask(geom, regs, backend, inside=False), "inside=False")


FGL_GEOM = dict(skydir=(0.0, 0.0), binsz=0.05, npix=(400, 120), frame="galactic", proj="CAR")


@functools.cache
def _fgl_regions(path):
    from astropy.table import Table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # several HDUs: the first table is the catalogue
        table = Table.read(path)
    # the positions as stored (float32): regions then works in float32, and so must we
    ra = np.asarray(table["RAJ2000"], dtype=np.float32)
    dec = np.asarray(table["DEJ2000"], dtype=np.float32)
    coords = SkyCoord(ra, dec, unit="deg", frame="icrs")
    regs = [R.CircleSkyRegion(c, 0.3 * u.deg) for c in coords]
    geom = WcsGeom.create(**FGL_GEOM)
    nx, ny = geom.npix
    touch = _could_touch(coords.galactic, np.full(len(regs), 0.3), 10.0, 3.0)
    ref = _regions_union([r for r, t in zip(regs, touch) if t], geom.wcs, nx, ny)
    return regs, ref


@pytest.mark.data
def test_3fgl_circles_on_the_galactic_plane(data_dir, backend):
    path = data_dir / "catalogs" / "fermi" / "gll_psc_v16.fit.gz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    regs, ref = _fgl_regions(str(path))
    assert len(regs) == 3034
    geom = WcsGeom.create(**FGL_GEOM)
    got = _pixel_mask(geom, regs, backend)
    _assert_same(ref, got, "3FGL circles")
    assert ref.sum() > 1000
    # the same circles given as one regions.Regions
    got2 = _pixel_mask(geom, R.Regions(regs), backend)
    _assert_same(ref, got2, "3FGL circles as regions.Regions")


# ---------------------------------------------------------------------- float32 positions


def _f32(lon, lat, frame="icrs"):
    return SkyCoord(np.float32(lon) * u.deg, np.float32(lat) * u.deg, frame=frame)




def _float32_shape(kind, c):
    if kind == "circle":
        return R.CircleSkyRegion(c, 1.5 * u.deg)
    if kind == "ellipse":
        return R.EllipseSkyRegion(c, 3 * u.deg, 2 * u.deg, angle=30 * u.deg)
    if kind == "rectangle":
        return R.RectangleSkyRegion(c, 3 * u.deg, 2 * u.deg, angle=30 * u.deg)
    if kind == "annulus":
        return R.CircleAnnulusSkyRegion(c, 0.5 * u.deg, 1.5 * u.deg)
    if kind == "point":
        return R.PointSkyRegion(c)
    lon = np.array([83.0, 84.5, 84.2, 82.9], np.float32)
    lat = np.array([21.0, 21.3, 23.1, 22.7], np.float32)
    return R.PolygonSkyRegion(SkyCoord(lon * u.deg, lat * u.deg, frame="icrs"))


@pytest.mark.gammapy
@pytest.mark.parametrize("kind", ["circle", "ellipse", "rectangle", "annulus", "point", "polygon"])
def test_float32_centres(kind, backend, gammapy_maps):
    """Positions read from FITS catalogues are often float32 (3FGL RAJ2000/DEJ2000
    are '>f4').  gammapy 2.1 with the Crab at float32 precision, 0.02 deg pixels:
    circle 17729 px, ellipse 11805, rectangle 15041, annulus 15753."""
    kw = dict(skydir=(184.557, -5.784), binsz=0.02, npix=(200, 200), frame="galactic",
              proj="CAR")
    gg = _gammapy_geom(gammapy_maps, **kw)
    geom = _gpumask_geom(**kw)
    reg = _float32_shape(kind, _f32(83.633083, 22.0145))
    _assert_same(_gammapy_mask(gg, [reg]), _pixel_mask(geom, [reg], backend), kind)


# ---------------------------------------------------------------------- pixel regions


def _random_pixel_region(rng, nx, ny):
    def coord(n):
        r = rng.random()
        if r < 0.3:
            return float(rng.integers(-2, n + 2))
        if r < 0.5:
            return float(rng.integers(-2, n + 2)) + 0.5
        return float(rng.uniform(-0.2 * n, 1.2 * n))

    def length(n):
        r = rng.random()
        if r < 0.3:
            return float(rng.integers(1, n))
        if r < 0.5:
            return float(rng.integers(1, n)) + 0.5
        return _loguniform(rng, 0.3, 1.2 * n)

    def angle():
        r = rng.random()
        if r < 0.4:
            return float(rng.choice([0.0, 30.0, 45.0, 90.0, 180.0, 270.0, -90.0])) * u.deg
        return float(rng.uniform(-360, 360)) * u.deg

    n = max(nx, ny)
    center = R.PixCoord(coord(nx), coord(ny))
    kind = int(rng.integers(5))
    if kind == 0:
        return R.CirclePixelRegion(center, length(n))
    if kind == 1:
        return R.EllipsePixelRegion(center, length(n), length(n), angle=angle())
    if kind == 2:
        return R.RectanglePixelRegion(center, length(n), length(n), angle=angle())
    if kind == 3:
        r_in = length(n)
        return R.CircleAnnulusPixelRegion(center, r_in, r_in + length(n))
    nv = int(rng.integers(3, 8))
    if rng.random() < 0.5:  # vertices on the pixel grid: edges through pixel centres
        vx = rng.integers(-3, nx + 3, nv).astype(float)
        vy = rng.integers(-3, ny + 3, nv).astype(float)
    else:
        vx = rng.uniform(-0.2 * nx, 1.2 * nx, nv)
        vy = rng.uniform(-0.2 * ny, 1.2 * ny, nv)
    return R.PolygonPixelRegion(R.PixCoord(vx, vy))


@pytest.mark.parametrize("seed", range(4))
def test_pixel_regions_match_regions_contains(seed, backend):
    """Pixel regions (which gammapy rejects) follow regions' own ``contains`` on
    pixel centres, on maps where every pixel has sky coordinates."""
    rng = np.random.default_rng([SEED, 77, seed])
    failures = []
    for case in range(25):
        proj = ("CAR", "TAN")[case % 2]
        nx, ny = int(rng.integers(5, 90)), int(rng.integers(5, 90))
        geom = WcsGeom.create(skydir=(float(rng.uniform(0, 360)), float(rng.uniform(-60, 60))),
                              binsz=0.1, npix=(nx, ny), frame="icrs", proj=proj)
        regs = [_random_pixel_region(rng, nx, ny) for _ in range(int(rng.integers(1, 6)))]
        x, y = _pixel_grid(nx, ny)
        ref = np.zeros((ny, nx), bool)
        for reg in regs:
            ref |= reg.contains(R.PixCoord(x, y))
        inside = case % 3 != 0
        got = _pixel_mask(geom, regs, backend, inside=inside)
        text = _diff_text(ref if inside else ~ref, got)
        if text:
            failures.append(f"seed {seed} case {case} {proj} npix=({nx}, {ny}) inside={inside} "
                            f"{regs!r}\n  {text}")
    assert not failures, "\n".join(failures)


def test_pixel_regions_off_sky_pixels_follow_gammapy_convention(backend):
    """On an all-sky AIT map, pixels without sky coordinates are tested at pixel
    (-1, -1) (gammapy's ``get_idx`` convention; gpumask's documented rule)."""
    geom = WcsGeom.create(binsz=4.0, frame="galactic", proj="AIT")
    nx, ny = geom.npix
    x, y = _pixel_grid(nx, ny)
    lon, _ = geom.pix_to_coord((x, y))
    off = ~np.isfinite(lon)
    assert off.any()
    xs, ys = np.where(off, -1.0, x), np.where(off, -1.0, y)
    for reg in (R.CirclePixelRegion(R.PixCoord(3.0, 2.0), 12.0),  # covers (-1, -1)
                R.CirclePixelRegion(R.PixCoord(85.0, 40.0), 12.0),  # covers other off-sky px
                R.RectanglePixelRegion(R.PixCoord(0.0, 0.0), 6.0, 4.0, angle=10 * u.deg)):
        ref = reg.contains(R.PixCoord(xs, ys))
        _assert_same(ref, _pixel_mask(geom, [reg], backend), repr(reg))


# ---------------------------------------------------------------------- off-sky pixels (AIT)

AIT_ALLSKY = dict(binsz=2.0, frame="galactic", proj="AIT")


def _ait_corner_regions(wcs):
    c_low = wcs.pixel_to_world(30.0, 20.0)  # on the sky, near the lower-left corner
    c_high = wcs.pixel_to_world(150.0, 70.0)  # near the upper-right corner
    return {
        # pixel footprints that contain pixel (-1, -1): every off-sky pixel is inside
        "circle-covers-corner": (R.CircleSkyRegion(c_low, 60 * u.deg), True),
        "box-covers-corner": (R.RectangleSkyRegion(c_low, 150 * u.deg, 90 * u.deg,
                                                   angle=10 * u.deg), True),
        "polygon-covers-corner": (R.PolygonSkyRegion(_clean(wcs.pixel_to_world(
            np.array([20.0, 80.0, 60.0]), np.array([30.0, 15.0, 45.0])), "icrs")), None),
        # footprint over off-sky pixels of the other corner, but not over (-1, -1)
        "circle-other-corner": (R.CircleSkyRegion(c_high, 60 * u.deg), False),
    }


@pytest.mark.gammapy
@pytest.mark.parametrize("name", ["circle-covers-corner", "box-covers-corner",
                                  "polygon-covers-corner", "circle-other-corner"])
@pytest.mark.parametrize("energy", [False, True])
def test_allsky_ait_off_sky_pixels(name, energy, backend, gammapy_maps):
    gg = _gammapy_geom(gammapy_maps, energy=energy, **AIT_ALLSKY)
    geom = _gpumask_geom(energy=energy, **AIT_ALLSKY)
    reg, covers = _ait_corner_regions(geom.wcs)[name]
    nx, ny = geom.npix
    x, y = _pixel_grid(nx, ny)
    off = ~np.isfinite(geom.pix_to_coord((x, y))[0])
    assert off.sum() > 1000
    corner = bool(reg.to_pixel(geom.wcs).contains(R.PixCoord(-1.0, -1.0)))
    if covers is not None:
        assert corner is covers
    ref = _gammapy_mask(gg, [reg])
    got = _pixel_mask(geom, [reg], backend)
    _assert_same(ref, got, name)
    image = got[0] if energy else got
    assert np.all(image[off] == corner)  # gammapy's (-1, -1) rule
    _assert_same(~ref, _pixel_mask(geom, [reg], backend, inside=False), f"{name} inside=False")
    # with another region in the union (no effect on off-sky pixels unless it covers (-1, -1))
    regs = [reg, R.CircleSkyRegion(SkyCoord(0, 0, unit="deg", frame="galactic"), 10 * u.deg)]
    _assert_same(_gammapy_mask(gg, regs), _pixel_mask(geom, regs, backend), f"{name} + circle")


def _edge_points(geom, rng, count):
    """Points near pixels whose centre is on the sky but a corner is not (their
    solid angle is undefined in gammapy) and near the domain edge in general."""
    nx, ny = geom.npix
    x, y = _pixel_grid(nx, ny)
    centre_ok = np.isfinite(geom.pix_to_coord((x, y))[0])
    corner_ok = np.ones_like(centre_ok)
    for dx in (-0.5, 0.5):
        for dy in (-0.5, 0.5):
            corner_ok &= np.isfinite(geom.pix_to_coord((x + dx, y + dy))[0])
    edge = np.argwhere(centre_ok & ~corner_ok)
    assert len(edge) > 50
    pts = []
    while len(pts) < count:
        iy, ix = edge[int(rng.integers(len(edge)))]
        mode = rng.random()
        if mode < 0.3:
            px, py = float(ix), float(iy)
        elif mode < 0.5:
            px, py = ix + 0.5 * float(rng.choice([-1, 1])), float(iy)
        else:
            px, py = ix + float(rng.uniform(-0.9, 0.9)), iy + float(rng.uniform(-0.9, 0.9))
        c = geom.wcs.pixel_to_world(px, py)
        if np.isfinite(c.spherical.lon.deg):
            pts.append(R.PointSkyRegion(_clean(c, REGION_FRAMES[len(pts) % 3])))
    return pts


@pytest.mark.gammapy
@pytest.mark.parametrize("geom_kw", [
    AIT_ALLSKY,
    dict(binsz=3.5, frame="icrs", proj="AIT", skydir=(100.0, 20.0)),
    dict(skydir=(0.0, 0.0), binsz=2.5, npix=(160, 80), frame="galactic", proj="AIT"),
], ids=["allsky-gal", "allsky-icrs-oblique", "wider-than-domain"])
def test_points_near_ait_domain_edge(geom_kw, backend, gammapy_maps):
    rng = np.random.default_rng([SEED, 5])
    gg = _gammapy_geom(gammapy_maps, **geom_kw)
    geom = _gpumask_geom(**geom_kw)
    pts = _edge_points(geom, rng, 40)
    ref = _gammapy_mask(gg, pts)
    assert ref.sum() > 0
    _assert_same(ref, _pixel_mask(geom, pts, backend), "edge points")
    for p in pts[:10]:  # one by one: each point's own 0-4 pixels
        _assert_same(_gammapy_mask(gg, [p]), _pixel_mask(geom, [p], backend), repr(p))


# ---------------------------------------------------------------------- points


def _point_positions(rng, nx, ny, count):
    """Pixel positions: random, exactly on pixel centres, on pixel edges
    (x0 = k + 0.5), on pixel corners, and just outside the map."""
    out = []
    for i in range(count):
        mode = i % 6
        if mode == 0:
            x, y = rng.uniform(-2.0, nx + 1.0), rng.uniform(-2.0, ny + 1.0)
        elif mode == 1:
            x, y = float(rng.integers(0, nx)), float(rng.integers(0, ny))
        elif mode == 2:
            x, y = rng.integers(-1, nx) + 0.5, float(rng.uniform(0, ny - 1))
        elif mode == 3:
            x, y = float(rng.integers(0, nx)), rng.integers(-1, ny) + 0.5
        elif mode == 4:
            x, y = rng.integers(-1, nx) + 0.5, rng.integers(-1, ny) + 0.5
        else:
            side = rng.random() < 0.5
            x = float(rng.choice([-0.999, -0.5, -1e-9, nx - 1 + 1e-9, nx - 0.5, nx - 0.001]))
            y = float(rng.uniform(0, ny - 1))
            if side:
                x, y = y * (nx - 1) / max(ny - 1, 1), float(
                    rng.choice([-0.999, -0.5, ny - 1 + 1e-9, ny - 0.5]))
        out.append((float(x), float(y)))
    return out


@pytest.mark.gammapy
@pytest.mark.parametrize("proj", PROJS)
@pytest.mark.parametrize("map_frame", FRAMES)
def test_point_regions(proj, map_frame, backend, gammapy_maps):
    rng = np.random.default_rng([SEED, 6, PROJS.index(proj), FRAMES.index(map_frame)])
    nx, ny = int(rng.integers(20, 60)), int(rng.integers(20, 60))
    kw = dict(skydir=(float(rng.uniform(0, 360)), float(rng.uniform(-70, 70))),
              binsz=float(_loguniform(rng, 0.01, 1.0)), npix=(nx, ny), frame=map_frame,
              proj=proj)
    gg = _gammapy_geom(gammapy_maps, **kw)
    geom = _gpumask_geom(**kw)
    pos = _point_positions(rng, nx, ny, 36)
    world = geom.wcs.pixel_to_world(np.array([p[0] for p in pos]), np.array([p[1] for p in pos]))
    pts = [R.PointSkyRegion(_clean(world[i], REGION_FRAMES[i % 3])) for i in range(len(pos))]
    ref_all = _gammapy_mask(gg, pts)
    _assert_same(ref_all, _pixel_mask(geom, pts, backend), "all points")
    sizes = []
    for p in pts[:18]:  # each point alone (all six position kinds): 0-4 pixels
        ref = _gammapy_mask(gg, [p])
        sizes.append(int(ref.sum()))
        _assert_same(ref, _pixel_mask(geom, [p], backend), repr(p))
    assert max(sizes) <= 4 and 4 in sizes and len(set(sizes)) > 1
    # a SkyCoord (array) is a list of points for gpumask
    coords = SkyCoord([_clean(p.center, map_frame) for p in pts])
    _assert_same(ref_all, _pixel_mask(geom, coords, backend), "SkyCoord array")
    # a scalar SkyCoord is one point for both
    _assert_same(_gammapy_mask(gg, pts[1].center), _pixel_mask(geom, pts[1].center, backend),
                 "scalar SkyCoord")


@pytest.mark.gammapy
def test_points_mixed_with_shapes_and_energy_axis(backend, gammapy_maps):
    kw = dict(skydir=(83.633, 22.0145), binsz=0.05, npix=(41, 31), frame="icrs", proj="TAN",
              energy=True)
    gg = _gammapy_geom(gammapy_maps, **kw)
    geom = _gpumask_geom(**kw)
    c = SkyCoord(83.633, 22.0145, unit="deg")
    regs = [R.PointSkyRegion(c), R.CircleSkyRegion(SkyCoord(83.2, 22.3, unit="deg"), 0.2 * u.deg),
            R.PointSkyRegion(SkyCoord(84.3, 21.4, unit="deg", frame="icrs").galactic)]
    for inside in (True, False):
        ref = _gammapy_mask(gg, regs, inside=inside)
        got = _pixel_mask(geom, regs, backend, inside=inside)
        assert got.shape == (3, 31, 41)
        _assert_same(ref, got, f"inside={inside}")


@pytest.mark.gammapy
def test_point_with_non_default_fk5_equinox_is_placed_correctly(backend, gammapy_maps):
    """A deliberate difference from gammapy 2.1: it turns a PointSkyRegion into
    PointSpatialModel.from_position, which keeps only the frame *name* ('fk5'), so
    an FK5(equinox='J2015') point lands where the J2000 one would.  gpumask keeps
    the equinox, as regions does for every other shape."""
    kw = dict(skydir=(83.6, 22.0), binsz=0.001, npix=(50, 50), frame="icrs", proj="TAN")
    gg = _gammapy_geom(gammapy_maps, **kw)
    geom = _gpumask_geom(**kw)
    coord = SkyCoord(83.6, 22.0, unit="deg", frame=FK5(equinox="J2015"))
    ref = _gammapy_mask(gg, [R.PointSkyRegion(coord)])
    assert ref.sum() == 4  # gammapy: the 4 pixels around the map centre (J2000 position)
    got = _pixel_mask(geom, [R.PointSkyRegion(coord)], backend)
    # gpumask: the pixels around the point's true (J2015 -> ICRS) position
    x0, y0 = geom.wcs.world_to_pixel(coord)
    expected = np.zeros_like(ref)
    for ix in (int(np.floor(x0)), int(np.floor(x0)) + 1):
        for iy in (int(np.floor(y0)), int(np.floor(y0)) + 1):
            if abs(ix - x0) < 1 and abs(iy - y0) < 1 and 0 <= ix < 50 and 0 <= iy < 50:
                expected[iy, ix] = True
    _assert_same(expected, got, "FK5 J2015 point")
    assert not np.array_equal(ref, got)


@pytest.mark.gammapy
def test_non_default_fk5_equinox_shapes(backend, gammapy_maps):
    """Area shapes keep the equinox in regions and in gpumask alike."""
    kw = dict(skydir=(83.6, 22.0), binsz=0.01, npix=(80, 60), frame="icrs", proj="TAN")
    gg = _gammapy_geom(gammapy_maps, **kw)
    geom = _gpumask_geom(**kw)
    c = SkyCoord(83.45, 22.1, unit="deg", frame=FK5(equinox="J2015"))
    regs = [R.CircleSkyRegion(c, 0.1 * u.deg),
            R.RectangleSkyRegion(c, 0.3 * u.deg, 0.1 * u.deg, angle=20 * u.deg)]
    ref = _gammapy_mask(gg, regs)
    assert ref.sum() > 100
    _assert_same(ref, _pixel_mask(geom, regs, backend), "FK5 J2015 shapes")
