"""Sky and pixel regions -> boolean masks.

``WcsGeom.region_mask(regions, inside=True, method="sky")`` is the entry point;
:func:`make_region` and :func:`parse_regions` turn ds9 text and files into
``regions`` objects (the text and file reading lives in :mod:`gpumask.masks._ds9`).

What is accepted as ``regions``
    a ds9 string (one or many shapes, any frame regions parses: icrs, fk5, fk4,
    galactic, ecliptic, image), the path of a region file (ds9; ``.crtf`` and
    ``.fits`` by extension), one ``regions`` object, a list of any of these,
    ``regions.Regions``, or a SkyCoord (scalar or array: point regions).
Shapes
    circle, ellipse, box/rectangle (rotated), polygon, circle annulus, ellipse
    and box annuli, point - in sky or pixel coordinates - and compound regions
    (``a | b``, ``a & b``, ``a ^ b``, or any operator of a
    ``CompoundSkyRegion``).  Text and line regions are annotations without area
    and are ignored.
ds9 exclusion
    A shape with a leading ``-`` (``include=0`` in its meta) is removed from the
    union of the others, as ds9 and funtools mean it; if every shape is excluded,
    the implicit include region is the whole field.
``method="sky"`` (default)
    Geometry on the sphere, independent of the map's projection: a circle is every
    pixel centre within the angular radius (great-circle distance); ellipses and
    boxes live in the gnomonic tangent plane at their centre (so box sides are
    great circles and a box's half-width is reached along its axis); polygons
    have great-circle edges.  Boundaries are inclusive.  Pixel regions keep their
    pixel-space definition.
Validation
    Every position, vertex, size and angle must be finite, and every size
    (radius, width, height, annulus radii) strictly positive: a NaN or infinite
    value, or a zero or negative size, raises a ValueError that names the shape
    (its ds9 line, or the region's class and parameters) and the parameter.
    Nothing is dropped silently: a ds9 shape ``regions`` cannot parse (it would
    only warn and skip it) is an error too, as is a non-finite SkyCoord point.
Compound regions
    are evaluated without recursion, so chains of thousands of ``|`` / ``&``
    / ``^`` operands work; the operands of a chain of unions are rasterised in
    one pass.
``method="pixel"``
    gammapy 2.1 + regions 0.11 bit for bit: every sky region becomes a pixel
    region (radius from the pixel scale 1 arcsec north of the centre) and pixel
    centres are tested with regions' own boundary rules; points mark the 1-4
    pixels within one pixel of them.  Exact on the NumPy backend; on CuPy, circle
    and annulus ties follow CUDA's ``hypot``, which is not correctly rounded, so
    a pixel exactly on such a boundary may differ.
"""

from __future__ import annotations

import functools
import operator
import os
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord, UnitSphericalRepresentation

from ..backend import resolve_backend, to_device
from ..sky.bridge import as_geom
from ..sky.maps import Map
from . import _region_compile as rc
from ._ds9 import _is_file, _read_file, parse_ds9
from ._region_raster import _eval_kind, rasterise_cupy, rasterise_numpy
from .._utils import expand_user

__all__ = ["make_region", "parse_regions", "region_mask", "METHODS"]

METHODS = ("sky", "pixel")
_ACCEPTED = (
    "a ds9 region string, a region file path, a regions.Region, regions.Regions, "
    "a SkyCoord (points) or a list of these"
)
_SUPPORTED_SHAPES = (
    "circle, ellipse, box/rectangle, polygon, annulus (circle, ellipse, box), point "
    "and compound regions, in sky or pixel coordinates"
)


class _Points:
    """A batch of point positions (a SkyCoord array, kept as one object)."""

    def __init__(self, coords, include=True):
        self.coords = coords if not coords.isscalar else coords.reshape((1,))
        self.include = include


