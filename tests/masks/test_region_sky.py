"""WcsGeom.region_mask with method="sky": exact geometry on the sphere.

Masks are checked against an independent brute-force reference evaluated at every
pixel centre with astropy (``wcs.pixel_to_world``, ``SkyCoord.separation``, frame
transformations), textbook gnomonic standard coordinates and matplotlib's
point-in-polygon test - nothing from gpumask's internals.  Pixels whose reference
quantity lies within ``EPS`` of a boundary are left out of the comparisons; every
other pixel must agree.

Also covered: geometry stress cases (poles, the longitude wrap, all-sky seams), the
agreement of the sky and pixel methods on small shapes (which pins the angle
convention), the accepted inputs (ds9 text and files, regions objects, SkyCoords,
ds9 exclusion, compound regions, annuli), device residency, and the errors for bad
input.
"""

from __future__ import annotations

import math

import astropy.units as u
import numpy as np
import pytest
import regions as R
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS
from matplotlib.path import Path as MplPath
from scipy import ndimage

import gpumask
from gpumask import MapAxis, WcsGeom
from gpumask.backend import backend_of, to_host

from ..conftest import assert_on_backend

EPS = 1e-9  # boundary margin: deg for separations, relative for the plane shapes
SEED = 20261121
PROJS = ("CAR", "TAN", "AIT", "SIN")
MAP_FRAMES = ("icrs", "galactic")
REGION_FRAMES = ("icrs", "galactic", "fk5")
N_RANDOM_CASES = 40
CRAB = SkyCoord(83.633083, 22.0145, unit="deg", frame="icrs")


# ============================================================================ reference


def _xyz(lon_deg, lat_deg):
    lon, lat = np.deg2rad(lon_deg), np.deg2rad(lat_deg)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def _lonlat(coord):
    sph = coord.spherical
    return sph.lon.deg, sph.lat.deg


class Reference:
    """Brute force over every pixel centre of ``geom`` with astropy."""

    def __init__(self, geom):
        self.geom = geom
        nx, ny = geom.npix
        self.shape = (ny, nx)
        x, y = np.meshgrid(np.arange(nx), np.arange(ny))
        with np.errstate(invalid="ignore"):
            self.coords = geom.wcs.pixel_to_world(x, y)
        lon, lat = _lonlat(self.coords)
        self.on_sky = np.isfinite(lon) & np.isfinite(lat)
        self._framed = {}

    def empty(self):
        return np.zeros(self.shape, bool), np.zeros(self.shape, bool)

    def lonlat_in(self, frame):
        """Pixel centres (lon, lat in deg) in ``frame`` (a frame instance)."""
        key = (type(frame).__name__, repr(getattr(frame, "equinox", None)))
        if key not in self._framed:
            with np.errstate(invalid="ignore"):
                moved = self.coords.transform_to(frame.replicate_without_data())
            self._framed[key] = _lonlat(moved)
        return self._framed[key]

    # ---------------------------------------------------------------- shapes
    def separation(self, center):
        with np.errstate(invalid="ignore"):
            return self.coords.separation(center).deg

    def circle(self, center, radius):
        sep = self.separation(center)
        r = u.Quantity(radius).to_value(u.deg)
        return sep <= r, np.abs(sep - r) <= EPS

    def annulus(self, center, r_in, r_out):
        sep = self.separation(center)
        r_in, r_out = u.Quantity(r_in).to_value(u.deg), u.Quantity(r_out).to_value(u.deg)
        inside = (sep >= r_in) & (sep <= r_out)
        return inside, (np.abs(sep - r_in) <= EPS) | (np.abs(sep - r_out) <= EPS)

    def gnomonic(self, center):
        """Standard coordinates (xi east, eta north; radians, tan of the distance)
        of the pixel centres in the tangent plane at ``center``, in its frame,
        and whether they lie less than 90 deg from it."""
        lon, lat = self.lonlat_in(center.frame)
        lon0, lat0 = (np.deg2rad(v) for v in _lonlat(center))
        lon, lat = np.deg2rad(lon), np.deg2rad(lat)
        dlon = lon - lon0
        with np.errstate(invalid="ignore", divide="ignore"):
            cosc = np.sin(lat0) * np.sin(lat) + np.cos(lat0) * np.cos(lat) * np.cos(dlon)
            xi = np.cos(lat) * np.sin(dlon) / cosc
            eta = (np.cos(lat0) * np.sin(lat) - np.sin(lat0) * np.cos(lat) * np.cos(dlon)) / cosc
            front = cosc > 0
        return xi, eta, front

    def _axes_uv(self, center, angle):
        xi, eta, front = self.gnomonic(center)
        a = u.Quantity(angle).to_value(u.rad)
        # width axis (-cos a, sin a), height axis (sin a, cos a) in (east, north)
        uu = -xi * math.cos(a) + eta * math.sin(a)
        vv = xi * math.sin(a) + eta * math.cos(a)
        return uu, vv, front

    def ellipse(self, center, width, height, angle):
        uu, vv, front = self._axes_uv(center, angle)
        ta = math.tan(u.Quantity(width).to_value(u.rad) / 2)
        tb = math.tan(u.Quantity(height).to_value(u.rad) / 2)
        with np.errstate(invalid="ignore"):
            q = (uu / ta) ** 2 + (vv / tb) ** 2
            return front & (q <= 1), front & (np.abs(q - 1) <= EPS)

    def box(self, center, width, height, angle):
        uu, vv, front = self._axes_uv(center, angle)
        tw = math.tan(u.Quantity(width).to_value(u.rad) / 2)
        th = math.tan(u.Quantity(height).to_value(u.rad) / 2)
        with np.errstate(invalid="ignore"):
            su, sv = np.abs(uu) / tw, np.abs(vv) / th
            inside = front & (su <= 1) & (sv <= 1)
            near = (np.abs(su - 1) <= EPS) & (sv <= 1 + EPS) | (np.abs(sv - 1) <= EPS) & (su <= 1 + EPS)
        return inside, front & near

    def polygon(self, vertices):
        """Great-circle edges: gnomonic projection about the normalised sum of the
        vertex vectors, where great circles are straight lines."""
        lon, lat = self.lonlat_in(vertices.frame)
        p = _xyz(lon, lat)
        v = _xyz(*_lonlat(vertices))
        c = v.sum(axis=0)
        c /= np.linalg.norm(c)
        helper = np.array([0.0, 0.0, 1.0]) if abs(c[2]) < 0.5 else np.array([0.0, 1.0, 0.0])
        e1 = np.cross(helper, c)
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(c, e1)
        with np.errstate(invalid="ignore", divide="ignore"):
            w = p @ c
            a, b = (p @ e1) / w, (p @ e2) / w
            front = w > 0
        wv = v @ c
        assert np.all(wv > 0.05), "test polygon must lie well within a hemisphere"
        va, vb = (v @ e1) / wv, (v @ e2) / wv
        verts = np.column_stack([va, vb])
        inside = np.zeros(self.shape, bool)
        near = np.zeros(self.shape, bool)
        sel = front & np.isfinite(a) & np.isfinite(b)
        pts = np.column_stack([a[sel], b[sel]])
        path = MplPath(np.vstack([verts, verts[:1]]), closed=True)
        inside[sel] = path.contains_points(pts)
        # distance to the nearest edge, relative to the polygon's size
        scale = np.ptp(verts, axis=0).max()
        dist = np.full(len(pts), np.inf)
        for i in range(len(verts)):
            p0, p1 = verts[i], verts[(i + 1) % len(verts)]
            d = p1 - p0
            t = np.clip(((pts - p0) @ d) / (d @ d), 0.0, 1.0)
            dist = np.minimum(dist, np.hypot(*(pts - p0 - t[:, None] * d).T))
        near[sel] = dist <= EPS * scale
        return inside, near

    def points(self, coords):
        """The pixel whose centre is nearest to each position (on the sky, in the map)."""
        inside = np.zeros(self.shape, bool)
        with np.errstate(invalid="ignore"):
            x, y = self.geom.wcs.world_to_pixel(coords)
        x, y = np.atleast_1d(x), np.atleast_1d(y)
        ok = np.isfinite(x) & np.isfinite(y)
        ix, iy = np.floor(x[ok] + 0.5).astype(int), np.floor(y[ok] + 0.5).astype(int)
        ny, nx = self.shape
        keep = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
        ix, iy = ix[keep], iy[keep]
        keep = self.on_sky[iy, ix]
        inside[iy[keep], ix[keep]] = True
        return inside, np.zeros(self.shape, bool)

    def region(self, region):
        """Reference (inside, near-boundary) of one regions sky object."""
        if isinstance(region, SkyCoord):
            return self.points(region)
        if isinstance(region, R.CircleSkyRegion):
            out = self.circle(region.center, region.radius)
        elif isinstance(region, R.CircleAnnulusSkyRegion):
            out = self.annulus(region.center, region.inner_radius, region.outer_radius)
        elif isinstance(region, R.EllipseSkyRegion):
            out = self.ellipse(region.center, region.width, region.height, region.angle)
        elif isinstance(region, R.RectangleSkyRegion):
            out = self.box(region.center, region.width, region.height, region.angle)
        elif isinstance(region, R.PolygonSkyRegion):
            out = self.polygon(region.vertices)
        elif isinstance(region, R.PointSkyRegion):
            out = self.points(region.center)
        else:
            raise TypeError(type(region))
        inside, near = out
        return inside & self.on_sky, near & self.on_sky


