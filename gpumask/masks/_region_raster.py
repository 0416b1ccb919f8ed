"""Rasterise a :class:`~gpumask.masks._region_compile.ShapeTable` onto a map's pixels.

The algorithm, shared by the NumPy path and the CUDA kernel
(``kernels/regions.cu``):

1. The image is cut into ``TILE x TILE`` pixel tiles.
2. On the host, every shape is *binned* to the tiles it may touch: pixel-space
   shapes through their pixel bounding box; sky shapes through bounding caps on
   the sphere - each tile's cap (centre and angular radius of its pixel centres,
   cached per geometry) against the shape's cap, found with a k-d tree.  Caps
   are projection independent, so poles, the longitude wrap and all-sky maps
   need no special cases.  The result is a CSR list: active tiles, and for each
   the shapes to test there.
3. Each active tile tests its pixels against its shapes only (one CUDA thread
   block per tile; a NumPy batch of tiles on the CPU).  Cost therefore grows with
   the pixels the shapes cover, not with shapes x map pixels.

The output is a uint8 image: bit 0 = inside an included shape, bit 1 = inside an
excluded (ds9 ``-shape``) one.  Pixels without sky coordinates (outside an
all-sky projection's domain) are never inside; for ``method="pixel"`` they get
the bits of the shapes containing pixel ``(-1, -1)``, where gammapy 2.1 tests
them (its ``get_idx`` maps them to index -1).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

import numpy as np

from .._kernels import KernelBuild, get_kernel, register_builds
from .._progress import progress_bar
from ..backend import to_device
from ..sky.projections import SUPPORTED_PROJECTIONS, projection_defines
from ..sky.provenance import NO_LABEL, two_smallest
from ._region_compile import (
    FLAG_EXCLUDE,
    KIND_CAP,
    KIND_PIX_ANNULUS,
    KIND_PIX_CIRCLE,
    KIND_PIX_ELLIPSE,
    KIND_PIX_POLYGON,
    KIND_PIX_RECT,
    KIND_SKY_BOX,
    KIND_SKY_ELLIPSE,
    KIND_SKY_POLYGON,
    SKY_KINDS,
    ShapeTable,
    unit_xyz,
)

TILE = 32  # pixels per tile side; kernels/regions.cu is built for this value
SUPER = 8  # tiles per super-tile side (binning only)
_CHUNK_TILES = 96  # tiles evaluated together on the CPU (bounds temporary memory)
_CHUNK_PAIRS = 1536  # (tile, shape) pairs evaluated together on the CPU
_CAPS_CACHE: OrderedDict = OrderedDict()
_CAPS_CACHE_SIZE = 8
_CAPS_LOCK = threading.RLock()


# ----------------------------------------------------------------------------- tiles


def tile_counts(geom):
    nx, ny = geom.npix
    return -(-nx // TILE), -(-ny // TILE)


def _unit(lon_deg, lat_deg):
    """Unit vectors (..., 3) of lon/lat in degrees (NaN stays NaN)."""
    return unit_xyz(np.deg2rad(lon_deg), np.deg2rad(lat_deg))


def _chord_to_angle(chord2):
    return 2.0 * np.arcsin(np.minimum(np.sqrt(np.maximum(chord2, 0.0)) / 2.0, 1.0))


class _FieldCaps:
    """Bounding caps of one field's tiles, built lazily in two levels.

    Level 1: super-tiles of ``SUPER x SUPER`` tiles, all computed at once (cheap:
    a 1/64 fraction of the pixels).  Level 2: the 32x32-pixel tiles, computed
    only inside the super-tiles that some shape reaches, and kept.  So the first
    mask on a new field costs its border samples plus what its shapes cover.
    """

    def __init__(self, geom):
        self.geom = geom
        self.ntx, self.nty = tile_counts(geom)
        self.nsx = -(-self.ntx // SUPER)
        self.nsy = -(-self.nty // SUPER)
        sy, sx = np.divmod(np.arange(self.nsx * self.nsy), self.nsx)
        n = self.ntx * self.nty
        self.centre = np.full((n, 3), np.nan)
        self.radius = np.full(n, np.nan)
        self.alive = np.zeros(n, bool)
        self.done = np.zeros(self.nsx * self.nsy, bool)
        centre, radius, alive = _caps_of_tiles(geom, TILE * SUPER, sx, sy, exact_edges=False)
        # super-tiles at the edge of the projection's domain: enclose their fine caps
        edge = np.flatnonzero(alive & (radius >= math.pi))
        self._fine(edge)
        for t in edge:
            tiles = self.tiles_of_super([t]).ravel()
            tiles = tiles[(tiles >= 0)]
            tiles = tiles[self.alive[tiles]]
            if len(tiles) == 0:
                alive[t] = False
                continue
            c = self.centre[tiles].sum(axis=0)
            norm = np.linalg.norm(c)
            if norm < 1e-9:
                continue  # keep the whole sphere
            c = c / norm
            spread = _chord_to_angle(np.sum((self.centre[tiles] - c) ** 2, axis=1))
            r = float(np.max(spread + self.radius[tiles])) + 1e-9
            if r < math.pi / 2:
                centre[t], radius[t] = c, r
        self.super = (centre, radius, alive)

    def tiles_of_super(self, supers):
        """(len(supers), SUPER**2) tile ids, -1 where off the image."""
        sy, sx = np.divmod(np.asarray(supers, np.int64), self.nsx)
        oy, ox = np.divmod(np.arange(SUPER * SUPER), SUPER)
        tx = sx[:, None] * SUPER + ox[None, :]
        ty = sy[:, None] * SUPER + oy[None, :]
        return np.where((tx < self.ntx) & (ty < self.nty), ty * self.ntx + tx, -1)

    def fine(self, supers):
        """Fine caps (centre, radius, alive) with those of ``supers`` computed."""
        with _CAPS_LOCK:
            return self._fine(supers)

    def _fine(self, supers):
        todo = np.unique(np.asarray(supers, np.int64))
        todo = todo[~self.done[todo]]
        if len(todo):
            tiles = self.tiles_of_super(todo).ravel()
            tiles = tiles[tiles >= 0]
            ty, tx = np.divmod(tiles, self.ntx)
            c, r, ok = _caps_of_tiles(self.geom, TILE, tx, ty, exact_edges=True)
            self.centre[tiles], self.radius[tiles], self.alive[tiles] = c, r, ok
            self.done[todo] = True
        return self.centre, self.radius, self.alive


def _caps_of_tiles(geom, size, tx, ty, exact_edges):
    """Bounding caps ``(centre (n, 3), radius (n,) rad, alive (n,))`` of the
    ``size x size``-pixel tiles ``(tx, ty)``.

    The farthest pixel centre from the tile centre lies on the tile's border for
    any smooth projection (a distance on the sphere has no interior maximum short
    of the antipode), so only border pixels are projected.  A tile with border
    pixels off the sky (all-sky edges) is projected whole when ``exact_edges``,
    else given the whole sphere; so is a tile wider than a hemisphere, and one
    that holds the antipode of its centre (the border argument's one exception,
    possible where a projection shows the whole sphere, e.g. coarse STG).
    """
    nx, ny = geom.npix
    tx = np.asarray(tx, np.int64)
    ty = np.asarray(ty, np.int64)
    x0, y0 = tx * size, ty * size
    x1 = np.minimum(x0 + size - 1, nx - 1)
    y1 = np.minimum(y0 + size - 1, ny - 1)
    k = np.arange(size)
    along_x = np.minimum(x0[:, None] + k, x1[:, None])
    along_y = np.minimum(y0[:, None] + k, y1[:, None])
    bx = np.concatenate([along_x, along_x, np.repeat(x0[:, None], size, 1),
                         np.repeat(x1[:, None], size, 1)], axis=1).astype(float)
    by = np.concatenate([np.repeat(y0[:, None], size, 1), np.repeat(y1[:, None], size, 1),
                         along_y, along_y], axis=1).astype(float)
    border = _unit(*geom.pix_to_coord((bx, by)))  # (n, 4 size, 3)
    centre = _unit(*geom.pix_to_coord(((x0 + x1) / 2.0, (y0 + y1) / 2.0)))  # (n, 3)
    complete = np.all(np.isfinite(border[..., 0]), axis=1) & np.all(np.isfinite(centre), axis=1)
    with np.errstate(invalid="ignore"):
        d2 = np.sum((border - centre[:, None, :]) ** 2, axis=2)
    radius = _chord_to_angle(np.max(np.where(np.isfinite(d2), d2, -1.0), axis=1))
    # the border argument fails if the tile holds the antipode of its centre
    # (projections of the whole sphere with coarse pixels, e.g. STG): whole sphere
    anti = -centre[complete]
    ax, ay = geom.coord_to_pix((np.rad2deg(np.arctan2(anti[:, 1], anti[:, 0])) % 360.0,
                                np.rad2deg(np.arcsin(np.clip(anti[:, 2], -1, 1)))))
    with np.errstate(invalid="ignore"):
        held = ((ax >= x0[complete] - 1) & (ax <= x1[complete] + 1)
                & (ay >= y0[complete] - 1) & (ay <= y1[complete] + 1))
    radius[np.flatnonzero(complete)[held]] = math.pi
    alive = complete.copy()
    partial = ~complete
    if geom.device_projection:
        # the projections gpumask knows have convex domains in pixel space: a tile
        # whose border and centre are all off the sky, while another tile has sky on
        # its border, cannot hold sky pixels (a convex set meeting its inside but
        # not its border would lie wholly inside it)
        seen = np.any(np.isfinite(border[..., 0]), axis=1) | np.isfinite(centre[:, 0])
        if seen.any():
            dead = ~seen
            centre[dead], radius[dead] = np.nan, np.nan
            partial &= ~dead
    partial = np.flatnonzero(partial)
    if len(partial) and not exact_edges:
        centre[partial], radius[partial], alive[partial] = (0.0, 0.0, 1.0), math.pi, True
    elif len(partial):
        # project these tiles whole (all at once): cap of their pixels on the sky
        oy, ox = np.divmod(np.arange(size * size), size)
        px = np.minimum(x0[partial, None] + ox, x1[partial, None]).astype(float)
        py = np.minimum(y0[partial, None] + oy, y1[partial, None]).astype(float)
        v = _unit(*geom.pix_to_coord((px, py)))  # (m, size^2, 3), NaN off the sky
        valid = np.isfinite(v[..., 0])
        total = np.where(valid[..., None], v, 0.0).sum(axis=1)
        norm = np.linalg.norm(total, axis=1)
        c = total / np.where(norm > 1e-12, norm, 1.0)[:, None]
        with np.errstate(invalid="ignore"):
            d2 = np.sum((v - c[:, None, :]) ** 2, axis=2)
        r = _chord_to_angle(np.max(np.where(valid, d2, -1.0), axis=1))
        any_valid = valid.any(axis=1)
        r = np.where(norm > 1e-12, r, math.pi)
        centre[partial] = np.where(any_valid[:, None], c, np.nan)
        radius[partial] = np.where(any_valid, r, np.nan)
        alive[partial] = any_valid
    # beyond a quarter turn the border argument needs care: take the whole sphere
    radius = np.where(radius > math.pi / 2, math.pi, radius + 1e-9 + 1e-12 * radius)
    return centre, radius, alive


def field_caps(geom) -> _FieldCaps:
    """The (cached) tile caps of a field, keyed on its WCS and image size: repeated
    masks on one field, even through new WcsGeom objects, pay once."""
    key = (geom.wcs.to_header_string(relax=True), tuple(geom.npix))
    with _CAPS_LOCK:  # threads (dask workers) may mask the same field at once
        caps = _CAPS_CACHE.get(key)
        if caps is None:
            caps = _CAPS_CACHE[key] = _FieldCaps(geom)
            while len(_CAPS_CACHE) > _CAPS_CACHE_SIZE:
                _CAPS_CACHE.popitem(last=False)
        else:
            _CAPS_CACHE.move_to_end(key)
        return caps


def tile_caps(geom):
    """Caps of every tile: ``(centres (nt, 3), radius (nt,) rad, alive (nt,))``,
    tiles in row-major (ty, tx) order (computes them all; binning only computes
    the tiles it needs)."""
    caps = field_caps(geom)
    return caps.fine(np.arange(caps.nsx * caps.nsy))


# ----------------------------------------------------------------------------- binning


def _pairs_from_bbox(table: ShapeTable, idx, geom):
    nx, ny = geom.npix
    bbox = table.bbox[idx]
    with np.errstate(invalid="ignore"):
        ok = ~np.isnan(bbox).any(axis=1)
        ix0 = np.maximum(np.ceil(np.where(ok, bbox[:, 0], 0)), 0)
        ix1 = np.minimum(np.floor(np.where(ok, bbox[:, 1], -1)), nx - 1)
        iy0 = np.maximum(np.ceil(np.where(ok, bbox[:, 2], 0)), 0)
        iy1 = np.minimum(np.floor(np.where(ok, bbox[:, 3], -1)), ny - 1)
    ok &= (ix0 <= ix1) & (iy0 <= iy1)
    idx = idx[ok]
    tx0 = (ix0[ok] // TILE).astype(np.int64)
    tx1 = (ix1[ok] // TILE).astype(np.int64)
    ty0 = (iy0[ok] // TILE).astype(np.int64)
    ty1 = (iy1[ok] // TILE).astype(np.int64)
    wide = tx1 - tx0 + 1
    counts = wide * (ty1 - ty0 + 1)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    owner = np.repeat(np.arange(len(idx)), counts)
    k = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    tx = tx0[owner] + k % wide[owner]
    ty = ty0[owner] + k // wide[owner]
    ntx, _ = tile_counts(geom)
    return ty * ntx + tx, idx[owner]


def _cap_pairs(centres, radii, caps, reach_extra):
    """(cap index, item index) pairs whose caps overlap, via a k-d tree on the
    item centres.  ``caps`` (m, 4) are the shapes' caps."""
    from scipy.spatial import cKDTree  # noqa: PLC0415 - scipy import is slow

    tree = cKDTree(centres)
    reach = np.minimum(caps[:, 3] + reach_extra, math.pi)
    query_r = 2.0 * np.sin(reach / 2.0) * (1 + 1e-12) + 1e-12
    found = tree.query_ball_point(caps[:, :3], query_r)
    counts = np.fromiter((len(f) for f in found), dtype=np.int64, count=len(found))
    if counts.sum() == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    items = np.concatenate([np.asarray(f, dtype=np.int64) for f in found])
    owner = np.repeat(np.arange(len(caps)), counts)
    angle = _chord_to_angle(np.sum((centres[items] - caps[owner, :3]) ** 2, axis=1))
    keep = angle <= radii[items] + caps[owner, 3]
    return owner[keep], items[keep]


