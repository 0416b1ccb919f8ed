"""Turn ``regions`` shapes into a packed parameter table for the rasteriser.

The rasteriser (:mod:`gpumask.masks._region_raster`, ``kernels/regions.cu``) knows a
handful of shape *kinds*, each a row of ``NPARAM`` float64 parameters.  This
module computes those rows on the host, vectorised over groups of alike regions,
for the two evaluation methods:

``method="sky"``
    Geometry on the sphere in the map's frame.  Pixel centres are unit vectors
    ``p``; a circle is a cap ``|p - c|^2 <= (2 sin(r/2))^2`` (chord length, exact
    at small and large radii); ellipses and boxes are tested in the gnomonic
    tangent plane at their centre, where great circles are straight lines (so box
    sides and polygon edges are great-circle arcs); polygons use the even-odd
    crossing rule in the gnomonic plane at their vertex centroid.
``method="pixel"``
    Bit-for-bit replica of ``region.to_pixel(wcs).contains(pixcoord)`` of regions
    0.11 as gammapy 2.1 calls it: the same astropy calls (vectorised on arrays
    built from the regions' stored values, which astropy evaluates element by
    element exactly as for scalars) and the same floating-point expressions.

Sky angles follow regions/ds9: ``angle`` turns the width axis counter-clockwise
from the longitude axis as the sky is displayed with north up and east left,
i.e. from west towards north.  Points are not area shapes; they become explicit
pixel lists here (see :func:`compile_points`).
"""

from __future__ import annotations

import dataclasses
import math

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord, UnitSphericalRepresentation
from astropy.time import Time
from astropy.wcs.utils import skycoord_to_pixel, wcs_to_celestial_frame

from ..sky.geom import frame_rotation_matrix

# Shape kinds; the same numbers are #defined in kernels/regions.cuh.
KIND_CAP = 1  # c[3], lo, hi: lo <= |p - c|^2 <= hi (circle: lo = -1)
KIND_SKY_ELLIPSE = 2  # c[3], e1[3], e2[3], 1/tan(a), 1/tan(b)
KIND_SKY_BOX = 3  # c[3], e1[3], e2[3], tan(w/2), tan(h/2)
KIND_SKY_POLYGON = 4  # c[3], e1[3], e2[3], first vertex, vertex count
KIND_PIX_CIRCLE = 11  # cx, cy, r: hypot(cx - x, cy - y) < r
KIND_PIX_ANNULUS = 12  # cx, cy, r_in, r_out: (d < r_in) != (d < r_out)
KIND_PIX_ELLIPSE = 13  # cx, cy, cos, sin, width, height (regions' expression, <= 1)
KIND_PIX_RECT = 14  # cx, cy, cos, sin, width, height (strict <)
KIND_PIX_POLYGON = 15  # first vertex, vertex count (regions' pnpoly)

SKY_KINDS = (KIND_CAP, KIND_SKY_ELLIPSE, KIND_SKY_BOX, KIND_SKY_POLYGON)
PIXEL_KINDS = (KIND_PIX_CIRCLE, KIND_PIX_ANNULUS, KIND_PIX_ELLIPSE, KIND_PIX_RECT, KIND_PIX_POLYGON)
NPARAM = 11

FLAG_EXCLUDE = 1  # ds9 "-shape": removed from the union of the others

_NORTH_STEP = 1.0e-3  # rad; finite step that finds the north direction in another frame
_J2000 = Time("J2000")
_MARGIN = 1.0e-9  # rad; slack on bounding caps (binning only, never the tests)