def _mask(geom, regions, backend=None, **kwargs):
    """region_mask as a host numpy array (2D image)."""
    m = geom.region_mask(regions, backend=backend, **kwargs)
    data = to_host(m.data)
    assert data.dtype == np.bool_
    assert data.shape == geom.data_shape
    return data


def _assert_same(got, inside, near, what):
    assert got.shape == inside.shape
    diff = (got != inside) & ~near
    if diff.any():
        iy, ix = np.argwhere(diff)[0]
        raise AssertionError(
            f"{what}: {int(diff.sum())} pixel(s) differ from the reference "
            f"(first at y={iy}, x={ix}: got {got[iy, ix]}, reference {inside[iy, ix]}); "
            f"mask {int(got.sum())} px, reference {int(inside.sum())} px, margin {int(near.sum())} px"
        )
    # the margin is a sliver, never a way to skip the comparison
    assert near.sum() <= max(4, 1e-3 * near.size), f"{what}: {int(near.sum())} margin pixels"


# ----------------------------------------------------------------------- self-checks


@pytest.mark.parametrize("frame", ["icrs", "galactic", "fk5"])
def test_reference_gnomonic_matches_astropy_tan_wcs(frame):
    """The reference's standard coordinates are those of an astropy TAN WCS
    (intermediate coordinates in deg, x towards increasing longitude)."""
    geom = WcsGeom.create(skydir=(40.0, 50.0), npix=(40, 30), binsz=0.7, proj="CAR", frame="icrs")
    ref = Reference(geom)
    center = SkyCoord(35.0, 55.0, unit="deg", frame="icrs").transform_to(frame)
    xi, eta, front = ref.gnomonic(center)
    assert front.all()
    wcs = WCS(naxis=2)
    names = {"galactic": ("GLON-TAN", "GLAT-TAN")}.get(frame, ("RA---TAN", "DEC--TAN"))
    wcs.wcs.ctype = list(names)
    wcs.wcs.crval = list(_lonlat(center))
    wcs.wcs.crpix = [1.0, 1.0]
    wcs.wcs.cdelt = [1.0, 1.0]
    lon, lat = ref.lonlat_in(center.frame)
    x, y = wcs.wcs_world2pix(lon, lat, 0)
    np.testing.assert_allclose(np.rad2deg(xi), x, atol=1e-9)
    np.testing.assert_allclose(np.rad2deg(eta), y, atol=1e-9)


# ============================================================================ 1. random cases


def _random_center(rng, geom, frame):
    nx, ny = geom.npix
    for _ in range(1000):
        x = rng.uniform(-0.25, 1.25) * nx
        y = rng.uniform(-0.25, 1.25) * ny
        with np.errstate(invalid="ignore"):
            c = geom.wcs.pixel_to_world(x, y)
        lon, lat = _lonlat(c)
        if np.isfinite(lon) and np.isfinite(lat):
            c = c.transform_to(frame)
            lon, lat = _lonlat(c)
            return SkyCoord(float(lon), float(lat), unit="deg", frame=frame)
    raise AssertionError("no on-sky position found")