def _pairs_from_caps(table: ShapeTable, idx, geom):
    """(tile, shape) pairs of sky shapes: super-tile caps first, then the fine
    caps of the tiles inside the super-tiles that were hit."""
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    if len(idx) == 0:
        return empty
    field = field_caps(geom)
    s_centre, s_radius, s_alive = field.super
    live = np.flatnonzero(s_alive)
    if len(live) == 0:
        return empty
    caps = table.cap[idx]
    # whole-sphere super-tiles (coarse maps) meet every shape; the rest go by tree
    wide = live[s_radius[live] >= math.pi]
    live = live[s_radius[live] < math.pi]
    owner, hit = np.zeros(0, np.int64), np.zeros(0, np.int64)
    if len(live):
        owner, hit = _cap_pairs(s_centre[live], s_radius[live], caps, s_radius[live].max())
        hit = live[hit]
    if len(wide):
        owner = np.concatenate([owner, np.repeat(np.arange(len(idx)), len(wide))])
        hit = np.concatenate([hit, np.tile(wide, len(idx))])
    if len(owner) == 0:
        return empty
    supers = hit
    centre, radius, alive = field.fine(supers)
    tiles = field.tiles_of_super(supers)  # (pairs, SUPER**2)
    owner = np.repeat(owner, tiles.shape[1])
    tiles = tiles.ravel()
    ok = tiles >= 0
    owner, tiles = owner[ok], tiles[ok]
    ok = alive[tiles]
    owner, tiles = owner[ok], tiles[ok]
    angle = _chord_to_angle(np.sum((centre[tiles] - caps[owner, :3]) ** 2, axis=1))
    keep = angle <= radius[tiles] + caps[owner, 3]
    return tiles[keep], idx[owner[keep]]