@functools.lru_cache(maxsize=None)
def _category_of(cls):
    """(category, is_sky) of a region class; category None if unsupported."""
    import regions as R  # noqa: PLC0415

    if cls is _Points:
        return "points", True
    table = (
        ((R.CompoundSkyRegion, R.CompoundPixelRegion), "compound"),
        ((R.TextSkyRegion, R.TextPixelRegion, R.LineSkyRegion, R.LinePixelRegion), "annotation"),
        ((R.CircleSkyRegion, R.CirclePixelRegion), "circle"),
        ((R.CircleAnnulusSkyRegion, R.CircleAnnulusPixelRegion), "annulus"),
        ((R.EllipseSkyRegion, R.EllipsePixelRegion), "ellipse"),
        ((R.RectangleSkyRegion, R.RectanglePixelRegion), "rectangle"),
        ((R.EllipseAnnulusSkyRegion, R.EllipseAnnulusPixelRegion, R.RectangleAnnulusSkyRegion,
          R.RectangleAnnulusPixelRegion), "asymmetric_annulus"),
        ((R.PolygonSkyRegion, R.PolygonPixelRegion), "polygon"),
        ((R.PointSkyRegion, R.PointPixelRegion), "point"),
    )
    for classes, name in table:
        if issubclass(cls, classes):
            return name, issubclass(cls, R.SkyRegion)
    return None, False


# ----------------------------------------------------------------------------- parsing


def make_region(region):
    """One ``regions`` object from a ds9 string, e.g.
    ``make_region("galactic;box(185,-4,1.0,0.5, 45)")`` (as gammapy's former
    ``gammapy.utils.regions.make_region``).  A region object is returned as is."""
    if not isinstance(region, str):
        import regions as _regions  # noqa: PLC0415

        if isinstance(region, _regions.Region):
            return region
        raise TypeError(f"make_region expects a ds9 string, got {type(region).__name__}")
    parsed = parse_ds9(region)
    if len(parsed) != 1:
        raise ValueError(
            f"make_region expects exactly one shape, the text holds {len(parsed)}: "
            f"{region!r}; use gpumask.parse_regions for several"
        )
    return parsed[0]


def parse_regions(regions) -> list:
    """Flatten any accepted ``regions`` input into a list of region objects
    (SkyCoords stay point batches)."""
    import regions as _regions  # noqa: PLC0415

    if regions is None:
        return []
    if isinstance(regions, os.PathLike):
        return _read_file(Path(regions))
    if isinstance(regions, str):
        text = regions.strip()
        if not text:
            return []
        if "\n" not in text and _is_file(text):  # paths may contain "(" too
            return _read_file(expand_user(text))
        if "(" in text or "\n" in text:
            return parse_ds9(regions)
        raise ValueError(
            f"{regions!r} is neither ds9 region text (e.g. 'icrs;circle(83.63,22.01,0.3)') "
            "nor an existing region file"
        )
    if isinstance(regions, SkyCoord):
        return [_Points(regions)]
    if isinstance(regions, (_regions.Region, _Points)):
        return [regions]
    if isinstance(regions, (_regions.Regions, list, tuple)):
        out = []
        for item in regions:
            out.extend(parse_regions(item))
        return out
    raise TypeError(f"regions must be {_ACCEPTED}; got {type(regions).__name__}")


# ----------------------------------------------------------------------------- validation


def _include(region) -> bool:
    if isinstance(region, _Points):
        return region.include
    return bool(region.meta.get("include", True))


class _Invalid(ValueError):
    """A bad parameter of one shape: the message without the shape's name."""


class _ShapeError(ValueError):
    """A bad parameter found while compiling ``region``; :func:`_region_mask`
    adds the region's place in the input."""

    def __init__(self, region, detail):
        self.region = region
        self.detail = detail
        super().__init__(f"{_describe(region)}: {detail}")