@dataclasses.dataclass
class ShapeTable:
    """Packed shapes: one row per region, plus polygon vertices.

    ``cap`` (n, 4) is the bounding cap (unit vector, radius in rad) of sky kinds
    and NaN for pixel kinds; ``bbox`` (n, 4) = (xmin, xmax, ymin, ymax) is the
    pixel bounding box of pixel kinds (NaN for sky kinds; +-inf for "everywhere").
    """

    kind: np.ndarray
    flags: np.ndarray
    params: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    cap: np.ndarray
    bbox: np.ndarray

    @classmethod
    def empty(cls):
        z = np.zeros(0)
        return cls(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros((0, NPARAM)), z, z,
                   np.zeros((0, 4)), np.zeros((0, 4)))

    def __len__(self):
        return len(self.kind)

    @property
    def has_sky(self) -> bool:
        return bool(np.isin(self.kind, SKY_KINDS).any())

    @classmethod
    def concatenate(cls, tables):
        tables = [t for t in tables if len(t) or len(t.vx)]
        if not tables:
            return cls.empty()
        offset = 0
        params = []
        for t in tables:
            p = t.params.copy()
            for kind, col in ((KIND_SKY_POLYGON, 9), (KIND_PIX_POLYGON, 0)):
                p[t.kind == kind, col] += offset
            params.append(p)
            offset += len(t.vx)
        return cls(
            np.concatenate([t.kind for t in tables]).astype(np.int32),
            np.concatenate([t.flags for t in tables]).astype(np.int32),
            np.concatenate(params),
            np.concatenate([t.vx for t in tables]),
            np.concatenate([t.vy for t in tables]),
            np.concatenate([t.cap for t in tables]),
            np.concatenate([t.bbox for t in tables]),
        )


def _table(kind, flags, params, cap=None, bbox=None, vx=None, vy=None):
    n = len(params)
    params = np.asarray(params, dtype=np.float64).reshape(n, -1)
    full = np.zeros((n, NPARAM))
    full[:, : params.shape[1]] = params
    nan4 = np.full((n, 4), np.nan)
    return ShapeTable(
        np.full(n, kind, np.int32),
        np.asarray(flags, np.int32).reshape(n),
        full,
        np.zeros(0) if vx is None else np.asarray(vx, float),
        np.zeros(0) if vy is None else np.asarray(vy, float),
        nan4 if cap is None else np.asarray(cap, float).reshape(n, 4),
        nan4.copy() if bbox is None else np.asarray(bbox, float).reshape(n, 4),
    )


# ----------------------------------------------------------------------------- groups


def frame_key(coord: SkyCoord):
    """Hashable key of a SkyCoord's frame (class, attribute values) and of its
    stored representation (class, units): coordinates with one key stack exactly."""
    frame = coord.frame
    names = frame.frame_attributes
    attrs = tuple((name, repr(getattr(frame, name))) for name in sorted(names)) if names else ()
    data = frame.data
    comps = tuple((getattr(data, name).unit, getattr(data, name).dtype) for name in data.components)
    return (type(frame), attrs, type(data), comps)


class NonFinitePosition(ValueError):
    """A NaN or infinite position; ``index`` is its place in the input list."""

    def __init__(self, index, coord):
        self.index = index
        self.coord = coord
        data = coord.frame.data
        parts = (getattr(data, name) for name in data.components)
        self.values = "(" + ", ".join(f"{q.value} {q.unit}" for q in parts) + ")"
        super().__init__(f"region position is not finite: {self.values}")


def stack_skycoords(coords):
    """One array SkyCoord from scalar SkyCoords of one :func:`frame_key`
    (same frame, representation, units and dtypes).

    Built from the stored representation values (not ``concatenate``, which goes
    through cartesian coordinates and changes the last bits), so astropy then
    computes every element exactly as it would for the scalar.
    """
    datas = [c.frame.data for c in coords]  # frame.data: no SkyCoord attribute lookup
    first = datas[0]
    # keep the stored dtype: for float32 positions (catalog columns) regions does
    # its north step in float32, and so must we
    values = {}
    for name in first.components:
        q = getattr(first, name)
        array = np.array([getattr(d, name).value for d in datas], dtype=q.dtype)
        if not np.all(np.isfinite(array)):
            bad = int(np.flatnonzero(~np.isfinite(array))[0])
            raise NonFinitePosition(bad, coords[bad])
        values[name] = u.Quantity(array, q.unit, copy=False)
    rep = type(first)(**values, copy=False)
    return SkyCoord(coords[0].frame.realize_frame(rep))


def quantity_array(values):
    """Quantity array of scalar Quantities that share one unit and dtype (values
    kept exactly)."""
    first = values[0]
    array = np.array([v.value for v in values], dtype=first.dtype)
    return u.Quantity(array, first.unit, copy=False)