def bin_shapes(geom, table: ShapeTable):
    """CSR binning: ``(tiles, starts, members)`` - the active tile ids (ascending),
    offsets into ``members`` (len(tiles) + 1) and the shape indices per tile."""
    is_sky = np.isin(table.kind, SKY_KINDS)
    t1, r1 = _pairs_from_bbox(table, np.flatnonzero(~is_sky), geom)
    t2, r2 = _pairs_from_caps(table, np.flatnonzero(is_sky), geom)
    tiles = np.concatenate([t1, t2])
    regions = np.concatenate([r1, r2])
    order = np.lexsort((regions, tiles))
    tiles, regions = tiles[order], regions[order]
    active, starts = np.unique(tiles, return_index=True)
    starts = np.append(starts, len(tiles)).astype(np.int64)
    return active.astype(np.int64), starts, regions.astype(np.int64)


# ----------------------------------------------------------------------------- numpy evaluation


def _pnpoly(x, y, vx, vy):
    """regions 0.11's even-odd crossing test, same floating-point expression."""
    result = np.zeros(np.broadcast_shapes(x.shape, y.shape), dtype=bool)
    n = len(vx)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(n):
            j = (i + n - 1) % n
            straddle = (vy[i] > y) != (vy[j] > y)
            cross = x < (vx[j] - vx[i]) * (y - vy[i]) / (vy[j] - vy[i]) + vx[i]
            result ^= straddle & cross
    return result