def _describe(region) -> str:
    """The region on one line: class and parameters (regions' repr), shortened."""
    if isinstance(region, _Points):
        return f"SkyCoord of {len(region.coords)} point(s)"
    if _category_of(type(region))[0] == "compound":  # a repr would recurse through the operands
        op = getattr(region.operator, "__name__", repr(region.operator))
        return f"{type(region).__name__} with operator {op}"
    text = " ".join(repr(region).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _check_angle(value, what, *, positive=True, upper=None):
    v = float(value.value) if hasattr(value, "unit") else float(value)
    if not np.isfinite(v) or (positive and v <= 0):
        need = "a finite, positive" if positive else "a finite"
        raise _Invalid(f"{what} must be {need} value, got {value}")
    if upper is not None and hasattr(value, "unit") and value.to_value(u.deg) >= upper:
        raise _Invalid(
            f"{what} = {value} is too large for method='sky' (must be < {upper} deg, "
            "the shape lives in the gnomonic plane at its centre)"
        )


def _check_coord(coord, what="position"):
    if isinstance(coord, SkyCoord):
        sph = coord.represent_as(UnitSphericalRepresentation)
        values = [sph.lon.value, sph.lat.value]
    else:
        values = [coord.x, coord.y]
    values = [np.ravel(np.asarray(v, dtype=float)) for v in values]
    finite = np.isfinite(values[0]) & np.isfinite(values[1])
    if not np.all(finite):
        k = int(np.flatnonzero(~finite)[0])
        bad = f"({values[0][k]}, {values[1][k]})"
        which = what if finite.size == 1 else f"{what} {k + 1} of {finite.size}"
        raise _Invalid(f"{which} is not finite: {bad}")


def _validate(region, index, method):
    """ValueError (TypeError for an unsupported class) naming region ``index``,
    the offending shape and parameter.  Compound regions are walked without
    recursion (chains of thousands of operands)."""
    stack = [(region, 0, "")]
    while stack:
        node, depth, side = stack.pop()
        category, sky = _category_of(type(node))
        if category is None:
            raise TypeError(f"{_where(index, region, node, depth, side)}: unsupported region type "
                            f"{type(node).__name__}; supported: {_SUPPORTED_SHAPES}")
        if category == "compound":
            stack.append((node.region2, depth + 1, "second"))
            stack.append((node.region1, depth + 1, "first"))
            continue
        try:
            # grouped sky shapes have their centres checked when stacked (vectorised),
            # except inside compounds, which are rasterised one by one
            _validate_shape(node, category, sky, method, check_centre=bool(depth))
        except _Invalid as exc:
            raise ValueError(f"{_where(index, region, node, depth, side)}: {exc}") from None


def _where(index, region, node, depth, side):
    """Names region ``index`` and, inside a compound, the operand ``node``."""
    text = f"region {index} ({_describe(region)})"
    return text + (f", {side} operand at depth {depth} ({_describe(node)})" if depth else "")


def _validate_shape(region, category, sky, method, check_centre):
    if category == "annotation":
        return
    if category == "points":
        _check_coord(region.coords, "position")
        return
    upper = 180.0 if (sky and method == "sky") else None
    if category == "polygon":
        pass
    elif sky and category in _GROUP_ATTRS and not check_centre:
        pass  # centres are checked when stacked (vectorised, rc.stack_skycoords)
    else:
        _check_coord(region.center, "center")
    if category == "circle":
        _check_angle(region.radius, "radius")
    elif category == "annulus":
        _check_angle(region.inner_radius, "inner_radius")
        _check_angle(region.outer_radius, "outer_radius")
        if not region.inner_radius < region.outer_radius:
            raise _Invalid("inner_radius must be smaller than outer_radius, got "
                           f"{region.inner_radius} and {region.outer_radius}")
    elif category in ("ellipse", "rectangle"):
        _check_angle(region.width, "width", upper=upper)
        _check_angle(region.height, "height", upper=upper)
        _check_angle(region.angle, "angle", positive=False)
    elif category == "asymmetric_annulus":
        for name in ("inner_width", "outer_width", "inner_height", "outer_height"):
            _check_angle(getattr(region, name), name, upper=upper)
        _check_angle(region.angle, "angle", positive=False)
    elif category == "polygon":
        vertices = region.vertices
        n = int(np.size(vertices.x if not sky else vertices.data.lon))
        if n < 3:
            raise _Invalid(f"a polygon needs at least 3 vertices, got {n}")
        _check_coord(vertices, "vertex")


# ----------------------------------------------------------------------------- compilation


def _compile(leaves, geom, method, owners=False):
    """ShapeTable and point pixels (flat indices, flags) of non-compound regions.

    ``leaves`` is a list of (region, flag) pairs, flag = FLAG_EXCLUDE or 0.  With
    ``owners=True`` also the leaf index of every table row and of every point
    pixel (mask provenance).
    """

    frame = rc.map_frame(geom)
    wcs = geom.wcs
    groups: dict = {}
    tables, row_owner = [], []
    point_idx, point_flag, point_owner = [], [], []

    def add_points(x, y, flag, owner):
        idx = rc.point_pixels(x, y, geom, method)
        point_idx.append(idx)
        point_flag.append(np.full(len(idx), flag, np.int32))
        point_owner.append(np.broadcast_to(np.asarray(owner, np.int64), (len(idx),))
                           if np.ndim(owner) == 0 else np.asarray(owner, np.int64))

    def add_table(table, owner):
        tables.append(table)
        row_owner.append(np.broadcast_to(np.asarray(owner, np.int64), (len(table),))
                         if np.ndim(owner) == 0 else np.asarray(owner, np.int64))

    for i, (region, flag) in enumerate(leaves):
        category, sky = _category_of(type(region))
        if category == "points":
            add_points(*rc.points_to_pixels(region.coords, geom), flag, i)
        elif category == "annotation":
            continue
        elif category == "point" and not sky:
            add_points(region.center.x, region.center.y, flag, i)
        elif category == "polygon" and not sky:
            add_table(rc.pixel_polygon(region.vertices.x, region.vertices.y, flag), i)
        elif category == "polygon":
            if method == "sky":
                label = f"polygon {region.vertices}"
                add_table(rc.sky_polygon(region.vertices, flag, frame, label), i)
            else:
                x, y = wcs.world_to_pixel(region.vertices)
                add_table(rc.pixel_polygon(x, y, flag), i)
        elif not sky:
            add_table(_pixel_region_table(region, category, flag), i)
        else:
            key = _group_key(region, category, method)
            groups.setdefault(key, []).append((region, flag, i))

    for key, members in groups.items():
        regs = [m[0] for m in members]
        flags = np.array([m[1] for m in members], np.int32)
        index = np.array([m[2] for m in members], np.int64)
        try:
            centers = rc.stack_skycoords([r.center for r in regs])
        except rc.NonFinitePosition as exc:
            raise _ShapeError(regs[exc.index], f"center is not finite: {exc.values}") from None
        kind = key[0]
        if kind == "point":
            for k in range(len(regs)) if owners else ():
                x, y = rc.points_to_pixels(centers[k : k + 1], geom)
                add_points(x, y, int(flags[k]), index[k])
            for value in np.unique(flags) if not owners else ():
                x, y = rc.points_to_pixels(centers[flags == value], geom)
                add_points(x, y, int(value), -1)
        elif method == "sky":
            add_table(_sky_group_table(kind, regs, centers, flags, frame), index)
        else:
            add_table(_pixel_group_table(kind, regs, centers, flags, wcs), index)
    table = rc.ShapeTable.concatenate(tables)
    if point_idx:
        pidx = np.concatenate(point_idx)
        pflag = np.concatenate(point_flag)
        powner = np.concatenate(point_owner)
    else:
        pidx, pflag, powner = np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64)
    if not owners:
        return table, pidx, pflag
    rows = np.concatenate(row_owner) if row_owner else np.zeros(0, np.int64)
    if len(rows) != len(table):
        raise AssertionError(f"{len(table)} shape rows but {len(rows)} owners")
    return table, pidx, pflag, rows, powner


