"""Reflected regions: off regions placed around the pointing, avoiding excluded pixels.

:class:`ReflectedRegionsFinder` takes gammapy 2.1's arguments and defaults and
follows its search.  With ``angle_min`` the on region's angular size seen from
the pointing plus ``min_distance``, the candidate angles start at ``angle_min +
min_distance_input``.  A candidate is accepted when no excluded pixel centre lies
inside it, and the next angle is then ``angle_min`` further on; a rejected
candidate moves on by ``angle_increment``.  The search stops before ``2 pi -
angle_min - min_distance_input`` or at ``max_region_number`` regions.  Off
regions come in gammapy's order: by increasing angle, counter-clockwise as the
sky is displayed (increasing position angle around the pointing).

``method="sky"`` (default), exact on the sphere:

* a candidate is the on region turned rigidly about the pointing by a rotation
  of the sphere.  Its centre and orientation move together, so a box stays a box
  of the same size with its sides still great-circle arcs;
* "inside" means what :meth:`WcsGeom.region_mask` with ``method="sky"`` means
  (caps, gnomonic ellipses and boxes, polygons with great-circle edges).  The
  excluded pixel centres are taken from the mask on its own geometry: no local
  grid, no reprojection, no pixelisation of the on region;
* the angular size seen from the pointing is exact for circles and annuli.
  For ellipses, boxes and polygons it is measured on 4096 boundary points (far
  below 1e-6 rad for regions under a degree);
* all candidates of all (region, pointing) pairs of one call are tested
  together, one batch per search step (every pair advances one candidate per
  step, so a call makes at most about ``2 pi / angle_increment`` batches).  The
  mask comes to the host once per call (one counted :func:`~gpumask.to_host`)
  to list its excluded pixels by tile; on the CuPy backend their centres go back
  to the device once and the inside tests of every step run there, with one
  counted copy of the step's flags (polygons are tested on the host).

``method="pixel"`` is gammapy 2.1's algorithm (a TAN grid of ``binsz`` around the
pointing, the mask resampled to it, the on region rotated in pixel space), for
parity work: gammapy's regions.
"""

from __future__ import annotations

import math
import numbers
import warnings

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle, SkyCoord

from .._repr import html_table, text_block
from ..backend import to_host
from ..errors import GpumaskWarning
from ..masks import _region_compile as rc
from ..masks._region_hits import FlaggedPixels, shapes_hitting
from ..masks.regions import _compile, make_region
from ..sky.bridge import as_map
from ..sky.geom import WcsGeom

__all__ = ["ReflectedRegionsFinder"]

FULL_CIRCLE = 2.0 * math.pi
_METHODS = ("sky", "pixel")
_SHAPES = ("CircleSkyRegion", "CircleAnnulusSkyRegion", "EllipseSkyRegion", "RectangleSkyRegion",
           "PolygonSkyRegion")
_BOUNDARY_POINTS = 4096


def _angle(value, name, *, positive=False):
    try:
        angle = Angle(value)
    except (TypeError, ValueError, u.UnitsError):
        raise ValueError(f"{name} must be an angle (e.g. '0.1 rad' or '5 deg'), got {value!r}") from None
    if angle.ndim or not np.isfinite(angle.value):
        raise ValueError(f"{name} must be one finite angle, got {value!r}")
    if positive and angle.to_value(u.rad) <= 0:
        raise ValueError(f"{name} is too small: it must be positive, got {value!r}")
    if not positive and angle.to_value(u.rad) < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")
    return angle