def _eval_kind(kind, p, table, members, pix):
    """Inside test of ``len(members)`` shapes of one kind on pixel arrays ``pix``
    (each (P, TILE*TILE)); ``p`` holds the shapes' parameter rows as (P, 1)
    columns."""
    if kind in (KIND_PIX_CIRCLE, KIND_PIX_ANNULUS):
        d = np.hypot(pix["x"] - p[0], pix["y"] - p[1])
        if kind == KIND_PIX_CIRCLE:
            return d < p[2]
        return (d < p[2]) != (d < p[3])
    if kind in (KIND_PIX_ELLIPSE, KIND_PIX_RECT):
        dx = pix["x"] - p[0]
        dy = pix["y"] - p[1]
        cos_a, sin_a, width, height = p[2], p[3], p[4], p[5]
        if kind == KIND_PIX_ELLIPSE:
            return (2 * (cos_a * dx + sin_a * dy) / width) ** 2 + (
                2 * (sin_a * dx - cos_a * dy) / height
            ) ** 2 <= 1.0
        dx_rot = cos_a * dx + sin_a * dy
        dy_rot = sin_a * dx - cos_a * dy
        return (np.abs(dx_rot) < width * 0.5) & (np.abs(dy_rot) < height * 0.5)
    if kind == KIND_PIX_POLYGON:
        out = np.zeros(pix["x"].shape, bool)
        for k, m in enumerate(members):
            first, count = int(table.params[m, 0]), int(table.params[m, 1])
            sl = slice(first, first + count)
            out[k] = _pnpoly(pix["x"][k], pix["y"][k], table.vx[sl], table.vy[sl])
        return out
    px, py, pz = pix["px"], pix["py"], pix["pz"]
    if kind == KIND_CAP:
        d2 = (px - p[0]) ** 2 + (py - p[1]) ** 2 + (pz - p[2]) ** 2
        return (d2 >= p[3]) & (d2 <= p[4])
    w = px * p[0] + py * p[1] + pz * p[2]
    front = w > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (px * p[3] + py * p[4] + pz * p[5]) / w
        b = (px * p[6] + py * p[7] + pz * p[8]) / w
    if kind == KIND_SKY_ELLIPSE:
        return front & ((a * p[9]) ** 2 + (b * p[10]) ** 2 <= 1.0)
    if kind == KIND_SKY_BOX:
        return front & (np.abs(a) <= p[9]) & (np.abs(b) <= p[10])
    if kind == KIND_SKY_POLYGON:
        out = np.zeros(px.shape, bool)
        for k, m in enumerate(members):
            first, count = int(table.params[m, 9]), int(table.params[m, 10])
            sl = slice(first, first + count)
            out[k] = _pnpoly(a[k], b[k], table.vx[sl], table.vy[sl])
        return front & out
    raise ValueError(f"unknown shape kind {kind}")