_GROUP_ATTRS = {
    "circle": ("radius",),
    "annulus": ("inner_radius", "outer_radius"),
    "ellipse": ("width", "height", "angle"),
    "rectangle": ("width", "height", "angle"),
    "point": (),
}


def _group_key(region, category, method):
    attrs = _GROUP_ATTRS[category]
    if method == "pixel":  # stack only values that share unit and dtype (bit parity)
        units = tuple((getattr(region, a).unit, getattr(region, a).dtype) for a in attrs)
    else:
        units = ()
    return (category, rc.frame_key(region.center), units)


def _q(regs, name, method):
    values = [getattr(r, name) for r in regs]
    if method == "pixel":
        return rc.quantity_array(values)  # one unit per group: values kept bit for bit
    return u.Quantity([v.to_value(u.deg) for v in values], u.deg)


def _sky_group_table(kind, regs, centers, flags, frame):
    if kind == "circle":
        return rc.sky_caps(centers, _q(regs, "radius", "sky"), None, flags, frame)
    if kind == "annulus":
        return rc.sky_caps(centers, _q(regs, "outer_radius", "sky"),
                           _q(regs, "inner_radius", "sky"), flags, frame)
    return rc.sky_ellipses(centers, _q(regs, "width", "sky"), _q(regs, "height", "sky"),
                           _q(regs, "angle", "sky"), flags, frame, box=(kind == "rectangle"))


