"""Exclusion masks from source catalogs: one region per source, one device pass.

gammapy has no catalog-to-exclusion helper; its tutorial draws a fixed 0.3 deg
circle around every source.  Here each source gets a region from its morphology
(see :func:`source_shapes` for the rules), the sources whose region touches the map
are kept, and all of them are rasterised together with any user regions by the
region engine of :mod:`gpumask.regions` (exact spherical geometry, tile-binned, one
kernel launch on the GPU).

Radius rules (``radius=None``): with ``a``, ``b`` the source's semi-axes (a circle:
``a = b``) and ``s`` the scale of its morphology type,

* ``A = sqrt((s a)^2 + psf^2)`` and likewise ``B``; then ``max(A, min_radius)``;
* point and unknown sources: ``a = b = 0``, so the region is a ``psf`` circle;
  unresolved sources with a size upper limit (HGPS ``Size_UL``, 1LHAASO
  ``r39_ul``): ``a = b`` = the limit, ``s = 1``;
* disk: ``a`` = radius, ``s = 1``; shell: ``a`` = outer radius, ``s = 1``;
* Gaussian: ``a`` = sigma, ``s = 3`` (98.9 % of a 2-D Gaussian's flux lies
  within 3 sigma);
* ellipse (Fermi extended templates, elongated disks): semi-axes and position
  angle from the catalog, ``s = 1``; elongated Gaussians (the catalog's
  ``profile`` column) keep their ellipse with ``s = 3``;
* ``psf`` defaults to 0.1 deg (Fermi above 10 GeV and IACTs), ``min_radius`` to 0.

``radius=`` (a constant or one value per source) replaces the rules: circles of
that radius, as the tutorial's 0.3 deg.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord

from . import _region_compile as rc
from ._utils import parse_angle
from .errors import GpumaskWarning

__all__ = [
    "DEFAULT_PSF",
    "DEFAULT_SCALE",
    "SourceShapes",
    "source_shapes",
    "to_regions",
    "touching",
    "exclusion_mask",
]

DEFAULT_PSF = 0.1  # deg
DEFAULT_SCALE = {"point": 0.0, "unknown": 0.0, "disk": 1.0, "shell": 1.0, "ellipse": 1.0, "gauss": 3.0}
_TYPES = tuple(DEFAULT_SCALE)


@dataclasses.dataclass(frozen=True)
class SourceShapes:
    """One circle or ellipse per source: semi-axes and ``angle`` in deg, ``angle`` in
    the regions convention (width axis from the longitude axis, counter-clockwise)."""

    names: np.ndarray
    positions: SkyCoord
    semi_major: np.ndarray
    semi_minor: np.ndarray
    angle: np.ndarray

    def __len__(self):
        return len(self.names)

    @property
    def is_circle(self) -> np.ndarray:
        return self.semi_major == self.semi_minor

    def select(self, idx) -> "SourceShapes":
        return SourceShapes(self.names[idx], self.positions[idx], self.semi_major[idx],
                            self.semi_minor[idx], self.angle[idx])


def _scales(scale):
    out = dict(DEFAULT_SCALE)
    if scale is None:
        return out
    if isinstance(scale, dict):
        bad = [k for k in scale if k not in _TYPES]
        if bad:
            raise ValueError(f"scale keys {bad} are not morphology types; use {list(_TYPES)}")
        values = scale.items()
    else:
        values = [(k, scale) for k in ("disk", "shell", "ellipse", "gauss")]
    for key, value in values:
        if isinstance(value, (bool, np.bool_)):
            raise ValueError(f"scale for {key!r} must be a number, got {value!r}")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"scale for {key!r} must be a number, got {value!r}") from None
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"scale for {key!r} must be finite and not negative, got {value!r}")
        out[key] = v
    return out


def _column(morph, name, n):
    """Column ``name`` in deg as float (NaN where absent or masked)."""
    if name not in morph.colnames:
        return np.full(n, np.nan)
    col = morph[name]
    values = np.ma.filled(np.ma.asarray(col, dtype=float), np.nan)
    unit = getattr(col, "unit", None)
    return values if unit is None else u.Quantity(values, unit).to_value(u.deg)


def source_shapes(catalog, radius=None, psf=None, scale=None, min_radius=None) -> SourceShapes:
    """The region of every source of ``catalog`` (rules in the module docstring).

    Parameters
    ----------
    catalog : SourceCatalog
    radius : angle or array of angles, optional
        Circles of this radius (one value, or one per source) instead of the rules.
    psf : angle, optional
        Added in quadrature to every semi-axis (default 0.1 deg).
    scale : float or dict, optional
        Multiplier of the source size: one number for every extended type, or
        ``{"gauss": 2.5, ...}`` per type (defaults in :data:`DEFAULT_SCALE`).
    min_radius : angle, optional
        Lower bound of every semi-axis (default 0).
    """
    n = len(catalog)
    names = np.asarray(catalog.names)
    positions = catalog.positions
    if radius is not None:
        if psf is not None or scale is not None:
            raise ValueError("radius= gives every source a fixed circle; it cannot be combined with psf= or scale=")
        r = _radius_values(radius, n)
        if min_radius is not None:
            r = np.maximum(r, parse_angle(min_radius, "min_radius"))
        return SourceShapes(names, positions, r, r.copy(), np.zeros(n))

    psf_deg = DEFAULT_PSF if psf is None else parse_angle(psf, "psf")
    floor = 0.0 if min_radius is None else parse_angle(min_radius, "min_radius")
    scales = _scales(scale)
    morph = catalog.morphology
    kind = np.asarray(morph["type"]).astype(str)
    if "profile" in morph.colnames:
        # an ellipse scales as its radial profile: elongated Gaussians by the
        # Gaussian scale, elongated disks and templates by 1
        profile = np.asarray(morph["profile"]).astype(str)
        kind = np.where((kind == "ellipse") & np.isin(profile, ("gauss", "disk", "shell")), profile, kind)
    unknown_types = sorted(set(kind) - set(_TYPES))
    if unknown_types:
        raise ValueError(f"unknown morphology types {unknown_types}; expected {list(_TYPES)}")
    size = _column(morph, "size", n)
    a = _column(morph, "semi_major", n)
    b = _column(morph, "semi_minor", n)
    pa = _column(morph, "position_angle", n)
    a = np.where(np.isfinite(a), a, size)
    b = np.where(np.isfinite(b), b, a)
    pointlike = np.isin(kind, ("point", "unknown"))
    # an unresolved source with a size upper limit (HGPS Size_UL, 1LHAASO r39_ul)
    # is drawn at that size, scale 1: the conservative reading of a limit
    size_ul = _column(morph, "size_ul", n)
    bounded = pointlike & np.isfinite(size_ul) & (size_ul > 0)
    missing = ~pointlike & ~(np.isfinite(a) & np.isfinite(b))
    if missing.any():
        warnings.warn(
            f"{int(missing.sum())} extended sources of {catalog.name!r} have no size "
            f"({', '.join(names[missing][:5])}{', ...' if missing.sum() > 5 else ''}); "
            "their regions are psf circles",
            GpumaskWarning,
            stacklevel=2,
        )
    zero = pointlike | missing
    a = np.where(zero, 0.0, a)
    b = np.where(zero, 0.0, b)
    a = np.where(bounded, size_ul, a)
    b = np.where(bounded, size_ul, b)
    s = np.array([scales[k] for k in kind]) if n else np.zeros(0)
    s = np.where(bounded, 1.0, s)
    major = np.maximum(np.hypot(s * a, psf_deg), floor)
    minor = np.maximum(np.hypot(s * b, psf_deg), floor)
    elongated = (major != minor) & np.isfinite(pa)
    angle = np.where(elongated, pa + 90.0, 0.0)  # PA from north through east -> regions angle
    # an ellipse without a position angle cannot be oriented: use its major axis
    minor = np.where((major != minor) & ~np.isfinite(pa), major, minor)
    if np.any(major <= 0):
        warnings.warn(
            f"{int(np.sum(major <= 0))} sources get a zero radius (point-like with psf=0) and "
            "cover no pixel; give psf= or min_radius=",
            GpumaskWarning,
            stacklevel=2,
        )
    return SourceShapes(names, positions, major, minor, angle)


def _radius_values(radius, n):
    if isinstance(radius, str) or np.ndim(radius) == 0:
        return np.full(n, parse_angle(radius, "radius"))
    try:
        values = np.asarray(u.Quantity(radius, u.deg).to_value(u.deg), float)
    except (u.UnitsError, TypeError, ValueError) as exc:
        raise ValueError(f"radius must be an angle or one angle per source, got {radius!r}") from exc
    if values.shape != (n,):
        raise ValueError(f"radius has {values.size} values for {n} sources")
    if not np.all(np.isfinite(values) & (values >= 0)):
        raise ValueError("radius values must be finite and not negative")
    return values


def to_regions(catalog, radius=None, psf=None, scale=None, min_radius=None):
    """``regions.Regions`` with one CircleSkyRegion or EllipseSkyRegion per source
    (its name as the ds9 text label); arguments as :func:`source_shapes`."""
    return _regions_of(source_shapes(catalog, radius=radius, psf=psf, scale=scale, min_radius=min_radius))


def _regions_of(shapes: SourceShapes):
    from regions import CircleSkyRegion, EllipseSkyRegion, Regions  # noqa: PLC0415

    out = []
    for i in range(len(shapes)):
        meta = {"text": str(shapes.names[i])}
        center = shapes.positions[i]
        if shapes.is_circle[i]:
            out.append(CircleSkyRegion(center, shapes.semi_major[i] * u.deg, meta=meta))
        else:
            out.append(EllipseSkyRegion(center, 2 * shapes.semi_major[i] * u.deg,
                                        2 * shapes.semi_minor[i] * u.deg, shapes.angle[i] * u.deg, meta=meta))
    return Regions(out)


def _shape_table(shapes: SourceShapes, frame):
    """ShapeTable rows (circles first, then ellipses) and the source index of each row."""
    circle = shapes.is_circle
    tables, order = [], []
    if circle.any():
        idx = np.flatnonzero(circle)
        tables.append(rc.sky_caps(shapes.positions[idx], shapes.semi_major[idx] * u.deg, None,
                                  np.zeros(len(idx), np.int32), frame))
        order.append(idx)
    if (~circle).any():
        idx = np.flatnonzero(~circle)
        big = idx[shapes.semi_major[idx] >= 90]
        if len(big):
            raise ValueError(
                f"source ellipses must have semi-axes below 90 deg: {shapes.names[big[0]]} has "
                f"{shapes.semi_major[big[0]]:.4g} deg (check scale=/psf=)"
            )
        tables.append(rc.sky_ellipses(shapes.positions[idx], 2 * shapes.semi_major[idx] * u.deg,
                                      2 * shapes.semi_minor[idx] * u.deg, shapes.angle[idx] * u.deg,
                                      np.zeros(len(idx), np.int32), frame))
        order.append(idx)
    table = rc.ShapeTable.concatenate(tables)
    return table, (np.concatenate(order) if order else np.zeros(0, np.int64))


def _as_catalogs(catalog):
    if catalog is None:
        return []
    items = list(catalog) if isinstance(catalog, (list, tuple)) else [catalog]
    for item in items:
        if not all(hasattr(item, a) for a in ("names", "positions", "morphology", "select")):
            raise TypeError(
                f"catalog must be a gpumask SourceCatalog (or a list of them), got {type(item).__name__}; "
                "read one with gpumask.SourceCatalog.read(path)"
            )
    return items


def touching(geom, catalog, radius=None, psf=None, scale=None, min_radius=None) -> np.ndarray:
    """Boolean array: the sources whose region reaches the map.

    A source counts when its region's bounding cap meets the bounding cap of the
    pixel centres of a 32 x 32-pixel tile of the map (the rasteriser's binning):
    conservative by at most a tile, so every source that covers a pixel centre is
    kept, including large sources centred off the map; a region too small to hold
    any pixel centre (between the centres of two tiles) may be dropped, as it
    would mask nothing.
    """
    return _touching(geom, source_shapes(catalog, radius=radius, psf=psf, scale=scale, min_radius=min_radius))


def _touching(geom, shapes: SourceShapes) -> np.ndarray:
    from ._region_raster import bin_shapes  # noqa: PLC0415

    keep = np.zeros(len(shapes), bool)
    if not len(shapes):
        return keep
    table, order = _shape_table(shapes, rc.map_frame(geom))
    _, _, members = bin_shapes(geom, table)
    keep[order[np.unique(members)]] = True
    return keep


def exclusion_mask(geom, catalog=None, regions=None, *, radius=None, psf=None, scale=None, min_radius=None,
                   method="sky", backend=None):
    """Exclusion mask (gammapy's convention: True = usable, False = excluded) from
    source catalogs and regions.

    Parameters
    ----------
    geom : WcsGeom
    catalog : SourceCatalog or list of them, optional
        Every source whose region touches the map is excluded; the regions follow
        the morphology rules of this module unless ``radius`` is given.
    regions : optional
        More regions to exclude, anything :meth:`WcsGeom.region_mask` accepts
        (ds9 strings and files, regions objects).  They are read as a set on their
        own, ds9 exclusions (``-circle``) included, and their union with the
        sources is excluded: a ``-`` shape never un-excludes a catalog source.
    radius, psf, scale, min_radius
        See :func:`source_shapes`.
    method : {"sky", "pixel"}
        "sky" (default): exact spherical shapes, the sources rasterised straight
        from arrays in the same pass as the regions.  "pixel": gammapy 2.1's pixel
        semantics, the sources going through ``regions`` objects.
    backend : str, optional
        Where the mask is built.
    """
    from .regions import _include, _region_mask, parse_regions  # noqa: PLC0415

    catalogs = _as_catalogs(catalog)
    kwargs = dict(radius=radius, psf=psf, scale=scale, min_radius=min_radius)
    items = [] if regions is None else parse_regions(regions)
    if method == "pixel":
        sources = []
        for cat in catalogs:
            shapes = source_shapes(cat, **kwargs)
            sel = np.flatnonzero(_touching(geom, shapes))
            if len(sel):
                sources.extend(_regions_of(shapes.select(sel)))
        excluded = _region_mask(geom, sources, True, "pixel", backend)
        if items:
            excluded = excluded | _region_mask(geom, items, True, "pixel", backend)
        return ~excluded
    tables = []
    frame = rc.map_frame(geom)
    for cat in catalogs:
        shapes = source_shapes(cat, **kwargs)
        if len(shapes):
            tables.append(_shape_table(shapes, frame)[0])
    extra = rc.ShapeTable.concatenate(tables) if tables else None
    if all(_include(r) for r in items):
        # only include shapes: sources and regions in one pass
        return _region_mask(geom, items, False, method, backend, extra=extra)
    # ds9 exclusions ("-circle") carve holes in the regions' own union only, not
    # in the catalog sources: two passes
    excluded = _region_mask(geom, [], True, method, backend, extra=extra)
    return ~(excluded | _region_mask(geom, items, True, method, backend))