def _tile_pixels(geom, tiles, need_sky):
    """Pixel coordinates (and unit vectors) of whole tiles; NaN off the image and
    off the sky."""
    nx, ny = geom.npix
    ntx, _ = tile_counts(geom)
    ty, tx = np.divmod(tiles, ntx)
    jj = np.tile(np.arange(TILE, dtype=float), TILE)
    ii = np.repeat(np.arange(TILE, dtype=float), TILE)
    x = (tx * TILE)[:, None] + jj[None, :]
    y = (ty * TILE)[:, None] + ii[None, :]
    in_image = (x < nx) & (y < ny)
    lon, lat = geom.pix_to_coord((np.where(in_image, x, 0.0), np.where(in_image, y, 0.0)))
    valid = in_image & np.isfinite(lon) & np.isfinite(lat)
    pix = {"x": np.where(valid, x, np.nan), "y": np.where(valid, y, np.nan)}
    if need_sky:
        v = _unit(np.where(valid, lon, np.nan), np.where(valid, lat, np.nan))
        pix["px"], pix["py"], pix["pz"] = v[..., 0], v[..., 1], v[..., 2]
    return pix, valid


def rasterise_numpy(geom, table: ShapeTable):
    """The CPU implementation (and the oracle of the CUDA kernel): uint8 image
    with bit 0 = included shape, bit 1 = excluded shape."""
    nx, ny = geom.npix
    ntx, nty = tile_counts(geom)
    image = np.zeros((nty * TILE, ntx * TILE), dtype=np.uint8)
    if len(table) == 0:
        return np.zeros((ny, nx), dtype=np.uint8)
    tiles, starts, members = bin_shapes(geom, table)
    bits = np.where(table.flags & FLAG_EXCLUDE, 2, 1).astype(np.uint8)
    need_sky = table.has_sky
    view = image.reshape(nty, TILE, ntx, TILE)
    with progress_bar(len(tiles), "rasterising shapes", unit="tile") as bar:
        for c0 in range(0, len(tiles), _CHUNK_TILES):
            _rasterise_chunk(geom, table, tiles, starts, members, bits, need_sky, view, c0, ntx)
            bar.update(min(_CHUNK_TILES, len(tiles) - c0))
    return np.ascontiguousarray(image[:ny, :nx])