class ReflectedRegionsFinder:
    """Find reflected (off) regions around a pointing (gammapy's ReflectedRegionsFinder).

    Parameters
    ----------
    angle_increment : str or `~astropy.coordinates.Angle`, optional
        Rotation applied when a candidate falls on an excluded pixel.  Default '0.1 rad'.
    min_distance : str or `~astropy.coordinates.Angle`, optional
        Minimum rotation angle between two consecutive off regions, beyond the
        region's own angular size.  Default '0 rad'.
    min_distance_input : str or `~astropy.coordinates.Angle`, optional
        Minimum rotation angle between the on region and the first off region,
        beyond its angular size.  Default '0.1 rad'.
    max_region_number : int, optional
        Largest number of off regions.  Default 10000.
    binsz : str or `~astropy.coordinates.Angle`, optional
        Pixel size of the local TAN grid of ``method="pixel"``; also the grid of
        the WCS returned by :meth:`run`.  Default '0.01 deg'.
    method : {"sky", "pixel"}, optional
        "sky" (default): exact on the sphere.  "pixel": gammapy 2.1's algorithm.

    Examples
    --------
    >>> from astropy.coordinates import SkyCoord
    >>> from regions import CircleSkyRegion
    >>> import astropy.units as u
    >>> import gpumask
    >>> pointing = SkyCoord(83.2, 22.7, unit="deg", frame="icrs")
    >>> on_region = CircleSkyRegion(SkyCoord(80.2, 23.5, unit="deg"), 0.4 * u.deg)
    >>> finder = gpumask.ReflectedRegionsFinder(min_distance_input="1 rad")
    >>> regions, wcs = finder.run(region=on_region, center=pointing)
    >>> len(regions)
    14
    """

    def __init__(self, angle_increment="0.1 rad", min_distance="0 rad", min_distance_input="0.1 rad",
                 max_region_number=10000, binsz="0.01 deg", method="sky"):
        self.angle_increment = _angle(angle_increment, "angle_increment", positive=True)
        self.min_distance = _angle(min_distance, "min_distance")
        self.min_distance_input = _angle(min_distance_input, "min_distance_input")
        if (isinstance(max_region_number, bool) or not isinstance(max_region_number, numbers.Integral)
                or max_region_number < 1):
            raise ValueError(f"max_region_number must be an integer >= 1, got {max_region_number!r}")
        self.max_region_number = int(max_region_number)
        self.binsz = _angle(binsz, "binsz", positive=True)
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
        self.method = method

    # ------------------------------------------------------------------ reprs
    def _params(self):
        return [("method", self.method), ("angle_increment", f"{self.angle_increment:g}"),
                ("min_distance", f"{self.min_distance:g}"),
                ("min_distance_input", f"{self.min_distance_input:g}"),
                ("max_region_number", str(self.max_region_number)), ("binsz", f"{self.binsz:g}")]

    def __repr__(self):
        return text_block(type(self).__name__, self._params())

    def _repr_html_(self):
        return html_table(f"gpumask {type(self).__name__}", self._params())

    # ------------------------------------------------------------------ public
    def run(self, region, center, exclusion_mask=None):
        """Off regions of one on region around one pointing.

        Parameters
        ----------
        region : `~regions.SkyRegion` or str
            The on region: a circle, annulus, ellipse, rectangle or polygon sky
            region (a ds9 string is parsed).
        center : `~astropy.coordinates.SkyCoord`
            The rotation centre, usually the pointing position.
        exclusion_mask : `~gpumask.Map`, optional
            Boolean mask, True = usable (gammapy's convention), on any geometry;
            a gammapy ``WcsNDMap`` is accepted.  Candidates holding the centre
            of an excluded pixel are rejected.  Default: nothing excluded.

        Returns
        -------
        regions : list of `~regions.SkyRegion`
            The off regions, in the on region's frame, in gammapy's order.
        wcs : `~astropy.wcs.WCS`
            The local TAN grid gammapy would use (for plotting).

        Examples
        --------
        >>> import gpumask
        >>> from astropy.coordinates import SkyCoord
        >>> finder = gpumask.ReflectedRegionsFinder()
        >>> on = "icrs;circle(83.63, 22.51, 0.11)"
        >>> regions, wcs = finder.run(on, SkyCoord(83.63, 22.01, unit="deg"))
        >>> len(regions)
        12
        """
        region = self._region(region)
        center = self._center(center, 1)
        if self.method == "pixel":
            from ._reflected_pixel import find_reflected_pixel  # noqa: PLC0415 - astropy/regions heavy path

            # the mask is cut to the local grid on its backend, then copied once
            return find_reflected_pixel(region, center[0], exclusion_mask, angle_increment=self.angle_increment,
                                        min_distance=self.min_distance,
                                        min_distance_input=self.min_distance_input,
                                        max_region_number=self.max_region_number, binsz=self.binsz)
        (regions,) = self._run_sky([region], center, exclusion_mask)
        return regions, _reference_geom(region, center[0], self.binsz).wcs

    def run_many(self, regions, centers, exclusion_mask=None):
        """Off regions of many (on region, pointing) pairs in one call.

        Parameters
        ----------
        regions : `~regions.SkyRegion`, str or list of them
            One on region for all pairs, or one per pair.
        centers : `~astropy.coordinates.SkyCoord`
            One pointing for all pairs, or one per pair (an array).
        exclusion_mask : `~gpumask.Map`, optional
            As in :meth:`run`; copied to the host once for the whole call.

        Returns
        -------
        list of list of `~regions.SkyRegion`
            The off regions of each pair, in gammapy's order.

        Examples
        --------
        >>> import gpumask
        >>> from astropy.coordinates import SkyCoord
        >>> finder = gpumask.ReflectedRegionsFinder()
        >>> pointings = SkyCoord([83.63, 83.63], [22.01, 23.01], unit="deg")
        >>> offs = finder.run_many("icrs;circle(83.63, 22.51, 0.11)", pointings)
        >>> [len(r) for r in offs]
        [12, 12]
        """
        if isinstance(regions, (list, tuple)):
            regions = [self._region(r) for r in regions]
        else:
            regions = [self._region(regions)]
        n = len(regions)
        centers = self._center(centers, n)
        if n == 1 and len(centers) > 1:
            regions = regions * len(centers)
        if len(regions) != len(centers):
            raise ValueError(f"got {len(regions)} regions and {len(centers)} centers; give one of "
                             "either, or as many of both")
        if self.method == "pixel":
            from ._reflected_pixel import find_reflected_pixel  # noqa: PLC0415

            mask = None if exclusion_mask is None else _host_mask(exclusion_mask)
            return [find_reflected_pixel(r, c, mask, angle_increment=self.angle_increment,
                                         min_distance=self.min_distance,
                                         min_distance_input=self.min_distance_input,
                                         max_region_number=self.max_region_number, binsz=self.binsz)[0]
                    for r, c in zip(regions, centers)]
        return self._run_sky(regions, centers, exclusion_mask)

    # ------------------------------------------------------------------ inputs
    @staticmethod
    def _region(region):
        if isinstance(region, str):
            region = make_region(region)
        name = type(region).__name__
        if name == "PointSkyRegion":
            raise TypeError("ReflectedRegionsFinder does not work with PointSkyRegion (gammapy's rule); "
                            "give the on region its extent, e.g. a CircleSkyRegion of the RAD_MAX radius")
        if name not in _SHAPES:
            raise TypeError(f"the on region must be one of {', '.join(_SHAPES)} (or a ds9 string of one), "
                            f"got {type(region).__module__}.{name}")
        return region

    @staticmethod
    def _center(center, n):
        if not isinstance(center, SkyCoord):
            raise TypeError(f"center must be an astropy SkyCoord (the pointing), got {type(center).__name__}")
        center = center.reshape(-1) if center.ndim else center.reshape((1,))
        if not np.all(np.isfinite(center.spherical.lon.deg) & np.isfinite(center.spherical.lat.deg)):
            raise ValueError(f"center must be finite, got {center}")
        return center

    # ------------------------------------------------------------------ sky method
    def _run_sky(self, regions, centers, exclusion_mask):
        pixels = None
        if exclusion_mask is not None:
            mask = as_map(exclusion_mask, "exclusion_mask")
            if not mask.is_mask:
                raise ValueError(f"exclusion_mask must be boolean (True = usable), got dtype {mask.data.dtype}")
            geom = mask.geom.to_image()
            usable = to_host(mask.data)
            if usable.ndim > 2:
                if int(np.prod(usable.shape[:-2])) != 1:
                    raise ValueError("exclusion_mask must be an image (or one non-spatial bin), got shape "
                                     f"{usable.shape}")
                usable = usable.reshape(usable.shape[-2:])
            pixels = FlaggedPixels(geom, ~usable, backend=mask.backend)
            frame = rc.map_frame(geom)
        else:
            geom = WcsGeom.create(skydir=(0.0, 0.0), npix=1, binsz=1.0, frame="icrs")
            frame = rc.map_frame(geom)
        n = len(regions)
        tables = [_compiled(r, geom) for r in regions]
        p = rc.unit_vectors(centers, frame)
        size = np.array([_angular_size(t, p[k]) for k, t in enumerate(tables)])
        inside = np.isnan(size)
        if inside.any():
            warnings.warn(f"{int(inside.sum())} of {n} pointings lie inside their on region (first: pair "
                          f"{int(np.flatnonzero(inside)[0])}); no off regions for those", GpumaskWarning,
                          stacklevel=3)
        angle_min = np.where(inside, np.nan, size + self.min_distance.to_value(u.rad))
        angle_max = FULL_CIRCLE - angle_min - self.min_distance_input.to_value(u.rad)
        phi = angle_min + self.min_distance_input.to_value(u.rad)
        increment = self.angle_increment.to_value(u.rad)
        accepted = [[] for _ in range(n)]
        active = ~inside & (phi < angle_max)
        base = rc.ShapeTable.concatenate(tables)  # row k is pair k's on region
        while active.any():
            idx = np.flatnonzero(active)
            hit = np.zeros(len(idx), bool) if pixels is None else shapes_hitting(
                pixels, _rotated_rows(base, idx, p[idx], phi[idx]))
            for j, k in enumerate(idx):
                if hit[j]:
                    phi[k] += increment
                    continue
                accepted[k].append(float(phi[k]))
                if len(accepted[k]) >= self.max_region_number:
                    active[k] = False
                phi[k] += angle_min[k]
            active &= phi < angle_max
        return [_rotated_regions(regions[k], centers[k], accepted[k]) for k in range(n)]


