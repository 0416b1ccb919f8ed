"""Mask provenance for the mask builders: label maps and component rows.

The builders (:func:`~gpumask.exclusion_mask`, :meth:`WcsGeom.region_mask`,
:func:`~gpumask.exclusion_from_significance`, the morphology functions) call in
here when asked ``explain=True``; the result is a
:class:`~gpumask.sky.provenance.MaskProvenance` attached to the mask.

Region and catalog masks go through the same tile-binned rasteriser as the plain
mask (``label_tiles`` on the GPU): one pass that keeps, per pixel, the two smallest
component ids of the include shapes holding it; its ``label > 0`` is the plain
mask's include bit, so the mask is built from the labels rather than beside them.
"""

from __future__ import annotations

import numpy as np
from astropy.coordinates import SkyCoord

from ..backend import to_device
from ..sky.provenance import NO_LABEL, MaskProvenance, merge_two_smallest, two_smallest
from . import _region_compile as rc
from ._region_raster import _eval_kind, rasterise_labels_cupy, rasterise_labels_numpy

__all__ = ["labelled_region_mask", "region_rows", "source_rows", "blob_provenance", "grow_provenance"]


# ----------------------------------------------------------------------------- rows


def _lonlat(coord, frame):
    if coord.frame.name == frame:  # no transformation (about a millisecond each)
        sph = coord.spherical
        return float(sph.lon.deg), float(sph.lat.deg)
    try:
        c = coord.transform_to(frame)
        sph = c.spherical
        return float(sph.lon.deg), float(sph.lat.deg)
    except Exception:  # noqa: BLE001 - a position is a convenience, never a failure
        return np.nan, np.nan


_DS9_FRAMES = {"icrs": "icrs", "galactic": "galactic"}


def _fast_ds9(region):
    """ds9 text of the common sky shapes, written directly (regions' serializer costs
    about a millisecond a region); None for anything else."""
    import regions as R  # noqa: PLC0415

    center = getattr(region, "center", None)
    if not isinstance(center, SkyCoord) or center.frame.name not in _DS9_FRAMES or not center.isscalar:
        return None
    frame = _DS9_FRAMES[center.frame.name]
    sph = center.spherical
    xy = f"{sph.lon.deg:.8f},{sph.lat.deg:.8f}"
    if type(region) is R.CircleSkyRegion:
        return f"{frame};circle({xy},{region.radius.to_value('deg'):.8f})"
    if type(region) is R.EllipseSkyRegion or type(region) is R.RectangleSkyRegion:
        shape = "ellipse" if type(region) is R.EllipseSkyRegion else "box"
        w, h = region.width.to_value("deg"), region.height.to_value("deg")
        if shape == "ellipse":
            w, h = w / 2, h / 2
        return f"{frame};{shape}({xy},{w:.8f},{h:.8f},{region.angle.to_value('deg'):.8f})"
    if type(region) is R.CircleAnnulusSkyRegion:
        return (f"{frame};annulus({xy},{region.inner_radius.to_value('deg'):.8f},"
                f"{region.outer_radius.to_value('deg'):.8f})")
    return None


def _ds9_line(region):
    """One-line ds9 text of a region (``frame;shape(...)``), '' when regions cannot write it."""
    import warnings  # noqa: PLC0415

    fast = _fast_ds9(region)
    if fast is not None:
        return fast

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = region.serialize(format="ds9")
    except Exception:  # noqa: BLE001 - compound regions have no ds9 form
        return ""
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith(("#", "global"))]
    if not lines:
        return ""
    return ";".join(ln.strip() for ln in lines)