def _chunk_parts(geom, table, tiles, starts, members, need_sky, c0):
    """The tiles ``c0 : c0 + _CHUNK_TILES`` and, part by part (one shape kind, at
    most ``_CHUNK_PAIRS`` pairs), ``(where, m, inside)``: each pair's tile within the
    chunk (ascending), its shape row and its inside test on the tile's pixels."""
    chunk = tiles[c0 : c0 + _CHUNK_TILES]
    pix, _ = _tile_pixels(geom, chunk, need_sky)
    lo, hi = starts[c0], starts[min(c0 + _CHUNK_TILES, len(tiles))]
    local = np.repeat(np.arange(len(chunk)), np.diff(starts[c0 : c0 + len(chunk) + 1]))
    shapes = members[lo:hi]
    kinds = table.kind[shapes]

    def parts():
        for kind in np.unique(kinds):
            sel = np.flatnonzero(kinds == kind)
            for s0 in range(0, len(sel), _CHUNK_PAIRS):
                part = sel[s0 : s0 + _CHUNK_PAIRS]
                m = shapes[part]
                where = local[part]
                p = [table.params[m, k][:, None] for k in range(table.params.shape[1])]
                keys = ("px", "py", "pz") if kind in SKY_KINDS else ("x", "y")
                sub = {key: pix[key][where] for key in keys}
                yield where, m, _eval_kind(int(kind), p, table, m, sub)

    return chunk, parts()