# ----------------------------------------------------------------------------- geometry


def _host_mask(exclusion_mask):
    """The mask as a gpumask Map on the host (one counted copy from a device)."""
    mask = as_map(exclusion_mask, "exclusion_mask")
    if not mask.is_mask:
        raise ValueError(f"exclusion_mask must be boolean (True = usable), got dtype {mask.data.dtype}")
    return mask.to_backend("numpy")


def _region_center(region):
    """The region's centre (for polygons: the normalised mean of its vertices)."""
    if hasattr(region, "center"):
        return region.center
    frame = region.vertices.frame.replicate_without_data()
    v = rc.unit_vectors(region.vertices, frame).sum(axis=0)
    v /= np.linalg.norm(v)
    return SkyCoord(math.atan2(v[1], v[0]) * u.rad, math.asin(v[2]) * u.rad, frame=frame)


def _reference_geom(region, center, binsz):
    """gammapy's local TAN grid: 4 times the on-region offset plus 0.3 deg wide."""
    on = _region_center(region)
    width = 4 * on.separation(center) + Angle("0.3 deg")
    return WcsGeom.create(skydir=center, binsz=binsz, width=width, frame=on.frame.name, proj="TAN")


def _compiled(region, geom):
    """The one-row sky ShapeTable of ``region`` in ``geom``'s frame."""
    table, pidx, _ = _compile([(region, 0)], geom, "sky")
    if len(table) != 1 or len(pidx):
        raise TypeError(f"cannot reflect {type(region).__name__}: it is not one area shape")
    return table


