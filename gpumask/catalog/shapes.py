"""The region each catalog source occupies: its morphology sized by the rules below.

These rules belong to the catalog (what the source is), not to a map: the masks
layer (:mod:`gpumask.masks.catalog_mask`) rasterises the shapes, and
:meth:`SourceCatalog.to_regions` returns them as ``regions`` objects.

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

from .._utils import parse_angle
from ..errors import GpumaskWarning

__all__ = ["DEFAULT_PSF", "DEFAULT_SCALE", "SourceShapes", "source_shapes", "to_regions", "regions_of"]

DEFAULT_PSF = 0.1  # deg
DEFAULT_SCALE = {"point": 0.0, "unknown": 0.0, "disk": 1.0, "shell": 1.0, "ellipse": 1.0, "gauss": 3.0}
_TYPES = tuple(DEFAULT_SCALE)


@dataclasses.dataclass(frozen=True)
class SourceShapes:
    """One circle or ellipse per source: semi-axes and ``angle`` in deg, ``angle`` in
    the regions convention (width axis from the longitude axis, counter-clockwise);
    ``rules``: each size's rule in words (``source_shapes(..., rules=True)``), else None."""

    names: np.ndarray
    positions: SkyCoord
    semi_major: np.ndarray
    semi_minor: np.ndarray
    angle: np.ndarray
    # how each size was reached (``source_shapes(..., rules=True)``), else None
    rules: np.ndarray | None = None

    def __len__(self):
        return len(self.names)

    @property
    def is_circle(self) -> np.ndarray:
        return self.semi_major == self.semi_minor

    def select(self, idx) -> "SourceShapes":
        return SourceShapes(self.names[idx], self.positions[idx], self.semi_major[idx],
                            self.semi_minor[idx], self.angle[idx],
                            None if self.rules is None else self.rules[idx])


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


def source_shapes(catalog, radius=None, psf=None, scale=None, min_radius=None, *, rules=False) -> SourceShapes:
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
    rules : bool or array of int
        Also say, per source, how its size was reached (``SourceShapes.rules``,
        e.g. ``"gauss 3 sigma (sigma 0.107 deg) + psf 0.1 deg (quadrature) = 0.336 deg"``):
        the rule column of a mask's provenance.  An index array words only those
        sources (the others get "").
    """
    n = len(catalog)
    names = np.asarray(catalog.names)
    positions = catalog.positions
    if radius is not None:
        if psf is not None or scale is not None:
            raise ValueError("radius= gives every source a fixed circle; it cannot be combined with psf= or scale=")
        r0 = _radius_values(radius, n)
        r = r0 if min_radius is None else np.maximum(r0, parse_angle(min_radius, "min_radius"))
        text = None
        if rules is not False and rules is not None:
            which = range(n) if rules is True else np.asarray(rules, np.int64)
            text = np.full(n, "", dtype=object)
            for i in which:
                text[i] = f"fixed radius {r0[i]:.4g} deg" + (
                    f", raised to min_radius {r[i]:.4g} deg" if r[i] > r0[i] else "")
        return SourceShapes(names, positions, r, r.copy(), np.zeros(n), text)

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
    text = None
    if rules is not False and rules is not None:
        which = range(n) if rules is True else np.asarray(rules, np.int64)
        text = np.full(n, "", dtype=object)
        for i in which:
            text[i] = _rule(kind[i], bool(bounded[i]), a[i], b[i], s[i], psf_deg, floor, major[i], minor[i])
    return SourceShapes(names, positions, major, minor, angle, text)


def _rule(kind, bounded, a, b, scale, psf, floor, major, minor):
    """One source's size rule in words, e.g. ``gauss 3 sigma (sigma 0.1 deg) + psf 0.1 deg = 0.32 deg``."""
    if bounded:
        size = f"size upper limit {a:.4g} deg"
    elif kind in ("point", "unknown") or a == 0:
        size = "point-like"
    elif kind == "gauss":
        size = f"gauss {scale:g} sigma (sigma {a:.4g} deg)"
    elif scale != 1:
        size = f"{kind} {scale:g} x {a:.4g} deg"
    else:
        size = f"{kind} {a:.4g} deg"
    if b != a and not bounded:
        size += f" x {b:.4g} deg"
    out = f"{size} + psf {psf:.4g} deg (quadrature) = {major:.4g} deg"
    if minor != major:
        out += f" x {minor:.4g} deg"
    if floor > 0 and major <= floor:
        out += f" (min_radius {floor:.4g} deg)"
    return out


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
    return regions_of(source_shapes(catalog, radius=radius, psf=psf, scale=scale, min_radius=min_radius))


def regions_of(shapes: SourceShapes):
    """The ``regions`` objects of ``shapes``, one per source.

    Parameters
    ----------
    shapes : SourceShapes
        From :func:`source_shapes`.

    Returns
    -------
    regions.Regions
        A ``CircleSkyRegion`` per circle and an ``EllipseSkyRegion`` per ellipse
        (full widths, angle in the regions convention), the source name as the
        ds9 ``text`` label.  Host objects; nothing touches a device.

    Examples
    --------
    >>> fgl = gpumask.catalog.load("3fgl")  # doctest: +SKIP
    >>> regions_of(source_shapes(fgl, radius="0.3 deg")).write("3fgl.reg")  # doctest: +SKIP
    """
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