def _rasterise_chunk(geom, table, tiles, starts, members, bits, need_sky, view, c0, ntx):
    """Rasterise the shapes of tiles ``c0 : c0 + _CHUNK_TILES`` into ``view``."""
    chunk, parts = _chunk_parts(geom, table, tiles, starts, members, need_sky, c0)
    acc = np.zeros((len(chunk), TILE * TILE), dtype=np.uint8)
    for where, m, inside in parts:
        value = inside.astype(np.uint8) * bits[m][:, None]
        # pairs are sorted by tile: OR-reduce each tile's run, then merge
        run_start = np.flatnonzero(np.r_[True, where[1:] != where[:-1]])
        acc[where[run_start]] |= np.bitwise_or.reduceat(value, run_start, axis=0)
    ty, tx = np.divmod(chunk, ntx)
    view[ty, :, tx, :] = acc.reshape(len(chunk), TILE, TILE)


# ----------------------------------------------------------------------------- labels


def _two_smallest_runs(values, run_start, run_of):
    """Per run of rows (pairs of one tile): the two smallest distinct values of each
    pixel column (``NO_LABEL`` where none)."""
    first = np.minimum.reduceat(values, run_start, axis=0)
    rest = np.where(values == first[run_of], NO_LABEL, values)
    return first, np.minimum.reduceat(rest, run_start, axis=0)


def rasterise_labels_numpy(geom, table: ShapeTable, comp):
    """Label rasterisation on the CPU (the oracle of ``label_tiles``): for each pixel
    the two smallest component ids ``comp[row]`` (>= 1) of the rows that contain it,
    as int32 images ``(label, label2)``, 0 for none.  Rows must be include shapes."""
    nx, ny = geom.npix
    ntx, nty = tile_counts(geom)
    out1 = np.zeros((nty * TILE, ntx * TILE), dtype=np.int32)
    out2 = np.zeros_like(out1)
    if len(table) == 0:
        return out1[:ny, :nx].copy(), out2[:ny, :nx].copy()
    comp = np.asarray(comp, np.int32)
    tiles, starts, members = bin_shapes(geom, table)
    need_sky = table.has_sky
    v1 = out1.reshape(nty, TILE, ntx, TILE)
    v2 = out2.reshape(nty, TILE, ntx, TILE)
    with progress_bar(len(tiles), "labelling shapes", unit="tile") as bar:
        for c0 in range(0, len(tiles), _CHUNK_TILES):
            chunk, parts = _chunk_parts(geom, table, tiles, starts, members, need_sky, c0)
            acc1 = np.full((len(chunk), TILE * TILE), NO_LABEL, dtype=np.int32)
            acc2 = acc1.copy()
            for where, m, inside in parts:
                values = np.where(inside, comp[m][:, None], NO_LABEL)
                run_start = np.flatnonzero(np.r_[True, where[1:] != where[:-1]])
                run_of = np.cumsum(np.r_[False, where[1:] != where[:-1]])
                f, sec = _two_smallest_runs(values, run_start, run_of)
                t = where[run_start]
                acc1[t], acc2[t] = two_smallest(np, acc1[t], acc2[t], f, sec)
            acc1[acc1 == NO_LABEL] = 0
            acc2[acc2 == NO_LABEL] = 0
            ty, tx = np.divmod(chunk, ntx)
            v1[ty, :, tx, :] = acc1.reshape(len(chunk), TILE, TILE)
            v2[ty, :, tx, :] = acc2.reshape(len(chunk), TILE, TILE)
            bar.update(len(chunk))
    return np.ascontiguousarray(out1[:ny, :nx]), np.ascontiguousarray(out2[:ny, :nx])


# ----------------------------------------------------------------------------- cupy