def _turns(axes, phis):
    """Rotation matrices (n, 3, 3) that move points by ``phis`` in position angle
    around the unit vectors ``axes`` (counter-clockwise as the sky is displayed: a
    right-hand turn by ``-phi``, Rodrigues' formula)."""
    axes = np.broadcast_to(np.asarray(axes, dtype=float), (len(phis), 3))
    x, y, z = axes[:, 0], axes[:, 1], axes[:, 2]
    zero = np.zeros_like(x)
    k = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], 1)
    c, s = np.cos(-phis)[:, None, None], np.sin(-phis)[:, None, None]
    return c * np.eye(3) + s * k + (1.0 - c) * axes[:, :, None] * axes[:, None, :]


def _rotated_rows(base, idx, axes, phis):
    """Rows ``idx`` of the shape table ``base``, each turned by its ``phis`` about its
    ``axes``: centres and tangent axes rotate, sizes and polygon vertices (given in
    the tangent plane) stay."""
    turns = _turns(axes, phis)
    params = base.params[idx].copy()
    params[:, 0:3] = np.einsum("nij,nj->ni", turns, params[:, 0:3])  # centre
    axes_rows = base.kind[idx] != rc.KIND_CAP  # caps hold (lo, hi) where the others hold e1, e2
    for col in (3, 6):
        params[axes_rows, col:col + 3] = np.einsum("nij,nj->ni", turns[axes_rows],
                                                   params[axes_rows, col:col + 3])
    cap = base.cap[idx].copy()
    cap[:, 0:3] = np.einsum("nij,nj->ni", turns, cap[:, 0:3])
    return rc.ShapeTable(base.kind[idx], base.flags[idx], params, base.vx, base.vy, cap, base.bbox[idx])