def region_rows(items, frame):
    """Component rows of the include regions among ``items``, in order."""
    from .regions import _category_of, _include  # noqa: PLC0415

    rows = []
    for region in items:
        if not _include(region):
            continue
        category, sky = _category_of(type(region))
        line = _ds9_line(region) if category not in ("points",) else ""
        text = (getattr(region, "meta", None) or {}).get("text")
        if category == "points":
            name = f"{len(region.coords)} points"
        else:
            name = str(text) if text else (line or f"{type(region).__name__}")
        lon = lat = np.nan
        center = getattr(region, "center", None)
        if sky and isinstance(center, SkyCoord):
            lon, lat = _lonlat(center, frame)
        rule = {"compound": "compound region", "points": "point pixels"}.get(
            category, f"{'sky' if sky else 'pixel'} {category}")
        rows.append(dict(kind="region", name=name, rule=rule, lon=lon, lat=lat, region=line))
    return rows


def source_rows(shapes, frame):
    """Component rows of catalog sources (``shapes`` from ``source_shapes(..., rules=True)``)."""
    n = len(shapes)
    if n == 0:
        return []
    c = shapes.positions.transform_to(frame)
    lon, lat = c.spherical.lon.deg, c.spherical.lat.deg
    icrs = shapes.positions.icrs
    ra, dec = icrs.ra.deg, icrs.dec.deg
    rows = []
    for i in range(n):
        if shapes.semi_major[i] == shapes.semi_minor[i]:
            shape = f"icrs;circle({ra[i]:.6f},{dec[i]:.6f},{shapes.semi_major[i]:.6f})"
        else:  # the angle is in the shapes' own frame: write the ellipse there
            name = shapes.positions.frame.name
            sp = shapes.positions[i].spherical
            shape = (f"{'galactic' if name == 'galactic' else 'icrs'};ellipse({sp.lon.deg:.6f},{sp.lat.deg:.6f},"
                     f"{shapes.semi_major[i]:.6f},{shapes.semi_minor[i]:.6f},{shapes.angle[i]:.4f})")
        rows.append(dict(kind="catalog source", name=str(shapes.names[i]),
                         rule=str(shapes.rules[i]) if shapes.rules is not None else "",
                         lon=float(lon[i]), lat=float(lat[i]), region=shape))
    return rows


# ----------------------------------------------------------------------------- regions and catalogs


def _merge_image(xp, l1, l2, image, comp):
    """Merge component ``comp`` where boolean ``image`` is True."""
    b1 = xp.where(image, np.int32(comp), np.int32(0))
    return merge_two_smallest(xp, l1, l2, b1, xp.zeros_like(b1))