def _random_case(i):
    """A seeded random geometry and one or two regions of every shape."""
    rng = np.random.default_rng([SEED, i])
    proj = PROJS[i % len(PROJS)]
    frame = MAP_FRAMES[(i // len(PROJS)) % len(MAP_FRAMES)]
    binsz = float(10 ** rng.uniform(math.log10(0.02), 0.0))
    if i % 16 in (2, 3, 6):  # wide AIT/SIN maps, whose corners are off the sky
        binsz = float(rng.uniform(1.2, 2.5))
    nx, ny = (int(n) for n in rng.integers(24, 151, size=2))
    skydir = (float(rng.uniform(0, 360)), float(rng.uniform(-85, 85)))
    geom = WcsGeom.create(npix=(nx, ny), binsz=binsz, proj=proj, frame=frame, skydir=skydir)
    span = max(nx, ny) * binsz
    lo, hi = math.log10(max(0.1 * binsz, 0.004)), math.log10(min(40.0, 0.8 * span))

    def size():
        return float(10 ** rng.uniform(lo, hi)) * u.deg

    def center():
        return _random_center(rng, geom, REGION_FRAMES[rng.integers(len(REGION_FRAMES))])

    regions = []
    for _ in range(2):
        regions.append(R.CircleSkyRegion(center(), size()))
    r1, r2 = sorted([size(), size()])
    regions.append(R.CircleAnnulusSkyRegion(center(), r1, r2 * 1.05))
    for cls in (R.EllipseSkyRegion, R.RectangleSkyRegion, R.EllipseSkyRegion, R.RectangleSkyRegion):
        regions.append(cls(center(), size(), size(), angle=float(rng.uniform(0, 360)) * u.deg))
    # a star-shaped (simple) polygon with great-circle edges
    c = center()
    n = int(rng.integers(3, 9))
    pa = np.sort(rng.uniform(0, 360, n)) * u.deg
    radius = size().to_value(u.deg) * rng.uniform(0.3, 1.0, n) * u.deg
    regions.append(R.PolygonSkyRegion(c.directional_offset_by(pa, radius)))
    # a batch of points (SkyCoord array) and a single point region
    frame_p = REGION_FRAMES[rng.integers(len(REGION_FRAMES))]
    pts = [_random_center(rng, geom, frame_p) for _ in range(15)]
    regions.append(SkyCoord([p.spherical.lon.deg for p in pts], [p.spherical.lat.deg for p in pts],
                            unit="deg", frame=frame_p))
    regions.append(R.PointSkyRegion(center()))
    desc = f"case {i}: {proj} {frame} binsz={binsz:.4g} npix=({nx},{ny}) skydir={skydir}"
    return geom, regions, desc


_REFERENCES: dict = {}


def _case_with_reference(i):
    if i not in _REFERENCES:
        geom, regions, desc = _random_case(i)
        ref = Reference(geom)
        _REFERENCES[i] = (geom, regions, desc, ref, [ref.region(r) for r in regions])
    return _REFERENCES[i]


@pytest.mark.parametrize("case", range(N_RANDOM_CASES))
def test_random_regions_match_reference(case, backend):
    geom, regions, desc, _, expected = _case_with_reference(case)
    for region, (inside, near) in zip(regions, expected):
        got = _mask(geom, region, backend=backend)
        _assert_same(got, inside, near, f"{desc}\n{region}")
    # all at once (shapes of every kind and frame in one pass): the union
    union = np.logical_or.reduce([e[0] for e in expected])
    margin = np.logical_or.reduce([e[1] for e in expected])
    got = _mask(geom, regions, backend=backend)
    _assert_same(got, union, margin, f"{desc}: union of all")
    _assert_same(_mask(geom, regions, backend=backend, inside=False), ~union, margin, f"{desc}: inverted")
    assert union.any(), f"{desc}: degenerate case, nothing inside"


def test_random_cases_cover_the_space():
    """The random cases span projections, frames, sizes and edge situations."""
    seen = {"proj": set(), "frame": set(), "region_frames": set(), "partly_outside": 0,
            "sub_pixel": 0, "large": 0, "off_sky_pixels": 0}
    for i in range(N_RANDOM_CASES):
        geom, regions, _, ref, expected = _case_with_reference(i)
        seen["proj"].add(geom.projection)
        seen["frame"].add(geom.frame)
        seen["off_sky_pixels"] += int((~ref.on_sky).any())
        binsz = geom.pixel_scales[0].deg
        for region, (inside, _) in zip(regions, expected):
            if isinstance(region, R.CircleSkyRegion):
                seen["region_frames"].add(region.center.frame.name)
                r = region.radius.to_value(u.deg)
                seen["sub_pixel"] += int(r < 0.5 * binsz)
                seen["large"] += int(r > 10)
                x, y = geom.wcs.world_to_pixel(region.center)
                nx, ny = geom.npix
                seen["partly_outside"] += int(not (0 <= x < nx and 0 <= y < ny) and inside.any())
    assert seen["proj"] == set(PROJS)
    assert seen["frame"] == set(MAP_FRAMES)
    assert seen["region_frames"] == set(REGION_FRAMES)
    for key in ("partly_outside", "sub_pixel", "large", "off_sky_pixels"):
        assert seen[key] >= 2, (key, seen)


# ============================================================================ 2. geometry stress


def _check_all(geom, regions, backend, what):
    ref = Reference(geom)
    masks = []
    for region in regions:
        inside, near = ref.region(region)
        got = _mask(geom, region, backend=backend)
        _assert_same(got, inside, near, f"{what}: {region}")
        masks.append(got)
    return ref, masks


def _pixel_of(geom, coord):
    x, y = geom.wcs.world_to_pixel(coord)
    return int(np.floor(y + 0.5)), int(np.floor(x + 0.5))


@pytest.mark.parametrize(
    "proj, skydir, frame",
    [
        ("CAR", (30.0, 88.0), "icrs"),
        ("CAR", (200.0, 85.0), "galactic"),
        ("TAN", (0.0, 90.0), "galactic"),
        ("SIN", (120.0, -86.0), "icrs"),
        ("AIT", (300.0, 89.0), "icrs"),
    ],
)
def test_maps_near_the_poles(proj, skydir, frame, backend):
    geom = WcsGeom.create(skydir=skydir, npix=(120, 110), binsz=0.1, proj=proj, frame=frame)
    sign = 1 if skydir[1] > 0 else -1
    pole = SkyCoord(0.0, sign * 90.0, unit="deg", frame=frame)
    regions = [
        R.CircleSkyRegion(SkyCoord(17.0, sign * 88.8, unit="deg", frame=frame), 2.0 * u.deg),
        R.CircleAnnulusSkyRegion(SkyCoord(100.0, sign * 89.5, unit="deg", frame=frame), 1.0 * u.deg,
                                 3.1 * u.deg),
        R.EllipseSkyRegion(SkyCoord(250.0, sign * 89.5, unit="deg", frame=frame), 4.1 * u.deg,
                           1.7 * u.deg, angle=33 * u.deg),
        R.RectangleSkyRegion(SkyCoord(140.0, sign * 89.3, unit="deg", frame=frame), 3.3 * u.deg,
                             1.9 * u.deg, angle=-20 * u.deg),
        R.CircleSkyRegion(pole.transform_to("fk5" if frame == "icrs" else "icrs"), 1.3 * u.deg),
        R.PolygonSkyRegion(SkyCoord([0, 90, 180, 270], [sign * 88.5] * 4, unit="deg", frame=frame)),
    ]
    _, masks = _check_all(geom, regions, backend, f"{proj} map at {skydir} {frame}")
    iy, ix = _pixel_of(geom, pole)
    assert 0 <= iy < geom.npix[1] and 0 <= ix < geom.npix[0]
    # the shapes around the pole contain the pixel nearest to it
    for k in (0, 2, 3, 4, 5):
        assert masks[k][iy, ix], regions[k]
    assert not masks[1][iy, ix]  # the annulus has a hole there


def test_longitude_wrap(backend):
    geom = WcsGeom.create(skydir=(0.0, 0.0), npix=(160, 80), binsz=0.05, frame="galactic")
    circle = R.CircleSkyRegion(SkyCoord(359.5, 0.0, unit="deg", frame="galactic"), 2.0 * u.deg)
    box = R.RectangleSkyRegion(SkyCoord(0.3, 0.5, unit="deg", frame="galactic"), 3.0 * u.deg,
                               1.0 * u.deg, angle=10 * u.deg)
    ellipse = R.EllipseSkyRegion(SkyCoord(-0.7, -0.5, unit="deg", frame="galactic"), 4.0 * u.deg,
                                 1.0 * u.deg, angle=-15 * u.deg)
    _, (m_circle, *_) = _check_all(geom, [circle, box, ellipse], backend, "map across lon 0")
    for lon, expect in ((1.4, True), (359.5, True), (357.6, True), (1.6, False), (357.4, False)):
        iy, ix = _pixel_of(geom, SkyCoord(lon, 0.0, unit="deg", frame="galactic"))
        assert m_circle[iy, ix] == expect, lon
    assert m_circle.sum() == pytest.approx(math.pi * (2.0 / 0.05) ** 2, rel=0.02)


ALLSKY_REGIONS = [
    R.CircleSkyRegion(SkyCoord(180.0, 10.0, unit="deg", frame="galactic"), 15.0 * u.deg),
    R.CircleSkyRegion(SkyCoord(0.0, 90.0, unit="deg", frame="galactic"), 10.0 * u.deg),
    R.CircleSkyRegion(SkyCoord(45.0, -88.0, unit="deg", frame="galactic"), 7.5 * u.deg),
    R.EllipseSkyRegion(SkyCoord(179.0, -30.0, unit="deg", frame="galactic"), 30.0 * u.deg, 10.0 * u.deg,
                       angle=60 * u.deg),
    R.RectangleSkyRegion(SkyCoord(181.0, 45.0, unit="deg", frame="galactic"), 25.0 * u.deg,
                         12.0 * u.deg, angle=100 * u.deg),
    R.CircleAnnulusSkyRegion(SkyCoord(185.0, -60.0, unit="deg", frame="galactic"), 5.0 * u.deg,
                             20.0 * u.deg),
    R.CircleSkyRegion(SkyCoord(266.4, -28.9, unit="deg", frame="icrs"), 25.0 * u.deg),
    R.PolygonSkyRegion(SkyCoord([170, 190, 195, 165], [-5, -5, 20, 20], unit="deg", frame="galactic")),
]


@pytest.mark.parametrize("proj, binsz", [("CAR", 1.0), ("AIT", 2.0)])
def test_allsky_maps_seam_and_poles(proj, binsz, backend):
    geom = WcsGeom.create(binsz=binsz, proj=proj, frame="galactic")
    ref, masks = _check_all(geom, ALLSKY_REGIONS, backend, f"all-sky {proj}")
    seam = masks[0]
    rows = np.flatnonzero(seam.any(axis=1))
    # the circle on the lon=180 seam is split between the left and right map edges
    left = seam[:, : geom.npix[0] // 4].sum()
    right = seam[:, -geom.npix[0] // 4:].sum()
    assert left > 0 and right > 0 and abs(left - right) <= 0.25 * (left + right), (left, right)
    assert len(rows) > 0
    # never inside off the sky (AIT corners)
    union = _mask(geom, ALLSKY_REGIONS + [R.CircleSkyRegion(SkyCoord(0, 0, unit="deg", frame="galactic"),
                                                            179.9 * u.deg)])
    assert not union[~ref.on_sky].any()
    assert union[ref.on_sky].all()
    if proj == "CAR":
        assert masks[1][-1].all()  # the polar cap covers the whole top row
        assert masks[2][0].all()
    else:
        assert (~ref.on_sky).any()


def test_region_covering_almost_the_whole_sky(backend):
    geom = WcsGeom.create(binsz=3.0, proj="AIT", frame="icrs")
    regions = [
        R.CircleSkyRegion(SkyCoord(10.0, 20.0, unit="deg", frame="galactic"), 170.0 * u.deg),
        R.CircleAnnulusSkyRegion(SkyCoord(10.0, 20.0, unit="deg", frame="icrs"), 90 * u.deg, 175 * u.deg),
        R.EllipseSkyRegion(SkyCoord(100.0, -20.0, unit="deg", frame="icrs"), 150 * u.deg, 120 * u.deg,
                           angle=20 * u.deg),
        R.RectangleSkyRegion(SkyCoord(200.0, 40.0, unit="deg", frame="galactic"), 170 * u.deg,
                             100 * u.deg, angle=-50 * u.deg),
    ]
    _check_all(geom, regions, backend, "huge regions on an all-sky AIT map")


# ============================================================================ 3. sky vs pixel


def _boundary_band(mask):
    """Pixels with an 8-neighbour of the other value (within one pixel of the edge)."""
    st = np.ones((3, 3), bool)
    return ndimage.binary_dilation(mask, st) & ~ndimage.binary_erosion(mask, st, border_value=1)


def _sky_pixel_cases():
    rng = np.random.default_rng([SEED, 3])
    cases = []
    for i in range(18):
        kind = ("circle", "ellipse", "box")[i % 3]
        map_frame = MAP_FRAMES[(i // 3) % 2]
        region_frame = REGION_FRAMES[(i // 6) % 3]
        binsz = float(rng.uniform(0.01, 0.05))
        big = float(10 ** rng.uniform(math.log10(4 * binsz), 0.0))  # a few pixels to 1 deg
        small = big * float(rng.uniform(0.3, 1.0))
        lon, lat = float(rng.uniform(0, 360)), float(rng.uniform(-80, 80))
        cases.append((kind, map_frame, region_frame, binsz, big, small, lon, lat,
                      float(rng.uniform(-180, 180))))
    return cases


@pytest.mark.parametrize("kind, map_frame, region_frame, binsz, big, small, lon, lat, angle",
                         _sky_pixel_cases())
def test_sky_and_pixel_methods_agree_on_small_shapes(kind, map_frame, region_frame, binsz, big, small,
                                                     lon, lat, angle):
    center = SkyCoord(lon, lat, unit="deg", frame=region_frame)
    n = math.ceil(1.2 * big / binsz) + 6
    geom = WcsGeom.create(skydir=center, npix=(n, n + 3), binsz=binsz, proj="TAN", frame=map_frame)
    if kind == "circle":
        region = R.CircleSkyRegion(center, big / 2 * u.deg)
    else:
        cls = R.EllipseSkyRegion if kind == "ellipse" else R.RectangleSkyRegion
        region = cls(center, big * u.deg, small * u.deg, angle=angle * u.deg)
    sky = _mask(geom, region, method="sky")
    pix = _mask(geom, region, method="pixel")
    diff = sky != pix
    union = sky | pix
    assert union.sum() >= 3
    assert diff.sum() <= 0.01 * union.sum(), f"{kind}: {diff.sum()} of {union.sum()} pixels differ"
    assert not (diff & ~_boundary_band(sky)).any()
    # and the sky mask is the exact reference
    inside, near = Reference(geom).region(region)
    _assert_same(sky, inside, near, f"{kind} on TAN map")


@pytest.mark.parametrize("angle, inside_lon, outside_lon", [(30.0, -0.78, 0.78), (150.0, 0.78, -0.78)])
@pytest.mark.parametrize("cls", [R.EllipseSkyRegion, R.RectangleSkyRegion])
def test_angle_convention_explicit(cls, angle, inside_lon, outside_lon):
    """Angle turns the width axis from west towards north (east left on the display)."""
    geom = WcsGeom.create(skydir=(0.0, 0.0), npix=(100, 100), binsz=0.03, frame="galactic")
    region = cls(SkyCoord(0.0, 0.0, unit="deg", frame="galactic"), 2.0 * u.deg, 0.2 * u.deg,
                 angle=angle * u.deg)
    mask = _mask(geom, region)
    iy, ix = _pixel_of(geom, SkyCoord(inside_lon, 0.45, unit="deg", frame="galactic"))
    assert mask[iy, ix]
    iy, ix = _pixel_of(geom, SkyCoord(outside_lon, 0.45, unit="deg", frame="galactic"))
    assert not mask[iy, ix]
    # angle 0: width along longitude; angle 90: along latitude
    for a, (lon, lat) in ((0.0, (0.9, 0.0)), (90.0, (0.0, 0.9))):
        r = cls(region.center, 2.0 * u.deg, 0.2 * u.deg, angle=a * u.deg)
        m = _mask(geom, r)
        assert m[_pixel_of(geom, SkyCoord(lon, lat, unit="deg", frame="galactic"))]
        assert not m[_pixel_of(geom, SkyCoord(lat, lon, unit="deg", frame="galactic"))]


# ============================================================================ 4. API


@pytest.fixture
def geom():
    return WcsGeom.create(skydir=(0.0, 0.0), npix=(80, 60), binsz=0.05, frame="galactic")


@pytest.fixture
def gref(geom):
    return Reference(geom)


def test_seed_notebook_exclusion_mask(backend):
    geom = WcsGeom.create(skydir=CRAB, width="5 deg", binsz=0.02, frame="galactic")
    regions = ["galactic;box(185,-4,1.0,0.5, 45)", "icrs;circle(83.633083, 22.0145, 0.3)"]
    mask = geom.region_mask(regions, inside=False, backend=backend)
    assert_on_backend(mask, backend)
    assert_on_backend(mask.data, backend)
    data = to_host(mask.data)
    assert data.dtype == np.bool_ and data.shape == (250, 250)
    assert int((~data).sum()) == 1958
    ref = Reference(geom)
    box = ref.box(SkyCoord(185, -4, unit="deg", frame="galactic"), 1.0 * u.deg, 0.5 * u.deg, 45 * u.deg)
    circle = ref.circle(CRAB, 0.3 * u.deg)
    _assert_same(~data, box[0] | circle[0], box[1] | circle[1], "notebook")


def test_make_region():
    region = gpumask.make_region("galactic;box(185,-4,1.0,0.5, 45)")
    assert isinstance(region, R.RectangleSkyRegion)
    assert region.center.frame.name == "galactic"
    assert region.center.l.deg == pytest.approx(185) and region.center.b.deg == pytest.approx(-4)
    assert region.width.to_value(u.deg) == pytest.approx(1.0)
    assert region.height.to_value(u.deg) == pytest.approx(0.5)
    assert region.angle.to_value(u.deg) == pytest.approx(45)
    assert gpumask.make_region(region) is region
    with pytest.raises(ValueError, match="exactly one shape"):
        gpumask.make_region("galactic;circle(0,0,1)\ngalactic;circle(1,1,1)")
    with pytest.raises(TypeError, match="ds9 string"):
        gpumask.make_region(42)


def test_parse_regions_flattens_inputs():
    c = R.CircleSkyRegion(SkyCoord(0, 0, unit="deg", frame="galactic"), 1 * u.deg)
    out = gpumask.parse_regions(["galactic;circle(0,0,1)\nicrs;box(1,2,3,4,5)", c, R.Regions([c, c])])
    names = [type(r).__name__ for r in out]
    assert names == ["CircleSkyRegion", "RectangleSkyRegion"] + ["CircleSkyRegion"] * 3
    assert gpumask.parse_regions([]) == [] and gpumask.parse_regions("") == []


DS9_FRAMES = [
    ("galactic;circle(0.5,0.3,0.6)", R.CircleSkyRegion(SkyCoord(0.5, 0.3, unit="deg", frame="galactic"),
                                                      0.6 * u.deg)),
    ("icrs;circle(266.1,-28.7,0.4)", R.CircleSkyRegion(SkyCoord(266.1, -28.7, unit="deg", frame="icrs"),
                                                      0.4 * u.deg)),
    ("fk5;ellipse(266.6,-29.2,0.8,0.3,25)",
     R.EllipseSkyRegion(SkyCoord(266.6, -29.2, unit="deg", frame="fk5"), 1.6 * u.deg, 0.6 * u.deg,
                        angle=25 * u.deg)),
    ("galactic;box(359.2,-0.4,1.0,0.5,45)",
     R.RectangleSkyRegion(SkyCoord(359.2, -0.4, unit="deg", frame="galactic"), 1.0 * u.deg,
                          0.5 * u.deg, angle=45 * u.deg)),
    ("icrs;polygon(266.0,-29.5,266.8,-29.3,266.3,-28.6)",
     R.PolygonSkyRegion(SkyCoord([266.0, 266.8, 266.3], [-29.5, -29.3, -28.6], unit="deg", frame="icrs"))),
    ("galactic;annulus(-0.5,0.5,0.2,0.45)",
     R.CircleAnnulusSkyRegion(SkyCoord(359.5, 0.5, unit="deg", frame="galactic"), 0.2 * u.deg,
                              0.45 * u.deg)),
]


@pytest.mark.parametrize("text, region", DS9_FRAMES, ids=[t.split("(")[0] for t, _ in DS9_FRAMES])
def test_ds9_string_in_each_frame(text, region, geom, gref, backend):
    got = _mask(geom, text, backend=backend)
    inside, near = gref.region(region)
    assert inside.any()
    _assert_same(got, inside, near, text)
    np.testing.assert_array_equal(got, _mask(geom, region, backend=backend))


def test_ds9_many_shapes(geom, backend):
    texts = [t for t, _ in DS9_FRAMES]
    single = [_mask(geom, t, backend=backend) for t in texts]
    union = np.logical_or.reduce(single)
    header = "# Region file format: DS9 version 4.1\nglobal color=green\n"
    np.testing.assert_array_equal(_mask(geom, header + "\n".join(texts), backend=backend), union)
    np.testing.assert_array_equal(_mask(geom, texts, backend=backend), union)
    # several shapes on one line, one frame for all
    one_line = "galactic; circle(0.5,0.3,0.6); box(359.2,-0.4,1.0,0.5,45)"
    np.testing.assert_array_equal(_mask(geom, one_line, backend=backend), single[0] | single[3])
    # a frame line followed by shapes
    framed = "galactic\ncircle(0.5,0.3,0.6)\nbox(359.2,-0.4,1.0,0.5,45)\n"
    np.testing.assert_array_equal(_mask(geom, framed, backend=backend), single[0] | single[3])


def test_ds9_image_coordinates(geom, backend):
    """``image;`` shapes are pixel regions (1-based ds9 pixels) with regions' own rules."""
    texts = [
        "image;circle(20.3,15.7,6.2)",
        "image;ellipse(40.2,30.1,8,4,30)",
        "image;box(60.5,20.5,10,6,20)",
        "image;polygon(5.5,40.2,25.3,45.1,15.2,58.7)",
        "image;annulus(70.2,50.1,3,6.5)",
    ]
    ny, nx = geom.data_shape
    x, y = np.meshgrid(np.arange(nx), np.arange(ny))
    pix = R.PixCoord(x, y)
    expected = []
    for text in texts:
        region = gpumask.make_region(text)
        assert isinstance(region, R.PixelRegion)
        want = region.contains(pix)
        assert want.any()
        got = _mask(geom, text, backend=backend)
        np.testing.assert_array_equal(got, want, err_msg=text)
        expected.append(want)
    circle = gpumask.make_region(texts[0])
    assert circle.center.x == pytest.approx(19.3) and circle.center.y == pytest.approx(14.7)
    np.testing.assert_array_equal(_mask(geom, "\n".join(texts), backend=backend),
                                  np.logical_or.reduce(expected))


def test_ds9_files(tmp_path, geom, backend):
    text = "# Region file format: DS9 version 4.1\n" + "\n".join(t for t, _ in DS9_FRAMES) + "\n"
    path = tmp_path / "exclusion.reg"
    path.write_text(text)
    want = _mask(geom, text, backend=backend)
    assert want.any()
    np.testing.assert_array_equal(_mask(geom, str(path), backend=backend), want)
    np.testing.assert_array_equal(_mask(geom, path, backend=backend), want)
    np.testing.assert_array_equal(_mask(geom, [path, str(path)], backend=backend), want)


def test_region_objects_lists_and_regions(geom, backend):
    regs = [r for _, r in DS9_FRAMES]
    singles = [_mask(geom, r, backend=backend) for r in regs]
    union = np.logical_or.reduce(singles)
    np.testing.assert_array_equal(_mask(geom, regs, backend=backend), union)
    np.testing.assert_array_equal(_mask(geom, R.Regions(regs), backend=backend), union)
    np.testing.assert_array_equal(_mask(geom, tuple(regs), backend=backend), union)
    np.testing.assert_array_equal(_mask(geom, [regs[:2], DS9_FRAMES[2][0], R.Regions(regs[3:])],
                                        backend=backend), union)


def test_skycoord_points(geom, gref, backend):
    scalar = SkyCoord(0.123, -0.456, unit="deg", frame="galactic")
    got = _mask(geom, scalar, backend=backend)
    assert got.sum() == 1
    assert got[_pixel_of(geom, scalar)]
    rng = np.random.default_rng([SEED, 4])
    many = SkyCoord(rng.uniform(-2.5, 2.5, 60), rng.uniform(-2, 2, 60), unit="deg", frame="galactic")
    many_icrs = many.transform_to("icrs")
    inside, _ = gref.points(many)
    assert 0 < inside.sum() < 60  # some fall outside the map
    np.testing.assert_array_equal(_mask(geom, many, backend=backend), inside)
    np.testing.assert_array_equal(_mask(geom, many_icrs, backend=backend), inside)
    point_regions = [R.PointSkyRegion(c) for c in many_icrs]
    np.testing.assert_array_equal(_mask(geom, point_regions, backend=backend), inside)
    np.testing.assert_array_equal(_mask(geom, "galactic;point(0.123,-0.456)", backend=backend), got)


def test_ds9_exclusion(geom, gref, backend):
    center = SkyCoord(0, 0, unit="deg", frame="galactic")
    big, big_near = gref.circle(center, 1.0 * u.deg)
    small, small_near = gref.circle(center, 0.5 * u.deg)
    ring = _mask(geom, "galactic;circle(0,0,1)\ngalactic;-circle(0,0,0.5)", backend=backend)
    _assert_same(ring, big & ~small, big_near | small_near, "ds9 ring")
    assert not ring[_pixel_of(geom, SkyCoord(0.1, 0.1, unit="deg", frame="galactic"))]
    assert ring[_pixel_of(geom, SkyCoord(0.7, 0.1, unit="deg", frame="galactic"))]
    # the order of the lines does not matter
    np.testing.assert_array_equal(
        _mask(geom, "galactic;-circle(0,0,0.5)\ngalactic;circle(0,0,1)", backend=backend), ring)
    lone = _mask(geom, "galactic;-circle(0,0,0.5)", backend=backend)
    _assert_same(lone, ~small, small_near, "lone excluded circle")
    # inside=False inverts the combined result
    np.testing.assert_array_equal(
        _mask(geom, "galactic;circle(0,0,1)\ngalactic;-circle(0,0,0.5)", inside=False, backend=backend),
        ~ring)
    # an exclusion also removes pixels from an included object region
    obj = R.CircleSkyRegion(center, 1.0 * u.deg)
    excl = gpumask.make_region("galactic;-circle(0,0,0.5)")
    assert excl.meta.get("include") in (False, 0)
    np.testing.assert_array_equal(_mask(geom, [obj, excl], backend=backend), ring)


def test_compound_regions(geom, backend):
    a = R.CircleSkyRegion(SkyCoord(0.2, 0.1, unit="deg", frame="galactic"), 0.8 * u.deg)
    b = R.RectangleSkyRegion(SkyCoord(266.6, -28.5, unit="deg", frame="icrs"), 1.5 * u.deg, 0.7 * u.deg,
                             angle=30 * u.deg)
    c = R.EllipseSkyRegion(SkyCoord(-0.6, -0.4, unit="deg", frame="galactic"), 1.2 * u.deg, 0.5 * u.deg,
                           angle=-10 * u.deg)
    ma, mb, mc = (_mask(geom, r, backend=backend) for r in (a, b, c))
    assert (ma & mb).any() and (ma & ~mb).any() and (mb & ~ma).any()
    np.testing.assert_array_equal(_mask(geom, a | b, backend=backend), ma | mb)
    np.testing.assert_array_equal(_mask(geom, a & b, backend=backend), ma & mb)
    np.testing.assert_array_equal(_mask(geom, a ^ b, backend=backend), ma ^ mb)
    # regions 0.11 has no ``-`` operator: a difference is a ^ (a & b), or a compound
    # region with an operator of its own (called on the two boolean masks)
    np.testing.assert_array_equal(_mask(geom, a ^ (a & b), backend=backend), ma & ~mb)
    minus = R.CompoundSkyRegion(a | b, c, lambda x, y: x & ~y)
    np.testing.assert_array_equal(_mask(geom, minus, backend=backend), (ma | mb) & ~mc)
    np.testing.assert_array_equal(_mask(geom, R.CompoundSkyRegion(a, b, np.logical_and), backend=backend),
                                  ma & mb)
    np.testing.assert_array_equal(_mask(geom, [(a & b), c], backend=backend), (ma & mb) | mc)
    np.testing.assert_array_equal(_mask(geom, a ^ b, inside=False, backend=backend), ~(ma ^ mb))


def test_ellipse_and_box_annuli(geom, gref, backend):
    center = SkyCoord(359.8, 0.2, unit="deg", frame="galactic")
    kw = {"inner_width": 0.8 * u.deg, "outer_width": 2.0 * u.deg, "inner_height": 0.4 * u.deg,
          "outer_height": 1.2 * u.deg, "angle": 35 * u.deg}
    for annulus_cls, ref_fn in ((R.EllipseAnnulusSkyRegion, gref.ellipse),
                                (R.RectangleAnnulusSkyRegion, gref.box)):
        region = annulus_cls(center, **kw)
        inner, inner_near = ref_fn(center, kw["inner_width"], kw["inner_height"], kw["angle"])
        outer, outer_near = ref_fn(center, kw["outer_width"], kw["outer_height"], kw["angle"])
        got = _mask(geom, region, backend=backend)
        # regions: the annulus is the xor of the two shapes (inner boundary excluded)
        _assert_same(got, outer ^ inner, inner_near | outer_near, annulus_cls.__name__)
        assert not got[_pixel_of(geom, center)]
        assert got.sum() > 0
    ds9 = "galactic;ellipse(359.8,0.2,0.4,0.2,1.0,0.6,35)"
    region = gpumask.make_region(ds9)
    assert isinstance(region, R.EllipseAnnulusSkyRegion)
    np.testing.assert_array_equal(_mask(geom, ds9, backend=backend),
                                  _mask(geom, R.EllipseAnnulusSkyRegion(center, **kw), backend=backend))


def test_text_and_line_regions_are_ignored(geom, backend):
    circle = "galactic;circle(0,0,0.5)"
    want = _mask(geom, circle, backend=backend)
    text = 'galactic;text(0.3,0.2) # text={label}'
    line = "galactic;line(-1,-1,1,1)"
    np.testing.assert_array_equal(_mask(geom, f"{circle}\n{text}\n{line}", backend=backend), want)
    assert not _mask(geom, text, backend=backend).any()
    assert not _mask(geom, [text, line], backend=backend).any()
    t = R.TextSkyRegion(SkyCoord(0, 0, unit="deg", frame="galactic"), "hello")
    np.testing.assert_array_equal(_mask(geom, [circle, t], backend=backend), want)




@pytest.mark.parametrize("annotation", ["galactic;text(0.3,0.2) # text={label}", "galactic;line(-1,-1,1,1)"])
def test_annotations_do_not_change_ds9_exclusion(geom, annotation):
    """A lone '-circle' is everything but the circle, with or without a label
    (got: an all-False mask once the annotation is present)."""
    lone = _mask(geom, "galactic;-circle(0,0,0.5)")
    assert lone.any()
    np.testing.assert_array_equal(_mask(geom, annotation + "\ngalactic;-circle(0,0,0.5)"), lone)


def test_excluded_annotation_alone_is_like_no_region(geom):
    """An ignored '-text' leaves nothing: all False like an empty list (got: all True)."""
    assert not _mask(geom, "galactic;-text(0.3,0.2) # text={label}").any()


def test_crtf_file(tmp_path, geom, backend):
    regs = R.Regions([r for _, r in DS9_FRAMES[:4]])
    path = tmp_path / "regions.crtf"
    regs.write(path, format="crtf")
    want = _mask(geom, R.Regions.read(path, format="crtf"), backend=backend)
    assert want.any()
    np.testing.assert_array_equal(_mask(geom, path, backend=backend), want)
    np.testing.assert_array_equal(_mask(geom, str(path), backend=backend), want)


def test_inside_false_inverts(geom, backend):
    regs = [r for _, r in DS9_FRAMES]
    inside = _mask(geom, regs, backend=backend)
    assert inside.any() and not inside.all()
    np.testing.assert_array_equal(_mask(geom, regs, inside=False, backend=backend), ~inside)
    np.testing.assert_array_equal(_mask(geom, regs, inside=np.bool_(False), backend=backend), ~inside)


@pytest.mark.parametrize("empty", [[], (), R.Regions([]), None, ""])
def test_empty_regions(geom, empty, backend):
    m = geom.region_mask(empty, backend=backend)
    assert_on_backend(m.data, backend)
    assert not to_host(m.data).any()
    assert to_host(geom.region_mask(empty, inside=False, backend=backend).data).all()


def test_regions_outside_the_map(geom, backend):
    far = [
        "galactic;circle(180,0,2)",
        "icrs;box(10,60,3,1,20)",
        "galactic;ellipse(90,45,5,2,10)",
        "galactic;polygon(100,10,110,10,105,20)",
        "galactic;point(120,30)",
        "image;circle(-50,-50,5)",
        "galactic;annulus(0,0,10,20)",  # the map lies in its hole
    ]
    for text in far:
        assert not _mask(geom, text, backend=backend).any(), text
    assert not _mask(geom, far, backend=backend).any()
    assert _mask(geom, far, inside=False, backend=backend).all()
    assert not _mask(geom, SkyCoord([180, 200], [0, 10], unit="deg", frame="galactic"), backend=backend).any()


def test_energy_axes_repeat_the_image(backend):
    axis = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 3)
    geom = WcsGeom.create(skydir=CRAB, npix=(70, 50), binsz=0.04, frame="icrs", axes=[axis])
    regions = ["icrs;circle(83.633083, 22.0145, 0.3)", "galactic;box(185,-4,1.0,0.5, 45)"]
    m = geom.region_mask(regions, backend=backend)
    assert_on_backend(m.data, backend)
    assert m.geom == geom
    assert m.data.shape == geom.data_shape == (3, 50, 70)
    data = to_host(m.data)
    assert data.dtype == np.bool_
    image = to_host(geom.to_image().region_mask(regions, backend=backend).data)
    assert image.any()
    for plane in data:
        np.testing.assert_array_equal(plane, image)
    inv = to_host(geom.region_mask(regions, inside=False, backend=backend).data)
    np.testing.assert_array_equal(inv, ~data)


@pytest.mark.parametrize("method", ["sky", "pixel"])
def test_result_is_a_bool_map_on_the_backend(geom, backend, method):
    m = geom.region_mask("galactic;circle(0,0,0.5)", method=method, backend=backend)
    assert isinstance(m, gpumask.Map)
    assert m.is_mask and m.dtype == np.bool_
    assert_on_backend(m, backend)
    assert backend_of(m.data).name == backend.name
    assert m.geom == geom
    with gpumask.use_backend(backend.name):
        m2 = geom.region_mask("galactic;circle(0,0,0.5)", method=method)
    assert backend_of(m2.data).name == backend.name


# ============================================================================ 5. residency


RESIDENCY_REGIONS = [
    "galactic;circle(0,0,0.5)\ngalactic;-circle(0,0,0.2)",
    "icrs;box(266.6,-28.5,1.5,0.7,30)",
    "fk5;ellipse(266.2,-29.2,0.8,0.3,25)",
    "galactic;polygon(1,1,1.5,1.2,1.2,1.8)",
    "galactic;annulus(-1,0.5,0.2,0.45)",
    "image;circle(10.5,12.5,4)",
    "image;polygon(60,5,75,8,70,20)",
    "galactic;point(0.3,0.3)",
]


@pytest.mark.parametrize("method", ["sky", "pixel"])
@pytest.mark.parametrize("proj", ["CAR", "AIT"])
def test_no_device_to_host_transfers(backend, method, proj):
    geom = WcsGeom.create(skydir=(0.0, 0.0), npix=(80, 60), binsz=0.05, frame="galactic", proj=proj)
    allsky = WcsGeom.create(binsz=4.0, proj=proj, frame="galactic")
    a = R.CircleSkyRegion(SkyCoord(0.2, 0.1, unit="deg", frame="galactic"), 0.8 * u.deg)
    b = R.EllipseAnnulusSkyRegion(SkyCoord(-0.5, 0.1, unit="deg", frame="galactic"), 0.4 * u.deg,
                                  1.0 * u.deg, 0.2 * u.deg, 0.6 * u.deg, angle=20 * u.deg)
    inputs = RESIDENCY_REGIONS + [
        a | b,
        a & b,
        SkyCoord([0.1, 0.5], [0.2, -0.3], unit="deg", frame="galactic"),
        R.RectangleAnnulusSkyRegion(a.center, 0.4 * u.deg, 1.0 * u.deg, 0.2 * u.deg, 0.6 * u.deg),
    ]
    results = []
    with gpumask.count_transfers() as counter:
        for g in (geom, allsky):
            results.append(g.region_mask(inputs, method=method, backend=backend))
            results.append(g.region_mask(inputs[1], method=method, inside=False, backend=backend))
            results.append(g.region_mask([], method=method, backend=backend))
    assert counter.calls == 0, counter
    assert counter.device_calls == 0 and counter.device_bytes == 0, counter
    for m in results:
        assert_on_backend(m.data, backend)
    assert to_host(results[0].data).any()


# ============================================================================ 6. bad input


def test_unparsable_ds9_quotes_the_line(geom):
    text = "# Region file format: DS9\ngalactic;circle(0,0,1)\ngalactic;circle(a,b,c)\nicrs;circle(1,2,3)"
    with pytest.raises(ValueError, match=r"line 3: 'galactic;circle\(a,b,c\)'"):
        geom.region_mask(text)


@pytest.mark.parametrize(
    "text, match",
    [
        ("galactic;foo(1,2,3)", r"galactic;foo\(1,2,3\)"),
        ("galactic;circle(0,0,1)\ngalactic;foo(1,2,3)", r"line 2: 'galactic;foo\(1,2,3\)'"),
        ("circle(1,2,3)", r"circle\(1,2,3\).*(frame|coordinate)"),
        ("galactic;circle(0,0,-1)", r"galactic;circle\(0,0,-1\).*positive"),
        ("galactic;polygon(0,0,1,1)", r"at least 3 vertices, got 2"),
        ("galactic;ellipse(0,0,95,1,0)", r"width.*too large for method='sky'"),
        ("galactic;box(0,0,1,180,0)", r"height.*too large for method='sky'"),
        ("galactic;ellipse(0,0,0.2,0.1,1,0.5,0)\ngalactic;circle(0,0,", r"line 2"),
    ],
)
def test_bad_ds9_text(geom, text, match):
    with pytest.raises(ValueError, match=match):
        geom.region_mask(text)


def test_bad_ds9_file(tmp_path, geom):
    path = tmp_path / "bad.reg"
    path.write_text("galactic;circle(0,0,1)\ngalactic;circle(a,b,c)\n")
    with pytest.raises(ValueError, match=r"bad\.reg.*galactic;circle\(a,b,c\)"):
        geom.region_mask(path)
    with pytest.raises(ValueError, match=r"bad\.reg.*galactic;circle\(a,b,c\)"):
        geom.region_mask(str(path))


def _bypass(region, **values):
    """Set attributes behind regions' validating descriptors (as a bad object would be)."""
    for name, value in values.items():
        region.__dict__[name] = value
    return region


GC = SkyCoord(0.0, 0.0, unit="deg", frame="galactic")


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: _bypass(R.CircleSkyRegion(GC, 1 * u.deg), radius=-1 * u.deg),
         "radius must be a finite, positive"),
        (lambda: _bypass(R.CircleSkyRegion(GC, 1 * u.deg), radius=np.nan * u.deg), "radius must be a finite"),
        (lambda: _bypass(R.EllipseSkyRegion(GC, 1 * u.deg, 1 * u.deg), width=np.nan * u.deg), "width"),
        (lambda: _bypass(R.RectangleSkyRegion(GC, 1 * u.deg, 1 * u.deg), height=np.nan * u.deg), "height"),
        (lambda: _bypass(R.EllipseSkyRegion(GC, 1 * u.deg, 1 * u.deg), angle=np.nan * u.deg), "angle"),
        (lambda: _bypass(R.CircleAnnulusSkyRegion(GC, 1 * u.deg, 2 * u.deg), inner_radius=3 * u.deg),
         "inner_radius must be smaller"),
        (lambda: _bypass(R.CircleSkyRegion(GC, 1 * u.deg), center=SkyCoord(np.nan, 0, unit="deg")),
         "not finite"),
        (lambda: R.EllipseSkyRegion(GC, 180 * u.deg, 1 * u.deg), "too large for method='sky'"),
        (lambda: R.RectangleSkyRegion(GC, 1 * u.deg, 200 * u.deg), "too large for method='sky'"),
        (lambda: R.EllipseAnnulusSkyRegion(GC, 1 * u.deg, 190 * u.deg, 1 * u.deg, 2 * u.deg),
         "too large for method='sky'"),
        (lambda: R.PolygonSkyRegion(SkyCoord([0, 1], [0, 1], unit="deg", frame="galactic")),
         "at least 3 vertices"),
        (lambda: R.CompoundSkyRegion(R.CircleSkyRegion(GC, 1 * u.deg),
                                     _bypass(R.CircleSkyRegion(GC, 1 * u.deg), radius=np.nan * u.deg),
                                     np.logical_or), "second operand"),
    ],
)
def test_bad_region_objects(geom, make, match):
    with pytest.raises(ValueError, match=match):
        geom.region_mask(make())


def test_pixel_method_accepts_wide_ellipses(geom):
    """The 180 deg limit is specific to the gnomonic sky method."""
    region = R.EllipseSkyRegion(GC, 190 * u.deg, 1 * u.deg)
    assert _mask(geom, region, method="pixel").any()


@pytest.mark.parametrize("bad", [42, {"circle": 1}, 3.5, object(), np.zeros(3)])
def test_unsupported_objects(geom, bad):
    with pytest.raises(TypeError, match="regions must be"):
        geom.region_mask(bad)
    with pytest.raises(TypeError, match="regions must be"):
        geom.region_mask(["galactic;circle(0,0,1)", bad])


def test_missing_files(tmp_path, geom):
    missing = tmp_path / "nothere.reg"
    with pytest.raises(ValueError, match="neither ds9 region text.*nor an existing region file"):
        geom.region_mask(str(missing))
    with pytest.raises(FileNotFoundError, match="nothere.reg"):
        geom.region_mask(missing)


@pytest.mark.parametrize("method", ["Sky", "exact", "", None])
def test_unknown_method(geom, method):
    with pytest.raises(ValueError, match="method must be one of"):
        geom.region_mask("galactic;circle(0,0,1)", method=method)


@pytest.mark.parametrize("inside", [1, 0, "yes", None, np.array([True])])
def test_inside_must_be_bool(geom, inside):
    with pytest.raises(TypeError, match="inside must be True or False"):
        geom.region_mask("galactic;circle(0,0,1)", inside=inside)


# ---------------------------------------------------------------- review follow-ups


def test_exclusion_only_leaves_off_sky_pixels_out(backend):
    """With only '-shape' exclusions the implicit include region is the field on
    the sky: the corners of an all-sky AIT map are not 'inside'."""
    geom = WcsGeom.create(skydir=(0, 0), binsz=3, npix=(120, 60), frame="galactic", proj="AIT")
    mask = geom.region_mask("galactic;-circle(0,0,5)", backend=backend.name)
    lon, _ = geom.get_coord(backend="numpy")
    got = gpumask.to_host(mask.data)
    assert not got[~np.isfinite(lon)].any()
    assert got[np.isfinite(lon)].sum() > 0.9 * np.isfinite(lon).sum()


def test_file_path_with_parentheses(tmp_path):
    folder = tmp_path / "fields (v2)"
    folder.mkdir()
    path = folder / "a.reg"
    path.write_text("galactic\ncircle(0,0,0.5)\n")
    geom = WcsGeom.create(skydir=(0, 0), binsz=0.05, npix=(60, 60), frame="galactic")
    from_str = geom.region_mask(str(path), backend="numpy").to_numpy()
    from_path = geom.region_mask(path, backend="numpy").to_numpy()
    np.testing.assert_array_equal(from_str, from_path)
    assert from_str.sum() > 100


def test_long_text_that_is_neither_ds9_nor_a_file():
    geom = WcsGeom.create(skydir=(0, 0), binsz=0.05, npix=(20, 20), frame="galactic")
    with pytest.raises(ValueError, match="neither ds9 region text"):
        geom.region_mask("x" * 300)