def _position_angles(points, axis):
    """Position angles (rad, east of north) of unit vectors ``points`` seen from ``axis``."""
    north = np.array([0.0, 0.0, 1.0])
    ref = north - axis[2] * axis
    if np.linalg.norm(ref) < 1e-12:  # pointing at a pole: any fixed reference works
        ref = np.array([1.0, 0.0, 0.0]) - axis[0] * axis
    ref /= np.linalg.norm(ref)
    east = np.cross(axis, ref)
    return np.arctan2(points @ east, points @ ref)


def _boundary(table):
    """Unit vectors on the boundary of a one-row sky shape."""
    kind = int(table.kind[0])
    prm = table.params[0]
    c, e1, e2 = prm[0:3], prm[3:6], prm[6:9]
    t = np.linspace(0.0, 2 * np.pi, _BOUNDARY_POINTS, endpoint=False)
    if kind == rc.KIND_SKY_ELLIPSE:
        a, b = np.cos(t) / prm[9], np.sin(t) / prm[10]
    elif kind == rc.KIND_SKY_BOX:
        tw, th = prm[9], prm[10]
        s = np.linspace(-1.0, 1.0, _BOUNDARY_POINTS // 4)
        a = np.concatenate([s * tw, np.full_like(s, tw), -s * tw, np.full_like(s, -tw)])
        b = np.concatenate([np.full_like(s, -th), s * th, np.full_like(s, th), -s * th])
    else:  # polygon: straight edges in the gnomonic plane are great-circle arcs
        first, count = int(prm[9]), int(prm[10])
        vx, vy = table.vx[first:first + count], table.vy[first:first + count]
        per = max(8, _BOUNDARY_POINTS // count)
        s = np.linspace(0.0, 1.0, per, endpoint=False)[None, :]
        a = (vx[:, None] + s * (np.roll(vx, -1)[:, None] - vx[:, None])).ravel()
        b = (vy[:, None] + s * (np.roll(vy, -1)[:, None] - vy[:, None])).ravel()
    v = c[None, :] + a[:, None] * e1[None, :] + b[:, None] * e2[None, :]
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _contains(table, point):
    """Whether the one-row shape contains the unit vector ``point``."""
    from ..masks._region_raster import _eval_kind, _pnpoly  # noqa: PLC0415

    kind = int(table.kind[0])
    pix = {"px": np.array([[point[0]]]), "py": np.array([[point[1]]]), "pz": np.array([[point[2]]])}
    if kind == rc.KIND_SKY_POLYGON:
        prm = table.params[0]
        w = point @ prm[0:3]
        if w <= 0:
            return False
        first, count = int(prm[9]), int(prm[10])
        return bool(_pnpoly(np.array([point @ prm[3:6] / w]), np.array([point @ prm[6:9] / w]),
                            table.vx[first:first + count], table.vy[first:first + count])[0])
    p = [table.params[:, k][:, None] for k in range(table.params.shape[1])]
    return bool(_eval_kind(kind, p, table, np.array([0]), pix)[0, 0])


def _angular_size(table, axis):
    """The range of position angles the shape spans seen from ``axis`` (rad);
    NaN when ``axis`` lies inside the shape (or within its bounding cap for an
    annulus, where the range is the whole circle)."""
    kind = int(table.kind[0])
    c = table.params[0, 0:3]
    dist = math.acos(min(1.0, max(-1.0, float(c @ axis))))
    if kind == rc.KIND_CAP:
        radius = 2.0 * math.asin(min(1.0, math.sqrt(table.params[0, 4])) / 2.0)
        if dist <= radius:
            return math.nan
        return 2.0 * math.asin(min(1.0, math.sin(radius) / math.sin(dist)))
    if _contains(table, axis):
        return math.nan
    psi = _position_angles(_boundary(table), axis)
    rel = (psi - _position_angles(c[None, :], axis)[0] + np.pi) % (2 * np.pi) - np.pi
    return float(rel.max() - rel.min())


def _to_coord(v, frame, template):
    """SkyCoord of unit vectors ``v`` (n, 3) in ``frame``, in ``template``'s units."""
    unit = template.spherical.lon.unit
    lon = (np.arctan2(v[:, 1], v[:, 0]) * u.rad).to(unit)
    lat = (np.arcsin(np.clip(v[:, 2], -1.0, 1.0)) * u.rad).to(unit)
    return SkyCoord(lon, lat, frame=frame)


def _rotated_regions(region, center, phis):
    """The regions objects of ``region`` turned by each of ``phis`` about
    ``center``, in the region's own frame (centre and orientation moved together)."""
    phis = np.asarray(phis, dtype=float)
    if not len(phis):
        return []
    frame = _region_center(region).frame.replicate_without_data()
    axis = rc.unit_vectors(center, frame)[0]
    turns = _turns(axis, phis)
    cls = type(region)
    common = {"meta": region.meta, "visual": region.visual}
    if cls.__name__ == "PolygonSkyRegion":
        v = rc.unit_vectors(region.vertices, frame)
        moved = np.einsum("nij,kj->nki", turns, v)
        return [cls(vertices=_to_coord(m, frame, region.vertices), **_copied(common)) for m in moved]
    c = rc.unit_vectors(region.center, frame)[0]
    centers = _to_coord(turns @ c, frame, region.center)
    names = [n for n in ("radius", "inner_radius", "outer_radius", "width", "height") if hasattr(region, n)]
    sizes = {n: getattr(region, n) for n in names}
    angles = None
    if cls.__name__ in ("EllipseSkyRegion", "RectangleSkyRegion"):
        _, east, north = rc.tangent_basis(region.center.reshape((1,)), frame)
        e1, _ = rc._rotated_axes(east, north, np.atleast_1d(region.angle.to_value(u.rad)))
        e1 = turns @ e1[0]
        _, east2, north2 = rc.tangent_basis(centers, frame)
        rad = np.arctan2(np.sum(e1 * north2, axis=1), -np.sum(e1 * east2, axis=1))
        angles = Angle(rad, u.rad).wrap_at(360 * u.deg).to(region.angle.unit)
    out = []
    for i in range(len(phis)):
        kwargs = dict(sizes)
        if angles is not None:
            kwargs["angle"] = angles[i]
        out.append(cls(center=centers[i], **kwargs, **_copied(common)))
    return out


def _copied(common):
    return {"meta": common["meta"].copy(), "visual": common["visual"].copy()}