def labelled_region_mask(geom, items, method, be, extra=None, first_comp=1):
    """Include bits and labels of ``items`` (parsed, no annotations) plus the ShapeTable
    ``extra`` (include rows, component ids 1..len(extra)).

    Returns ``(covered, label, label2)``: ``covered`` a boolean image of the pixels
    the plain mask excludes (the union of the include shapes minus the ds9
    ``-shape`` exclusions); labels zero elsewhere.  Component ids: ``extra``'s rows
    1..E, then the include regions of ``items`` in order from ``first_comp``.
    """
    from .regions import _bit_image, _compile, _include, _single, _split  # noqa: PLC0415

    xp = be.xp
    ny, nx = geom.data_shape_image
    leaves, parts = _split(items)
    includes = [r for r in items if _include(r)]
    comp_of = {id(r): first_comp + k for k, r in enumerate(includes)}
    inc_leaves = [(r, 0) for r in leaves if _include(r)]
    table, pidx, _, owners, powners = _compile(inc_leaves, geom, method, owners=True)
    comp = np.array([comp_of[id(inc_leaves[o][0])] for o in owners], np.int32)
    if extra is not None and len(extra):
        table = rc.ShapeTable.concatenate([table, extra])
        comp = np.concatenate([comp, np.arange(1, len(extra) + 1, dtype=np.int32)])
    if be.name == "cupy":
        l1, l2 = rasterise_labels_cupy(geom, table, comp, be)
    else:
        l1, l2 = (to_device(a, be) for a in rasterise_labels_numpy(geom, table, comp))
    if method == "pixel" and len(table):
        corner = _corner_comps(table, comp)
        if corner:
            lon, _ = geom.get_coord(backend=be)
            off = ~xp.isfinite(lon)
            for c in corner[:2]:
                l1, l2 = _merge_image(xp, l1, l2, off, c)
    if len(pidx):
        order = np.argsort(pidx, kind="stable")
        pidx, powners = pidx[order], powners[order]
        pending = np.ones(len(pidx), bool)
        while pending.any():  # a pixel held by several points: one merge per round
            sel = np.flatnonzero(pending)
            _, first = np.unique(pidx[sel], return_index=True)
            take = sel[first]
            pending[take] = False
            iy = to_device(pidx[take] // nx, be)
            ix = to_device(pidx[take] % nx, be)
            c = to_device(np.array([comp_of[id(inc_leaves[o][0])] for o in powners[take]], np.int32), be)
            a1, a2 = merge_two_smallest(xp, l1[iy, ix], l2[iy, ix], c, xp.zeros_like(c))
            l1[iy, ix], l2[iy, ix] = a1, a2
    for region in parts:
        if _include(region):
            image = _single(geom, region, method, be, complement=False)
            l1, l2 = _merge_image(xp, l1, l2, image, comp_of[id(region)])
    excl_items = [r for r in items if not _include(r)]
    zero = np.int32(0)
    if excl_items:
        # ds9 -shapes carve holes in the regions' union only, never in catalog
        # sources (ids 1..E, all below the regions' ids)
        holes = (_bit_image(geom, excl_items, method, be, None) & 2) != 0
        if not includes:
            # only exclusions: the implicit include region is the field on the sky
            lon, _ = geom.get_coord(backend=be)
            field = xp.isfinite(lon) & ~holes
            l1, l2 = _merge_image(xp, l1, l2, field, first_comp)
        else:
            last_source = np.int32(first_comp - 1)
            l1 = xp.where(holes & (l1 > last_source), zero, l1)
            l2 = xp.where(holes & (l2 > last_source), zero, l2)
    return l1 > 0, l1, l2


def _corner_comps(table, comp):
    """Components of the pixel-kind rows that contain pixel (-1, -1) (gammapy's
    test point for pixels without sky coordinates), ascending."""
    out = set()
    for m in np.flatnonzero(np.isin(table.kind, rc.PIXEL_KINDS)):
        p = [np.array([[v]]) for v in table.params[m]]
        pix = {"x": np.array([[-1.0]]), "y": np.array([[-1.0]])}
        if _eval_kind(int(table.kind[m]), p, table, np.array([m]), pix)[0, 0]:
            out.add(int(comp[m]))
    return sorted(out)


# ----------------------------------------------------------------------------- significance


def blob_provenance(geom, values, excluded, be, connectivity, rule, labels=None):
    """Provenance of a significance mask: one component per connected blob of
    ``excluded`` (each plane apart), ordered by decreasing peak ``values``.

    ``values`` is the significance array, ``excluded`` the boolean exclusion;
    ``labels`` optionally ``(label array, count)`` of the blobs, already computed
    (0 outside ``excluded``; ids need not be contiguous).  Names: ``blob N: peak
    S sigma at (lon, lat)``.  O(N) on the CPU (a scatter maximum), a sort on the GPU."""
    from ..backend import to_host  # noqa: PLC0415
    from ._labels import _label_stack  # noqa: PLC0415

    xp = be.xp
    lab, n = labels if labels is not None else _label_stack(be, excluded, connectivity)
    if n == 0:
        z = xp.zeros(excluded.shape, np.int32)
        return MaskProvenance(geom, z, z.copy(), [])
    flat = lab.reshape(-1)
    if be.name == "numpy":  # on the excluded pixels only (never NaN: NaN is never excluded)
        ex = np.flatnonzero(excluded.reshape(-1))
        lab_ex, val_ex = flat[ex], values.reshape(-1)[ex]
        peak = np.full(n + 1, -np.inf)
        np.maximum.at(peak, lab_ex, val_ex)
        hit = val_ex == peak[lab_ex]
        peak_lab, first = np.unique(lab_ex[hit], return_index=True)
        host = np.stack([peak_lab.astype(np.float64), ex[hit][first].astype(np.float64), peak[peak_lab]])
    else:  # a device sort by (label, value); each label's run ends at its peak
        vals = xp.where(excluded, values, -np.inf).reshape(-1)
        order = xp.lexsort(xp.stack([vals, flat.astype(np.float64)]))
        lab_sorted = flat[order]
        last = xp.flatnonzero(xp.concatenate([lab_sorted[1:] != lab_sorted[:-1], xp.ones(1, dtype=bool)]))
        peak_at = order[last]
        host = to_host(xp.stack([lab_sorted[last].astype(np.float64), peak_at.astype(np.float64), vals[peak_at]]))
    keep = host[0] > 0
    ids, at, peak = host[0][keep].astype(np.int64), host[1][keep].astype(np.int64), host[2][keep]
    rank = np.argsort(-peak, kind="stable")  # strongest first
    new_id = np.zeros(n + 1, np.int32)
    new_id[ids[rank]] = np.arange(1, len(rank) + 1, dtype=np.int32)
    relabel = to_device(new_id, be)
    label = relabel[lab].astype(np.int32, copy=False)
    shape = excluded.shape
    ny, nx = shape[-2:]
    iy, ix = (at % (ny * nx)) // nx, at % nx
    plane = at // (ny * nx)
    lon, lat = geom.to_image().pix_to_coord((ix.astype(float), iy.astype(float)))
    lon, lat = np.asarray(lon, float), np.asarray(lat, float)
    rows = []
    for k, j in enumerate(rank):
        where = f"({lon[j]:.3f}, {lat[j]:.3f})"
        name = f"blob {k + 1}: peak {peak[j]:.2f} sigma at {where}"
        if len(shape) > 2:
            name += f", plane {int(plane[j])}"
        rows.append(dict(kind="significance blob", name=name,
                         rule=rule, lon=float(lon[j]), lat=float(lat[j])))
    return MaskProvenance(geom, label, xp.zeros_like(label), rows)


# ----------------------------------------------------------------------------- morphology


def _merge_into(xp, f, s, b1, b2):
    """In place: (f, s) <- the two smallest distinct of {f, s} | {b1, b2}; "none" is
    the largest int32 (every argument a same-shape view, each pair ascending)."""
    first, second = two_smallest(xp, f, s, b1, b2)
    f[...] = first
    s[...] = second


def _shifted(a, dy, dx):
    """(destination, source) slices of the last two axes moving ``a`` by (dy, dx)."""
    ny, nx = a.shape[-2:]
    ys, yd = (slice(0, ny - dy), slice(dy, ny)) if dy >= 0 else (slice(-dy, ny), slice(0, ny + dy))
    xs, xd = (slice(0, nx - dx), slice(dx, nx)) if dx >= 0 else (slice(-dx, nx), slice(0, nx + dx))
    return (Ellipsis, yd, xd), (Ellipsis, ys, xs)


def _window_merge(xp, a1, a2, offsets_y, half_widths):
    """Two smallest labels over a footprint made of rows: row ``dy`` spans
    ``|dx| <= half_widths[dy]``.  Horizontal windows grow by one pixel each side
    per step (two in-place merges of shifted views); each row of the footprint is
    merged into the output, shifted, as soon as its width is reached.  Inputs and
    outputs use 0 for "none"; the work uses the largest int32."""
    none = NO_LABEL
    a1 = xp.where(a1 > 0, a1, none).astype(np.int32, copy=False)
    a2 = xp.where(a2 > 0, a2, none).astype(np.int32, copy=False)
    f, s = a1.copy(), a2.copy()
    out1 = xp.full(a1.shape, none, dtype=np.int32)
    out2 = out1.copy()
    ny, nx = a1.shape[-2:]
    rows = {}
    for dy, h in zip(offsets_y, half_widths):
        if h >= 0 and abs(dy) < ny:
            rows.setdefault(h, []).append(dy)
    for h in range(0, max(rows, default=-1) + 1):
        if h > 0:
            for dx in (-h, h):
                if abs(dx) < nx:
                    dst, src = _shifted(a1, 0, dx)
                    _merge_into(xp, f[dst], s[dst], a1[src], a2[src])
        for dy in rows.get(h, ()):
            dst, src = _shifted(f, dy, 0)
            _merge_into(xp, out1[dst], out2[dst], f[src], s[src])
    zero = np.int32(0)
    return xp.where(out1 == none, zero, out1), xp.where(out2 == none, zero, out2)


def _window_extreme(xp, a, offsets_y, half_widths, op, fill):
    """``op`` (minimum or maximum) of ``a`` over the footprint of rows (see
    :func:`_window_merge`), ``fill`` entering at the edges: one in-place ``op`` of
    shifted views per step."""
    ny, nx = a.shape[-2:]
    rows = {}
    for dy, h in zip(offsets_y, half_widths):
        if h >= 0 and abs(dy) < ny:
            rows.setdefault(h, []).append(dy)
    run = a.copy()
    out = xp.full(a.shape, fill, dtype=a.dtype)
    for h in range(0, max(rows, default=-1) + 1):
        if 0 < h < nx:
            for dx in (-h, h):
                dst, src = _shifted(a, 0, dx)
                op(run[dst], a[src], out=run[dst])
        for dy in rows.get(h, ()):
            dst, src = _shifted(run, dy, 0)
            op(out[dst], run[src], out=out[dst])
    return out


def _window_pairs(xp, a1, a2, fp_array):
    """The two smallest labels over the footprint ``fp_array`` (0 = none), exact.

    The smallest is a window minimum; a second exists only where the window's
    largest label exceeds it, which is where two components come within the
    footprint of each other: there (usually few pixels) the pairs are merged offset
    by offset; where that set is large, the full pairwise window merge runs instead."""
    dys, hs = _row_spans(fp_array)
    none = NO_LABEL
    big1 = xp.where(a1 > 0, a1, none).astype(np.int32, copy=False)
    first = _window_extreme(xp, big1, dys, hs, xp.minimum, none)
    top = _window_extreme(xp, xp.maximum(a1, a2).astype(np.int32, copy=False), dys, hs, xp.maximum, np.int32(0))
    need = xp.flatnonzero(((first < none) & (top > first)).reshape(-1))
    offsets = np.argwhere(fp_array) - np.array(fp_array.shape) // 2
    merges = 2 * max(hs) + len(hs)  # the window merge's passes over the whole map
    if need.size * len(offsets) > a1.size * merges:  # dense overlaps: the window merge is cheaper
        return _window_merge(xp, a1, a2, dys, hs)
    zero = np.int32(0)
    g1 = xp.where(first < none, first, zero)
    g2 = xp.zeros_like(g1)
    if need.size:
        ny, nx = a1.shape[-2:]
        plane, rest = need // (ny * nx), need % (ny * nx)
        iy, ix = rest // nx, rest % nx
        f = xp.full(need.shape, none, dtype=np.int32)
        s = f.copy()
        flat1, flat2 = big1.reshape(-1), xp.where(a2 > 0, a2, none).astype(np.int32, copy=False).reshape(-1)
        for dy, dx in offsets:
            y, x = iy + int(dy), ix + int(dx)
            ok = (y >= 0) & (y < ny) & (x >= 0) & (x < nx)
            at = plane * (ny * nx) + xp.clip(y, 0, ny - 1) * nx + xp.clip(x, 0, nx - 1)
            b1 = xp.where(ok, flat1[at], none)
            b2 = xp.where(ok, flat2[at], none)
            _merge_into(xp, f, s, b1, b2)
        g2.reshape(-1)[need] = xp.where(s < none, s, zero)
    return g1, g2


def _row_spans(fp_array):
    """(dy offsets, half widths) of a symmetric footprint's rows (-1: empty row)."""
    fy, fx = fp_array.shape
    cy, cx = fy // 2, fx // 2
    dys, hs = [], []
    for r in range(fy):
        cols = np.flatnonzero(fp_array[r])
        dys.append(r - cy)
        hs.append(int(max(cx - cols.min(), cols.max() - cx)) if len(cols) else -1)
    return dys, hs


def grow_provenance(prov, covered_after, fp_array, detail):
    """Provenance after an exclusion grew (``binary_erode`` of the usable mask) by the
    footprint ``fp_array``: pixels already excluded keep their components (with the
    second updated from the grown neighbours); each new pixel is labelled with a
    "dilation ring" of the first component whose growth reached it.  Exact for
    footprints whose rows are contiguous and symmetric (disks, boxes).  One ring
    row per component whose growth labels a pixel."""
    from ..backend import to_host  # noqa: PLC0415

    be = prov.backend
    xp = be.xp
    n = prov.n_components
    fp_array = np.asarray(fp_array, bool)
    # rings grow as their parents: a ring of a ring is one more ring of the parent
    parents = np.asarray(prov._cols["parent"], np.int32)
    if (parents > 0).any():
        base = np.where(parents > 0, parents, np.arange(1, n + 1, dtype=np.int32)).astype(np.int32)
        lut = to_device(np.concatenate([[0], base]).astype(np.int32), be)
        own = lut[prov.label]
        p1, p2 = merge_two_smallest(xp, own, xp.zeros_like(own), lut[prov.label2], xp.zeros_like(own))
    else:
        own, p1, p2 = prov.label, prov.label, prov.label2
    g1, g2 = _window_pairs(xp, p1, p2, fp_array)
    old = prov.label > 0
    new = covered_after & ~old
    # already excluded pixels alone so far: the smallest other component reaching them
    o2 = xp.where(g1 == own, g2, g1)
    lonely = old & (prov.label2 == 0)
    # the ring rows in use, numbered n + 1, n + 2, ... in parent order
    reach = xp.concatenate([g1[new], g2[new], o2[lonely]])
    used = to_host(xp.bincount(reach, minlength=n + 1)) > 0 if reach.size else np.zeros(n + 1, bool)
    used[0] = False
    ring_parent = np.flatnonzero(used)
    ring_lut = np.zeros(n + 1, np.int32)
    ring_lut[ring_parent] = n + 1 + np.arange(len(ring_parent), dtype=np.int32)
    ring = to_device(ring_lut, be)
    zero = np.int32(0)
    label = xp.where(old, prov.label, xp.where(new, ring[g1], zero))
    label2 = xp.where(old, xp.where(lonely, ring[o2], prov.label2), xp.where(new, ring[g2], zero))
    rows = []
    for k in ring_parent - 1:
        name = str(prov._cols["name"][k])
        rows.append(dict(kind="dilation ring", name=f"ring of {name}"[:200], rule=detail,
                         lon=float(prov._cols["lon"][k]), lat=float(prov._cols["lat"][k]), parent=int(k) + 1))
    return prov.with_components(label.astype(np.int32, copy=False), label2.astype(np.int32, copy=False), rows)


def carry(template, out, detail, fp_array=None):
    """Attach to ``out`` (the Map an operation returned) the provenance of
    ``template`` (its input) carried through the operation: grown by ``fp_array``
    when the exclusion grew, restricted to what ``out`` still excludes, and any
    pixel excluded without a cause (map-edge margins, filled islands) given to one
    component of kind "mask" named ``detail``.  Returns ``out``."""
    prov = getattr(template, "provenance", None)
    if prov is None or not hasattr(out, "_explained"):
        return out
    from ..backend import to_host  # noqa: PLC0415

    xp = prov.backend.xp
    covered = ~out.data
    if fp_array is not None:
        prov = grow_provenance(prov, covered, fp_array, detail)
    prov = prov.restrict(covered)
    orphan = covered & (prov.label == 0)
    if int(to_host(xp.count_nonzero(orphan))):
        c = np.int32(prov.n_components + 1)
        label = xp.where(orphan, c, prov.label)
        prov = prov.with_components(label, prov.label2, [dict(kind="mask", name=detail, rule=detail)])
    return out._explained(prov)