# ----------------------------------------------------------------------------- sky method


def _simple_frame(frame):
    """'icrs', 'galactic' or 'fk5' for frames that are fixed rotations of each
    other (FK5 at equinox J2000 only), else None."""
    name = getattr(frame, "name", None)
    if name in ("icrs", "galactic"):
        return name
    if name == "fk5" and frame.equinox == _J2000:
        return name
    return None


def _rotation(coord: SkyCoord, frame):
    """Rotation matrix from ``coord``'s frame to ``frame`` when both are fixed
    rotations of each other (no astropy transformation per call), else None."""
    a, b = _simple_frame(coord.frame), _simple_frame(frame)
    if a is None or b is None:
        return None
    return frame_rotation_matrix(a, b)


def _lonlat_rad(coord: SkyCoord):
    sph = coord.represent_as(UnitSphericalRepresentation)
    return np.atleast_1d(sph.lon.to_value(u.rad)), np.atleast_1d(sph.lat.to_value(u.rad))


def unit_xyz(lon, lat):
    """Unit vectors (..., 3) of longitudes and latitudes in radians (NaN stays
    NaN); the one place both the shapes and the pixel centres get theirs."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    out = np.empty(np.broadcast_shapes(lon.shape, lat.shape) + (3,))
    clat = np.cos(lat)
    np.multiply(clat, np.cos(lon), out=out[..., 0])
    np.multiply(clat, np.sin(lon), out=out[..., 1])
    np.sin(lat, out=out[..., 2])
    return out


def unit_vectors(coord: SkyCoord, frame) -> np.ndarray:
    """(n, 3) unit vectors of ``coord`` (distances ignored) in ``frame``."""
    matrix = _rotation(coord, frame)
    if matrix is not None:
        return unit_xyz(*_lonlat_rad(coord)) @ matrix.T
    moved = coord.transform_to(frame).represent_as(UnitSphericalRepresentation)
    xyz = np.asarray(moved.to_cartesian().get_xyz().value, dtype=float).reshape(3, -1).T
    return xyz / np.linalg.norm(xyz, axis=1, keepdims=True)


def _normalise(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def tangent_basis(centers: SkyCoord, frame):
    """Centre vectors and (east, north) unit vectors of the centres' own frame,
    expressed in ``frame`` (n, 3 each)."""
    matrix = _rotation(centers, frame)
    if matrix is not None:
        lon, lat = _lonlat_rad(centers)
        sl, cl, sb, cb = np.sin(lon), np.cos(lon), np.sin(lat), np.cos(lat)
        east = np.stack([-sl, cl, np.zeros_like(sl)], axis=-1)
        north = np.stack([-sb * cl, -sb * sl, cb], axis=-1)
        return unit_xyz(lon, lat) @ matrix.T, east @ matrix.T, north @ matrix.T
    # general frames (FK4, ecliptic, ...): find the local north with a short step
    c = unit_vectors(centers, frame)
    ahead = centers.directional_offset_by(0.0 * u.rad, _NORTH_STEP * u.rad)
    q = unit_vectors(ahead, frame)
    north = _normalise(q - np.sum(q * c, axis=1, keepdims=True) * c)
    east = np.cross(north, c)
    return c, east, north


def _rotated_axes(east, north, angle_rad):
    """Width and height axis vectors for a ds9/regions sky angle."""
    cos_t = np.cos(angle_rad)[:, None]
    sin_t = np.sin(angle_rad)[:, None]
    e1 = -cos_t * east + sin_t * north
    e2 = sin_t * east + cos_t * north
    return e1, e2


def chord2(angle_rad):
    """Squared chord length of an angular distance."""
    return (2.0 * np.sin(np.minimum(angle_rad, math.pi) / 2.0)) ** 2


def sky_caps(centers, radius_out, radius_in, flags, frame) -> ShapeTable:
    c = unit_vectors(centers, frame)
    r_out = radius_out.to_value(u.rad)
    lo = np.full(len(c), -1.0) if radius_in is None else chord2(radius_in.to_value(u.rad))
    params = np.column_stack([c, lo, chord2(r_out)])
    cap = np.column_stack([c, np.minimum(r_out, math.pi) + _MARGIN])
    return _table(KIND_CAP, flags, params, cap=cap)


def sky_ellipses(centers, width, height, angle, flags, frame, box=False) -> ShapeTable:
    c, east, north = tangent_basis(centers, frame)
    e1, e2 = _rotated_axes(east, north, angle.to_value(u.rad))
    half_w = width.to_value(u.rad) / 2
    half_h = height.to_value(u.rad) / 2
    tw, th = np.tan(half_w), np.tan(half_h)
    if box:
        extra = np.column_stack([tw, th])
        radius = np.arctan(np.hypot(tw, th))
        kind = KIND_SKY_BOX
    else:
        extra = np.column_stack([1.0 / tw, 1.0 / th])
        radius = np.maximum(half_w, half_h)
        kind = KIND_SKY_ELLIPSE
    params = np.column_stack([c, e1, e2, extra])
    cap = np.column_stack([c, radius + _MARGIN])
    return _table(kind, flags, params, cap=cap)


def sky_polygon(vertices: SkyCoord, flag, frame, label) -> ShapeTable:
    v = unit_vectors(vertices, frame)
    total = v.sum(axis=0)
    norm = np.linalg.norm(total)
    if not np.isfinite(norm) or norm < 1e-9:
        raise ValueError(f"{label}: the polygon's vertices have no centre on the sphere "
                         "(they surround it); split it into smaller polygons")
    c = total / norm
    w = v @ c
    if np.any(w <= 1e-9):
        raise ValueError(f"{label}: a polygon must lie within a hemisphere for method='sky' "
                         "(its edges are great-circle arcs); split it into smaller polygons")
    helper = np.array([0.0, 0.0, 1.0]) if abs(c[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = _normalise(np.cross(helper, c))
    e2 = np.cross(c, e1)
    vx = (v @ e1) / w
    vy = (v @ e2) / w
    params = np.concatenate([c, e1, e2, [0.0, len(v)]])[None, :]
    radius = float(np.max(np.arccos(np.clip(w, -1.0, 1.0)))) + 1e-7
    cap = np.concatenate([c, [radius]])[None, :]
    return _table(KIND_SKY_POLYGON, [flag], params, cap=cap, vx=vx, vy=vy)


# ----------------------------------------------------------------------------- pixel method


def pixel_scale_angle(centers: SkyCoord, wcs):
    """regions 0.11 ``pixel_scale_angle_at_skycoord`` on an array of centres."""
    x, y = wcs.world_to_pixel(centers)
    offset = 1 * u.arcsec
    ahead = centers.directional_offset_by(0.0, offset)
    x_off, y_off = wcs.world_to_pixel(ahead)
    dx = x_off - x
    dy = y_off - y
    scale = offset.to(u.arcsec) / (np.hypot(dx, dy) * u.pixel)
    angle = (np.arctan2(dy, dx) * u.radian).to(u.deg)
    return np.asarray(x, float), np.asarray(y, float), scale, angle


def _pix(quantity, scale):
    return np.asarray((quantity / scale).to(u.pix).value, dtype=float)


def _finite_box(x0, x1, y0, y1):
    return np.column_stack([x0, x1, y0, y1])


def pixel_circles(cx, cy, r, flags) -> ShapeTable:
    bbox = _finite_box(cx - r - 1, cx + r + 1, cy - r - 1, cy + r + 1)
    return _table(KIND_PIX_CIRCLE, flags, np.column_stack([cx, cy, r]), bbox=bbox)


def pixel_annuli(cx, cy, r_in, r_out, flags) -> ShapeTable:
    r = np.maximum(r_in, r_out)
    bbox = _finite_box(cx - r - 1, cx + r + 1, cy - r - 1, cy + r + 1)
    return _table(KIND_PIX_ANNULUS, flags, np.column_stack([cx, cy, r_in, r_out]), bbox=bbox)


def pixel_ellipses(cx, cy, cos_a, sin_a, width, height, flags, rect=False) -> ShapeTable:
    # conservative extent: the half-diagonal bounds both shapes in every direction
    reach = 0.5 * np.hypot(width, height) + 1
    bbox = _finite_box(cx - reach, cx + reach, cy - reach, cy + reach)
    params = np.column_stack([cx, cy, cos_a, sin_a, width, height])
    return _table(KIND_PIX_RECT if rect else KIND_PIX_ELLIPSE, flags, params, bbox=bbox)


def pixel_polygon(vx, vy, flag) -> ShapeTable:
    vx = np.asarray(vx, dtype=float).ravel()
    vy = np.asarray(vy, dtype=float).ravel()
    if np.all(np.isfinite(vx)) and np.all(np.isfinite(vy)):
        bbox = [[vx.min() - 1, vx.max() + 1, vy.min() - 1, vy.max() + 1]]
    else:
        # regions' crossing test skips edges with NaN ends; what remains may be an
        # open chain whose "inside" is unbounded: evaluate it everywhere
        bbox = [[-np.inf, np.inf, -np.inf, np.inf]]
    params = [[0.0, len(vx)]]
    return _table(KIND_PIX_POLYGON, [flag], params, bbox=bbox, vx=vx, vy=vy)


def angle_cos_sin(angle):
    """``np.cos``/``np.sin`` of an angle Quantity exactly as regions' contains()."""
    return np.asarray(np.cos(angle).value, float), np.asarray(np.sin(angle).value, float)