def rasterise_build(sky, proj_code, labels=False) -> KernelBuild:
    """The build of ``rasterise_tiles`` (kernels/regions.cu) for one shape table and map.

    :func:`rasterise_cupy` launches exactly this build; the CI build check
    compiles every combination (see :mod:`gpumask._kernels`).

    Parameters
    ----------
    sky : bool
        Whether the table has sky shapes (:attr:`ShapeTable.has_sky`): the
        kernel then computes each pixel's unit vector.
    proj_code : str or None
        The map's projection (one of
        :data:`~gpumask.sky.projections.SUPPORTED_PROJECTIONS`) when its WCS has
        device parameters; None when it has not and the kernel reads astropy's
        coordinates from arrays (``GPUMASK_REGION_COORDS_FROM_ARRAYS``).
    labels : bool
        The ``label_tiles`` entry instead: the two smallest component ids of the
        shapes holding each pixel (mask provenance, :func:`rasterise_labels_cupy`).

    Returns
    -------
    gpumask._kernels.KernelBuild

    Raises
    ------
    TypeError
        For a ``sky`` that is not a boolean.
    ValueError
        For a ``proj_code`` outside ``SUPPORTED_PROJECTIONS``.

    Examples
    --------
    >>> from gpumask.masks._region_raster import rasterise_build
    >>> rasterise_build(True, "TAN").describe()
    'regions.cu:rasterise_tiles PROJ=TAN REGION_SKY=1 TILE=32'
    >>> rasterise_build(False, None).describe()
    'regions.cu:rasterise_tiles REGION_COORDS_FROM_ARRAYS=1 REGION_SKY=0 TILE=32'
    """
    if not isinstance(sky, (bool, np.bool_)):
        raise TypeError(f"sky must be True or False (ShapeTable.has_sky), got {sky!r}")
    defines = {"GPUMASK_REGION_SKY": int(sky), "GPUMASK_TILE": TILE}
    if proj_code is None:
        defines["GPUMASK_REGION_COORDS_FROM_ARRAYS"] = 1
    else:
        defines.update(projection_defines(proj_code))
    return KernelBuild("regions.cu", "label_tiles" if labels else "rasterise_tiles", defines=defines)


@register_builds
def _rasterise_builds():
    """Every build :func:`rasterise_cupy` and :func:`rasterise_labels_cupy` can
    request: with and without sky shapes, for each device projection and for
    coordinates read from arrays."""
    for labels in (False, True):
        for sky in (False, True):
            for proj_code in (*SUPPORTED_PROJECTIONS, None):
                yield rasterise_build(sky, proj_code, labels)


def rasterise_cupy(geom, table: ShapeTable, backend, comp=None):
    """Launch ``rasterise_tiles`` (kernels/regions.cu): one block per active tile.

    With ``comp`` (component id per row, >= 1), ``label_tiles`` instead: returns
    the int32 images ``(label, label2)`` of :func:`rasterise_labels_numpy`."""
    xp = backend.xp
    nx, ny = geom.npix
    image = xp.zeros((ny, nx), dtype=xp.uint8 if comp is None else xp.int32)
    outputs = (image,) if comp is None else (image, xp.zeros((ny, nx), dtype=xp.int32))
    done = image if comp is None else outputs
    if len(table) == 0:
        return done
    tiles, starts, members = bin_shapes(geom, table)
    if len(tiles) == 0:
        return done
    if len(members) >= 2**31 or len(table) >= 2**31:
        raise ValueError(
            f"{len(members)} (tile, shape) pairs exceed the kernel's int32 indices; "
            "split the regions into several region_mask calls and combine the masks"
        )
    params = geom._device_params
    coords = None
    if params is not None:
        wcs_args = params.kernel_args()
    else:
        # no device projection: the kernel reads astropy's coordinates (uploaded)
        coords = geom.get_coord(backend=backend)
        wcs_args = (0.0,) * 18
    kernel = get_kernel(rasterise_build(table.has_sky, None if params is None else params.code,
                                        labels=comp is not None))
    d = lambda a, dt: to_device(np.ascontiguousarray(a, dtype=dt), backend)  # noqa: E731
    lon, lat = coords if coords is not None else (xp.zeros(1), xp.zeros(1))
    args = outputs + (
        np.int32(nx), np.int32(ny),
        d(tiles, np.int32), d(starts, np.int32), d(members, np.int32),
        d(table.kind, np.int32), d(table.flags if comp is None else comp, np.int32),
        d(table.params, np.float64),
        d(table.vx if len(table.vx) else np.zeros(1), np.float64),
        d(table.vy if len(table.vy) else np.zeros(1), np.float64),
        lon, lat,
    ) + tuple(np.float64(v) for v in wcs_args)
    kernel((len(tiles), 1, 1), (TILE, 8, 1), args)
    return done


def rasterise_labels_cupy(geom, table: ShapeTable, comp, backend):
    """``label_tiles`` on the device: see :func:`rasterise_labels_numpy`."""
    return rasterise_cupy(geom, table, backend, comp=np.asarray(comp, np.int32))