def _pixel_group_table(kind, regs, centers, flags, wcs):
    x, y, scale, north = rc.pixel_scale_angle(centers, wcs)
    if kind == "circle":
        return rc.pixel_circles(x, y, rc._pix(_q(regs, "radius", "pixel"), scale), flags)
    if kind == "annulus":
        r_in = rc._pix(_q(regs, "inner_radius", "pixel"), scale)
        r_out = rc._pix(_q(regs, "outer_radius", "pixel"), scale)
        return rc.pixel_annuli(x, y, r_in, r_out, flags)
    width = rc._pix(_q(regs, "width", "pixel"), scale)
    height = rc._pix(_q(regs, "height", "pixel"), scale)
    angle = _q(regs, "angle", "pixel") + (north - 90 * u.deg)
    cos_a, sin_a = rc.angle_cos_sin(angle)
    return rc.pixel_ellipses(x, y, cos_a, sin_a, width, height, flags, rect=(kind == "rectangle"))


def _pixel_region_table(region, category, flag):
    cx, cy = np.array([float(region.center.x)]), np.array([float(region.center.y)])
    flags = [flag]
    if category == "circle":
        return rc.pixel_circles(cx, cy, np.array([float(region.radius)]), flags)
    if category == "annulus":
        return rc.pixel_annuli(cx, cy, np.array([float(region.inner_radius)]),
                               np.array([float(region.outer_radius)]), flags)
    # ellipse or rectangle (the other pixel categories are handled by the caller)
    cos_a, sin_a = rc.angle_cos_sin(region.angle)
    return rc.pixel_ellipses(cx, cy, np.atleast_1d(cos_a), np.atleast_1d(sin_a),
                             np.array([float(region.width)]), np.array([float(region.height)]),
                             flags, rect=(category == "rectangle"))


# ----------------------------------------------------------------------------- masks


def _split(items):
    """Leaves (one rasterisation pass) and composite regions (evaluated apart)."""
    leaves, parts = [], []
    for region in items:
        composite = _category_of(type(region))[0] in ("compound", "asymmetric_annulus")
        (parts if composite else leaves).append(region)
    return leaves, parts


def _operands(region):
    """(region1, region2, operator) of a composite region."""
    import regions as R  # noqa: PLC0415

    if _category_of(type(region))[0] == "compound":
        return region.region1, region.region2, region.operator
    # asymmetric annuli are regions' xor of the inner and outer shape
    cls = {
        R.EllipseAnnulusSkyRegion: R.EllipseSkyRegion,
        R.EllipseAnnulusPixelRegion: R.EllipsePixelRegion,
        R.RectangleAnnulusSkyRegion: R.RectangleSkyRegion,
        R.RectangleAnnulusPixelRegion: R.RectanglePixelRegion,
    }[type(region)]
    inner = cls(region.center, region.inner_width, region.inner_height, angle=region.angle)
    outer = cls(region.center, region.outer_width, region.outer_height, angle=region.angle)
    return inner, outer, operator.xor