# ----------------------------------------------------------------------------- points


def point_pixels(x0, y0, geom, method):
    """Pixels marked by point regions at pixel positions ``(x0, y0)``.

    ``method="pixel"``: gammapy 2.1's ``PointSpatialModel`` rule - every pixel
    with ``|x - x0| < 1`` and ``|y - y0| < 1`` (1-4 pixels) whose solid angle is
    defined.  ``method="sky"``: the one pixel containing the point.  Returns flat
    indices into the image (int64).
    """
    nx, ny = geom.npix
    x0 = np.asarray(x0, float).ravel()
    y0 = np.asarray(y0, float).ravel()
    ok = np.isfinite(x0) & np.isfinite(y0)
    x0, y0 = x0[ok], y0[ok]
    if method == "sky":
        ix = np.floor(x0 + 0.5)
        iy = np.floor(y0 + 0.5)
        cand_x, cand_y = ix[:, None], iy[:, None]
    else:
        fx, fy = np.floor(x0), np.floor(y0)
        cand_x = np.stack([fx, fx + 1, fx, fx + 1], axis=1)
        cand_y = np.stack([fy, fy, fy + 1, fy + 1], axis=1)
        near = (np.abs(cand_x - x0[:, None]) < 1) & (np.abs(cand_y - y0[:, None]) < 1)
        cand_x = np.where(near, cand_x, -1)
        cand_y = np.where(near, cand_y, -1)
    cand_x, cand_y = cand_x.ravel(), cand_y.ravel()
    inside = (cand_x >= 0) & (cand_x < nx) & (cand_y >= 0) & (cand_y < ny)
    cand_x, cand_y = cand_x[inside].astype(np.int64), cand_y[inside].astype(np.int64)
    if len(cand_x):
        keep = _pixels_on_sky(geom, cand_x, cand_y, corners=(method == "pixel"))
        cand_x, cand_y = cand_x[keep], cand_y[keep]
    return cand_y * nx + cand_x


def _pixels_on_sky(geom, ix, iy, corners):
    """Whether pixels lie on the sky (centre, and for gammapy parity the four
    corners that define its solid angle, have world coordinates)."""
    offsets = [(0.0, 0.0)]
    if corners:
        offsets += [(-0.5, -0.5), (0.5, -0.5), (-0.5, 0.5), (0.5, 0.5)]
    ok = np.ones(len(ix), bool)
    for dx, dy in offsets:
        lon, _ = geom._astropy_pix2world(ix + dx, iy + dy)
        ok &= np.isfinite(lon)
    return ok


def points_to_pixels(coords: SkyCoord, geom):
    """Pixel positions of SkyCoords as gammapy's ``position.to_pixel(wcs)``."""
    x, y = skycoord_to_pixel(coords, geom.wcs, origin=0, mode="all")
    return np.asarray(x, float), np.asarray(y, float)


def map_frame(geom):
    return wcs_to_celestial_frame(geom.wcs)
