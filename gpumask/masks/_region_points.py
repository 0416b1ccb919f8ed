"""Exact point-in-region tests for sky points (event lists) with the region engine's semantics.

:func:`contains_points` and :func:`count_in_regions` answer, for every (region,
point) pair, what ``WcsGeom.region_mask(region, method="sky")`` answers for a
pixel whose centre is that point: circles and annuli are caps on the sphere,
ellipses and boxes live in the gnomonic plane at their centre, polygons have
great-circle edges, boundaries are inclusive.  The shapes are compiled by the
engine (:func:`gpumask.masks.regions._compile`) and tested with the engine's
own per-kind expressions (:func:`gpumask.masks._region_raster._eval_kind`), so
the two can never drift apart.

Speed: candidate (shape, point) pairs come from a k-d tree on the points' unit
vectors, queried with the chord of each shape's bounding cap; only those pairs
are tested.  Millions of events against hundreds of regions cost a tree build
and the events that fall near a region.

Host only: the inputs (SkyCoords, event tables) and the outputs (a SciPy
sparse matrix, NumPy counts) live on the host; nothing here touches a device.

Row semantics: one row per region after :func:`gpumask.parse_regions` (a ds9
string with three shapes gives three rows).  A region's own ``include`` meta
(ds9 ``-shape``) is ignored at the top level - a row is the region's shape -
and honoured inside compound regions as :func:`gpumask.WcsGeom.region_mask`
does (the operand's complement).  Text and line regions (no area) give empty
rows; point regions, SkyCoords and pixel regions raise a TypeError.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from astropy.coordinates import SkyCoord

from . import _region_compile as rc
from ._region_raster import _eval_kind
from .regions import _ShapeError, _category_of, _compile, _describe, _include
from .regions import _operands, _validate, parse_regions

__all__ = ["contains_points", "count_in_regions"]

_PAIR_CHUNK = 1 << 21  # (shape, point) pairs tested at once (bounds temporary memory)
_CHORD_SLACK = 1e-12  # relative and absolute slack on the k-d tree query radius


@functools.lru_cache(maxsize=8)
def _frame_geom(frame):
    """A one-pixel WcsGeom in ``frame``: the engine takes its frame from a geometry."""
    from ..sky.geom import WcsGeom  # noqa: PLC0415

    return WcsGeom.create(npix=1, binsz=1.0, frame=frame)


def _compile_frame(coords: SkyCoord) -> str:
    """The frame shapes are compiled in: the points' own when the engine knows it
    (no per-point transformation), else ICRS."""
    name = rc._simple_frame(coords.frame)
    return name if name is not None else "icrs"


def _check_coords(coords) -> SkyCoord:
    if not isinstance(coords, SkyCoord):
        raise TypeError(f"coords must be an astropy SkyCoord (scalar or array), got {type(coords).__name__}")
    return coords.reshape((1,)) if coords.isscalar else coords.ravel()


def _parse(regions):
    """Parsed regions, validated for method='sky'; TypeError for what has no sky area."""
    parsed = parse_regions(regions)
    for i, region in enumerate(parsed):
        category, sky = _category_of(type(region))
        if category == "points" or category == "point":
            raise TypeError(
                f"region {i} ({_describe(region)}): points have no area and cannot contain "
                "points; use circles (e.g. CircleSkyRegion(center, radius))"
            )
        _validate(region, i, "sky")
        for leaf in _leaves(region):
            leaf_category, leaf_sky = _category_of(type(leaf))
            if leaf_category in ("point", "points") or (leaf_category != "annotation" and not leaf_sky):
                raise TypeError(
                    f"region {i} ({_describe(region)}): {type(leaf).__name__} is not supported for "
                    "sky points; give sky regions (circle, annulus, ellipse, rectangle, polygon, "
                    "ellipse/rectangle annulus or compound regions of these)"
                )
    return parsed


def _leaves(region):
    """The plain shapes under ``region`` (walked without recursion)."""
    out, stack = [], [region]
    while stack:
        node = stack.pop()
        if _category_of(type(node))[0] in ("compound", "asymmetric_annulus"):
            r1, r2, _ = _operands(node)
            stack.append(r2)
            stack.append(r1)
        else:
            out.append(node)
    return out


def _leaf_pairs(leaves, vectors, frame):
    """(leaf index, point index) pairs, sorted by leaf then point, of the points
    inside each plain sky shape of ``leaves``; ``vectors`` (n, 3) unit vectors of
    finite points in ``frame`` (indices refer to rows of ``vectors``)."""
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    shaped = [(leaf, i) for i, leaf in enumerate(leaves) if _category_of(type(leaf))[0] != "annotation"]
    if not shaped or len(vectors) == 0:
        return empty
    try:
        # the region's index rides in the flags column: the engine groups alike
        # shapes, so table rows are not in input order
        table, _, _ = _compile(shaped, _frame_geom(frame), "sky")
    except _ShapeError as exc:
        raise ValueError(f"{_describe(exc.region)}: {exc.detail}") from None
    if len(table) == 0:
        return empty
    from scipy.spatial import cKDTree  # noqa: PLC0415 - scipy import is slow

    tree = cKDTree(vectors)
    radius = np.minimum(table.cap[:, 3], math.pi)
    chord = 2.0 * np.sin(radius / 2.0) * (1 + _CHORD_SLACK) + _CHORD_SLACK
    found = tree.query_ball_point(table.cap[:, :3], chord)
    counts = np.fromiter((len(f) for f in found), dtype=np.int64, count=len(found))
    if counts.sum() == 0:
        return empty
    rows = np.repeat(np.arange(len(table)), counts)
    points = np.concatenate([np.asarray(f, dtype=np.int64) for f in found if len(f)])
    keep = np.zeros(len(rows), bool)
    kinds = table.kind[rows]
    for kind in np.unique(kinds):
        sel = np.flatnonzero(kinds == kind)
        if kind == rc.KIND_SKY_POLYGON:
            # the engine's polygon test walks each shape's own vertex list
            for m in np.unique(rows[sel]):
                part = sel[rows[sel] == m]
                keep[part] = _test(int(kind), table, m[None], part, rows, points, vectors)[0]
            continue
        for s0 in range(0, len(sel), _PAIR_CHUNK):
            part = sel[s0 : s0 + _PAIR_CHUNK]
            keep[part] = _test(int(kind), table, None, part, rows, points, vectors)
    leaf = table.flags[rows[keep]].astype(np.int64)
    pts = points[keep]
    order = np.lexsort((pts, leaf))
    return leaf[order], pts[order]


def _test(kind, table, members, part, rows, points, vectors):
    """The engine's inside test on the pairs ``part``: one shape (``members``, a
    polygon; arrays (1, n)) or elementwise pairs (arrays (n,))."""
    v = vectors[points[part]]
    if members is not None:
        p = [table.params[members, k][:, None] for k in range(table.params.shape[1])]
        pix = {"px": v[None, :, 0], "py": v[None, :, 1], "pz": v[None, :, 2]}
    else:
        m = rows[part]
        p = [table.params[m, k] for k in range(table.params.shape[1])]
        pix = {"px": v[:, 0], "py": v[:, 1], "pz": v[:, 2]}
    return _eval_kind(kind, p, table, members, pix)


def _region_pairs(regions, coords):
    """``(region index, point index, n_regions, n_points)``: every point inside
    every region, sorted by region then point."""
    coords = _check_coords(coords)
    parsed = _parse(regions)
    n_points = len(coords)
    frame = _compile_frame(coords)
    vectors = rc.unit_vectors(coords, frame) if n_points else np.zeros((0, 3))
    finite = np.flatnonzero(np.all(np.isfinite(vectors), axis=1))  # NaN points are in no region
    vectors = vectors[finite]
    # every plain shape of every region, compiled and tested together
    leaves, owners = [], []
    for i, region in enumerate(parsed):
        for leaf in _leaves(region):
            leaves.append(leaf)
            owners.append(i)
    leaf_idx, pt = _leaf_pairs(leaves, vectors, frame)
    pt = finite[pt]
    starts = np.searchsorted(leaf_idx, np.arange(len(leaves) + 1))
    out_r, out_p = [], []
    k = 0
    for i, region in enumerate(parsed):
        composite = _category_of(type(region))[0] in ("compound", "asymmetric_annulus")
        n_leaf = len(_leaves(region)) if composite else 1
        if not composite:
            sel = pt[starts[k] : starts[k + 1]]
        else:
            members = [pt[starts[k + j] : starts[k + j + 1]] for j in range(n_leaf)]
            sel = _combine(region, members, n_points)
        out_r.append(np.full(len(sel), i, np.int64))
        out_p.append(sel)
        k += n_leaf
    rows = np.concatenate(out_r) if out_r else np.zeros(0, np.int64)
    cols = np.concatenate(out_p) if out_p else np.zeros(0, np.int64)
    return rows, cols, len(parsed), n_points


def _combine(region, members, n_points):
    """Points inside a compound region from its leaves' points (``members``, in
    :func:`_leaves` order), with :func:`gpumask.WcsGeom.region_mask`'s operators
    and ``include`` rules, evaluated without recursion.

    The expression is evaluated on the candidates (points in any leaf) plus one
    sentinel point that lies in no leaf: when the sentinel is inside (e.g. the
    complement of an operand), so is every point outside all leaves.
    """
    cand = np.unique(np.concatenate(members)) if members else np.zeros(0, np.int64)
    m = len(cand)
    leaf_vectors = []
    for pts in members:
        vec = np.zeros(m + 1, bool)
        vec[np.searchsorted(cand, pts)] = True
        leaf_vectors.append(vec)
    leaf_iter = iter(leaf_vectors)
    values = []
    # mirror of regions._single, but leaves are consumed in _leaves order: walk
    # the same left-to-right operand order
    tasks = [("eval", region, False)]
    while tasks:
        task = tasks.pop()
        if task[0] == "apply":
            _, op, invert = task
            b, a = values.pop(), values.pop()
            out = np.asarray(op(a, b), dtype=bool)
            values.append(~out if invert else out)
            continue
        _, node, use_include = task
        invert = use_include and not _include(node)
        if _category_of(type(node))[0] in ("compound", "asymmetric_annulus"):
            r1, r2, op = _operands(node)
            tasks.append(("apply", op, invert))
            tasks.append(("eval", r2, True))
            tasks.append(("eval", r1, True))
            continue
        vec = next(leaf_iter)
        values.append(~vec if invert else vec)
    result = values.pop()
    inside = cand[result[:m]]
    if result[m]:  # everything outside the leaves is inside too
        outside = np.ones(n_points, bool)
        outside[cand] = False
        inside = np.union1d(inside, np.flatnonzero(outside))
    return inside.astype(np.int64)


def contains_points(regions, coords, *, dense=False):
    """Whether each sky point lies inside each sky region, exactly on the sphere.

    The answer is :func:`gpumask.WcsGeom.region_mask`'s (``method="sky"``) for a
    pixel centred on the point: circles and annuli are caps (great-circle
    distances), ellipses and boxes are tested in the gnomonic plane at their
    centre, polygons have great-circle edges; boundaries are inclusive.

    Parameters
    ----------
    regions : regions.SkyRegion, regions.Regions, ds9 string, region file or list
        Circle, circle annulus, ellipse, rectangle, polygon, ellipse and
        rectangle annulus sky regions and compound regions of these, in any
        frame.  One row per region after :func:`gpumask.parse_regions`.  Text
        and line regions give empty rows.
    coords : astropy.coordinates.SkyCoord
        The points, in any frame (scalar or array; flattened).  NaN points are
        inside no region.
    dense : bool
        Return a dense boolean array instead of a sparse matrix.

    Returns
    -------
    scipy.sparse.csr_array or numpy.ndarray
        ``(n_regions, n_points)`` booleans: a CSR sparse array (default; memory
        grows with the pairs found, not with regions x points) or, with
        ``dense=True``, a NumPy array.  Host only.

    Raises
    ------
    TypeError
        For coords that are not a SkyCoord, and for point, SkyCoord or pixel
        regions (no sky area / no WCS).
    ValueError
        For a region with a non-finite or non-positive parameter (named).

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.coordinates import SkyCoord
    >>> from regions import CircleSkyRegion
    >>> from gpumask.masks._region_points import contains_points
    >>> circle = CircleSkyRegion(SkyCoord(83.63, 22.01, unit="deg"), 0.5 * u.deg)
    >>> events = SkyCoord([83.63, 84.5], [22.01, 22.01], unit="deg")
    >>> contains_points([circle], events, dense=True)
    array([[ True, False]])
    """
    from scipy import sparse  # noqa: PLC0415

    rows, cols, n_regions, n_points = _region_pairs(regions, coords)
    if dense:
        out = np.zeros((n_regions, n_points), bool)
        out[rows, cols] = True
        return out
    data = np.ones(len(rows), bool)
    return sparse.csr_array((data, (rows, cols)), shape=(n_regions, n_points))


def count_in_regions(regions, coords, weights=None):
    """Number (or weighted sum) of points inside each sky region.

    Parameters
    ----------
    regions : regions.SkyRegion, regions.Regions, ds9 string, region file or list
        As for :func:`contains_points`.
    coords : astropy.coordinates.SkyCoord
        The points, in any frame.
    weights : array-like, optional
        ``(n_points,)`` weights, or ``(n_points, k)`` for ``k`` sums at once
        (e.g. one-hot energy bins).  Default: every point counts 1.

    Returns
    -------
    numpy.ndarray
        float64 ``(n_regions,)``, or ``(n_regions, k)`` for 2-D weights.  Host only.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.coordinates import SkyCoord
    >>> from regions import CircleSkyRegion, CircleAnnulusSkyRegion
    >>> from gpumask.masks._region_points import count_in_regions
    >>> c = SkyCoord(0, 0, unit="deg", frame="galactic")
    >>> shapes = [CircleSkyRegion(c, 1 * u.deg), CircleAnnulusSkyRegion(c, 1 * u.deg, 2 * u.deg)]
    >>> events = SkyCoord([0.0, 0.5, 1.5, 5.0], [0.0, 0.0, 0.0, 0.0], unit="deg", frame="galactic")
    >>> count_in_regions(shapes, events.icrs)
    array([2., 1.])
    """
    rows, cols, n_regions, n_points = _region_pairs(regions, coords)
    if weights is None:
        return np.bincount(rows, minlength=n_regions).astype(np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim not in (1, 2) or w.shape[0] != n_points:
        raise ValueError(f"weights must have shape ({n_points},) or ({n_points}, k) for {n_points} "
                         f"points, got {w.shape}")
    if w.ndim == 1:
        return np.bincount(rows, weights=w[cols], minlength=n_regions)
    out = np.zeros((n_regions, w.shape[1]))
    np.add.at(out, rows, w[cols])
    return out