def _raster(geom, leaves, method, backend, extra=None):
    table, pidx, pflag = _compile(leaves, geom, method)
    if extra is not None:
        table = rc.ShapeTable.concatenate([table, extra])
    if backend.name == "cupy":
        image = rasterise_cupy(geom, table, backend)
    else:
        image = rasterise_numpy(geom, table)
    xp = backend.xp
    if method == "pixel" and len(table):
        corner = _corner_bits(table)
        if corner:
            lon, _ = geom.get_coord(backend=backend)
            image[~xp.isfinite(lon)] |= np.uint8(corner)
    if len(pidx):
        nx = geom.npix[0]
        for bit, sel in ((1, (pflag & rc.FLAG_EXCLUDE) == 0), (2, (pflag & rc.FLAG_EXCLUDE) != 0)):
            if np.any(sel):
                iy = to_device(pidx[sel] // nx, backend)
                ix = to_device(pidx[sel] % nx, backend)
                image[iy, ix] |= np.uint8(bit)
    return image


def _corner_bits(table):
    """Bits of the pixel-kind shapes that contain pixel (-1, -1), where gammapy
    tests the pixels that have no sky coordinates."""
    bits = 0
    for m in np.flatnonzero(np.isin(table.kind, rc.PIXEL_KINDS)):
        p = [np.array([[v]]) for v in table.params[m]]
        pix = {"x": np.array([[-1.0]]), "y": np.array([[-1.0]])}
        if _eval_kind(int(table.kind[m]), p, table, np.array([m]), pix)[0, 0]:
            bits |= 2 if table.flags[m] & rc.FLAG_EXCLUDE else 1
    return bits


#: Associative operators of compound regions: a chain of one of them is
#: evaluated as one n-ary operation (no recursion, constant memory).
_ASSOCIATIVE = {
    operator.or_: operator.or_, np.logical_or: operator.or_,
    operator.and_: operator.and_, np.logical_and: operator.and_,
    operator.xor: operator.xor, np.logical_xor: operator.xor,
}


def _associative(op):
    try:
        return _ASSOCIATIVE.get(op)
    except TypeError:  # an unhashable callable
        return None


def _chain(region, op):
    """Operands, left to right, of the chain of ``op`` compounds under ``region``
    (inner compounds with ``include=False`` are operands: their complement counts)."""
    out, stack = [], [region.region2, region.region1]
    while stack:
        node = stack.pop()
        if (_category_of(type(node))[0] == "compound" and _include(node)
                and _associative(node.operator) is op):
            stack.append(node.region2)
            stack.append(node.region1)
        else:
            out.append(node)
    return out


def _is_plain_include(region):
    return _include(region) and _category_of(type(region))[0] not in ("compound", "asymmetric_annulus")


def _single(geom, region, method, backend, complement=True):
    """Boolean image of one region with regions' semantics (complement when its
    meta says include=False, unless ``complement`` is False).

    Compound regions are evaluated with an explicit stack, not recursion, so
    chains of thousands of operands work; the plain shapes of a chain of unions
    are rasterised together in one pass.
    """
    values = []  # evaluated images
    tasks = [("eval", region, complement)]
    while tasks:
        task = tasks.pop()
        if task[0] == "apply":  # binary operator on the two last images
            _, op, invert = task
            b, a = values.pop(), values.pop()
            out = op(a, b)
            values.append(~out if invert else out)
            continue
        if task[0] == "invert":
            values.append(~values.pop())
            continue
        _, node, use_include = task
        invert = use_include and not _include(node)
        category = _category_of(type(node))[0]
        if category == "compound" and _associative(node.operator) is not None:
            op = _associative(node.operator)
            operands = _chain(node, op)
            have = False  # an image of this chain is already on the value stack
            if op is operator.or_:
                plain = [r for r in operands if _is_plain_include(r)]
                if plain:
                    operands = [r for r in operands if not _is_plain_include(r)]
                    values.append((_raster(geom, [(r, 0) for r in plain], method, backend) & 1) != 0)
                    have = True
            steps = []
            for operand in operands:
                steps.append(("eval", operand, True))
                if have:
                    steps.append(("apply", op, False))
                have = True
            if invert:
                steps.append(("invert",))
            tasks.extend(reversed(steps))
            continue
        if category in ("compound", "asymmetric_annulus"):
            r1, r2, op = _operands(node)
            tasks.append(("apply", op, invert))
            tasks.append(("eval", r2, True))
            tasks.append(("eval", r1, True))
            continue
        mask = (_raster(geom, [(node, 0)], method, backend) & 1) != 0
        values.append(~mask if invert else mask)
    return values.pop()


def region_mask(geom, regions, inside=True, method="sky", backend=None, explain=False):
    """Boolean :class:`~gpumask.Map` of the pixels inside ``regions``.

    Parameters
    ----------
    geom : WcsGeom
        Geometry; non-spatial axes repeat the same image mask in every plane.
    regions : str, path, regions.Region, regions.Regions, SkyCoord or list
        See the module documentation.  An empty list gives an all-False mask.
    inside : bool
        ``True``: pixels inside are True.  ``False``: inverted (gammapy's
        exclusion convention, True = usable).
    method : {"sky", "pixel"}
        Spherical geometry (default) or gammapy 2.1 pixel parity.
    backend : str or Backend, optional
        Where the mask is created (default: the active selection).
    explain : bool
        Also record which region excludes each pixel (``mask.provenance``, a
        :class:`~gpumask.sky.provenance.MaskProvenance`; one component per
        include region, in the order given).  Needs ``inside=False`` (an
        exclusion mask).  The labels come from the same rasterisation pass.
    """
    geom = as_geom(geom)
    return _region_mask(geom, regions, inside, method, backend, explain=explain)


def _bit_image(geom, items, method, be, extra):
    """uint8 image: bit 1 = inside an include shape, bit 2 = inside an exclude shape."""
    leaves, parts = _split(items)
    flagged = [(r, 0 if _include(r) else rc.FLAG_EXCLUDE) for r in leaves]
    if flagged or extra is not None:
        image = _raster(geom, flagged, method, be, extra)
    else:
        image = be.xp.zeros(geom.data_shape_image, be.xp.uint8)
    for region in parts:
        mask = _single(geom, region, method, be, complement=False)
        image |= mask.astype(be.xp.uint8) * np.uint8(1 if _include(region) else 2)
    return image


def _region_mask(geom, regions, inside, method, backend, extra=None, explain=False, extra_rows=None):
    """:func:`region_mask`, with ``extra``: a ShapeTable of more include shapes
    (built directly from arrays, e.g. catalog sources) rasterised in the same pass;
    with ``explain``, ``extra_rows`` are their component rows (one per table row)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not isinstance(inside, (bool, np.bool_)):
        raise TypeError(f"inside must be True or False, got {inside!r}")
    if explain:
        if inside:
            raise ValueError("explain=True describes exclusion masks: use inside=False (True = usable)")
        return _explained_mask(geom, regions, method, backend, extra, extra_rows or [])
    be = resolve_backend(backend)
    parsed = parse_regions(regions)
    for i, region in enumerate(parsed):
        _validate(region, i, method)
    # text and line regions are annotations: no area, no part in include/exclude logic
    items = [r for r in parsed if _category_of(type(r))[0] != "annotation"]
    xp = be.xp
    ny, nx = geom.data_shape_image
    has_extra = extra is not None and len(extra) > 0
    try:
        image = _bit_image(geom, items, method, be, extra if has_extra else None)
    except _ShapeError as exc:
        index = next((i for i, r in enumerate(parsed) if r is exc.region), None)
        if index is None:  # inside a compound region: named by its parameters alone
            raise
        raise ValueError(f"region {index} ({_describe(exc.region)}): {exc.detail}") from None
    has_include = has_extra or any(_include(r) for r in items)
    excluded = (image & 2) != 0
    if has_include:
        mask = ((image & 1) != 0) & ~excluded
    elif items:
        # only exclusions: the implicit include region is the field on the sky
        lon, _ = geom.get_coord(backend=be)
        mask = xp.isfinite(lon) & ~excluded
    else:
        mask = xp.zeros((ny, nx), dtype=bool)
    if not inside:
        mask = ~mask
    if geom.data_shape != (ny, nx):
        full = xp.empty(geom.data_shape, dtype=bool)
        full[...] = mask
        mask = full
    return Map.from_geom(geom, data=mask, backend=be)


def _explained_mask(geom, regions, method, backend, extra, extra_rows):
    """The exclusion mask (``inside=False``) and its provenance: components
    ``extra_rows`` (``extra``'s rows), then the include regions in order."""
    from ..sky.provenance import MaskProvenance  # noqa: PLC0415
    from ._explain import labelled_region_mask, region_rows  # noqa: PLC0415

    be = resolve_backend(backend)
    parsed = parse_regions(regions)
    for i, region in enumerate(parsed):
        _validate(region, i, method)
    items = [r for r in parsed if _category_of(type(r))[0] != "annotation"]
    frame = geom.frame
    try:
        covered, l1, l2 = labelled_region_mask(geom, items, method, be, extra, first_comp=len(extra_rows) + 1)
    except _ShapeError as exc:
        index = next((i for i, r in enumerate(parsed) if r is exc.region), None)
        if index is None:
            raise
        raise ValueError(f"region {index} ({_describe(exc.region)}): {exc.detail}") from None
    rows = list(extra_rows) + region_rows(items, frame)
    if items and not any(_include(r) for r in items):
        rows.append(dict(kind="region", name="the field (only ds9 exclusions given)",
                         rule="implicit include of ds9 -shapes"))
    xp = be.xp
    ny, nx = geom.data_shape_image
    usable = ~covered
    if geom.data_shape != (ny, nx):
        usable = xp.broadcast_to(usable, geom.data_shape).copy()
        l1 = xp.broadcast_to(l1, geom.data_shape)
        l2 = xp.broadcast_to(l2, geom.data_shape)
    prov = MaskProvenance(geom, l1.astype(np.int32, copy=False), l2.astype(np.int32, copy=False), rows)
    return Map.from_geom(geom, data=usable, backend=be)._explained(prov)
