"""Rasterise a :class:`~gpumask._region_compile.ShapeTable` onto a map's pixels.

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
from collections import OrderedDict

import numpy as np

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
)
from .backend import to_device

TILE = 32  # pixels per tile side; kernels/regions.cu is built for this value
_CHUNK_TILES = 96  # tiles evaluated together on the CPU (bounds temporary memory)
_CHUNK_PAIRS = 1536  # (tile, shape) pairs evaluated together on the CPU
_CAPS_CACHE: OrderedDict = OrderedDict()
_CAPS_CACHE_SIZE = 8


# ----------------------------------------------------------------------------- tiles


def tile_counts(geom):
    nx, ny = geom.npix
    return -(-nx // TILE), -(-ny // TILE)


def _unit(lon_deg, lat_deg):
    lon = np.deg2rad(lon_deg)
    lat = np.deg2rad(lat_deg)
    clat = np.cos(lat)
    return np.stack([clat * np.cos(lon), clat * np.sin(lon), np.sin(lat)], axis=-1)


def _chord_to_angle(chord2):
    return 2.0 * np.arcsin(np.minimum(np.sqrt(np.maximum(chord2, 0.0)) / 2.0, 1.0))


def tile_caps(geom):
    """Bounding cap of every tile's pixel centres: ``(centres (nt, 3), radius
    (nt,) rad, alive (nt,))``, tiles in row-major (ty, tx) order.

    The farthest pixel centre from the tile centre lies on the tile's border for
    any smooth projection (a distance on the sphere has no interior maximum short
    of the antipode), so only border pixels are projected; tiles with border
    pixels off the sky (all-sky edges) are projected whole.  Cached per WCS and
    image size (a few recent geometries), so repeated masks on one field pay once.
    """
    key = (geom.wcs.to_header_string(relax=True), tuple(geom.npix))
    cached = _CAPS_CACHE.get(key)
    if cached is not None:
        _CAPS_CACHE.move_to_end(key)
        return cached
    nx, ny = geom.npix
    ntx, nty = tile_counts(geom)
    xs = np.arange(ntx * TILE, dtype=float)
    ys = np.arange(nty * TILE, dtype=float)
    xs[xs >= nx] = np.nan
    ys[ys >= ny] = np.nan
    # the first and last pixel row (column) of every tile, across the whole image
    row_y = np.stack([ys[0::TILE], np.fmin(ys[TILE - 1 :: TILE], ny - 1)], axis=1).ravel()
    col_x = np.stack([xs[0::TILE], np.fmin(xs[TILE - 1 :: TILE], nx - 1)], axis=1).ravel()
    gx, gy = np.meshgrid(xs, row_y)
    rows = _unit(*geom.pix_to_coord((gx, gy)))  # (2 nty, ntx*TILE, 3)
    gx, gy = np.meshgrid(col_x, ys)
    cols = _unit(*geom.pix_to_coord((gx, gy)))  # (nty*TILE, 2 ntx, 3)
    rows = rows.reshape(nty, 2, ntx, TILE, 3).transpose(0, 2, 1, 3, 4).reshape(nty, ntx, 2 * TILE, 3)
    cols = cols.reshape(nty, TILE, ntx, 2, 3).transpose(0, 2, 3, 1, 4).reshape(nty, ntx, 2 * TILE, 3)
    border = np.concatenate([rows, cols], axis=2)  # (nty, ntx, 4 TILE, 3), NaN off-map
    tx0 = np.arange(ntx) * TILE
    ty0 = np.arange(nty) * TILE
    cx = (tx0 + np.minimum(tx0 + TILE - 1, nx - 1)) / 2.0
    cy = (ty0 + np.minimum(ty0 + TILE - 1, ny - 1)) / 2.0
    gx, gy = np.meshgrid(cx, cy)
    centre = _unit(*geom.pix_to_coord((gx, gy)))  # (nty, ntx, 3)
    # a border sample is expected whenever its pixel is inside the image
    expected = _border_in_image(nx, ny, ntx, nty)
    have = np.isfinite(border[..., 0])
    complete = np.all(have | ~expected, axis=2) & np.all(np.isfinite(centre), axis=2)
    with np.errstate(invalid="ignore"):
        d2 = np.sum((border - centre[:, :, None, :]) ** 2, axis=3)
    radius = _chord_to_angle(np.nanmax(np.where(have, d2, -1.0), axis=2))
    alive = complete.ravel().copy()
    centre = centre.reshape(-1, 3).copy()
    radius = radius.ravel().copy()
    # tiles that touch the edge of the projection's domain: use all their pixels
    for t in np.flatnonzero(~complete.ravel()):
        ty, tx = divmod(int(t), ntx)
        x = np.arange(tx * TILE, min(tx * TILE + TILE, nx), dtype=float)
        y = np.arange(ty * TILE, min(ty * TILE + TILE, ny), dtype=float)
        gx, gy = np.meshgrid(x, y)
        v = _unit(*geom.pix_to_coord((gx.ravel(), gy.ravel())))
        v = v[np.all(np.isfinite(v), axis=1)]
        if len(v) == 0:
            continue
        c = v.sum(axis=0)
        norm = np.linalg.norm(c)
        c = v[0] if norm < 1e-12 else c / norm
        centre[t] = c
        radius[t] = _chord_to_angle(np.max(np.sum((v - c) ** 2, axis=1)))
        alive[t] = True
    radius = radius + 1e-9 + 1e-12 * radius
    result = (centre, radius, alive)
    for array in result:
        array.setflags(write=False)
    _CAPS_CACHE[key] = result
    while len(_CAPS_CACHE) > _CAPS_CACHE_SIZE:
        _CAPS_CACHE.popitem(last=False)
    return result


def _border_in_image(nx, ny, ntx, nty):
    """(nty, ntx, 4 TILE) bool: which border samples of tile_caps are pixels."""
    xs_ok = np.arange(ntx * TILE) < nx
    ys_ok = np.arange(nty * TILE) < ny
    row_ok = np.broadcast_to(xs_ok.reshape(ntx, TILE)[None, :, None, :], (nty, ntx, 2, TILE))
    col_ok = np.broadcast_to(ys_ok.reshape(nty, TILE)[:, None, None, :], (nty, ntx, 2, TILE))
    return np.concatenate([row_ok.reshape(nty, ntx, 2 * TILE), col_ok.reshape(nty, ntx, 2 * TILE)], axis=2)


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


def _pairs_from_caps(table: ShapeTable, idx, geom):
    from scipy.spatial import cKDTree  # noqa: PLC0415 - scipy import is slow

    centre, radius, alive = tile_caps(geom)
    live = np.flatnonzero(alive)
    if len(live) == 0 or len(idx) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    tree = cKDTree(centre[live])
    caps = table.cap[idx]
    reach = np.minimum(caps[:, 3] + radius[live].max(), math.pi)
    query_r = 2.0 * np.sin(reach / 2.0) * (1 + 1e-12) + 1e-12
    found = tree.query_ball_point(caps[:, :3], query_r)
    counts = np.fromiter((len(f) for f in found), dtype=np.int64, count=len(found))
    if counts.sum() == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    tiles = live[np.concatenate([np.asarray(f, dtype=np.int64) for f in found])]
    owner = np.repeat(np.arange(len(idx)), counts)
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
    for c0 in range(0, len(tiles), _CHUNK_TILES):
        chunk = tiles[c0 : c0 + _CHUNK_TILES]
        pix, _ = _tile_pixels(geom, chunk, need_sky)
        acc = np.zeros((len(chunk), TILE * TILE), dtype=np.uint8)
        lo, hi = starts[c0], starts[min(c0 + _CHUNK_TILES, len(tiles))]
        local = np.repeat(np.arange(len(chunk)), np.diff(starts[c0 : c0 + len(chunk) + 1]))
        shapes = members[lo:hi]
        kinds = table.kind[shapes]
        for kind in np.unique(kinds):
            sel = np.flatnonzero(kinds == kind)
            for s0 in range(0, len(sel), _CHUNK_PAIRS):
                part = sel[s0 : s0 + _CHUNK_PAIRS]
                m = shapes[part]
                where = local[part]
                p = [table.params[m, k][:, None] for k in range(table.params.shape[1])]
                keys = ("px", "py", "pz") if kind in SKY_KINDS else ("x", "y")
                sub = {key: pix[key][where] for key in keys}
                inside = _eval_kind(int(kind), p, table, m, sub)
                value = inside.astype(np.uint8) * bits[m][:, None]
                # pairs are sorted by tile: OR-reduce each tile's run, then merge
                run_start = np.flatnonzero(np.r_[True, where[1:] != where[:-1]])
                acc[where[run_start]] |= np.bitwise_or.reduceat(value, run_start, axis=0)
        ty, tx = np.divmod(chunk, ntx)
        view[ty, :, tx, :] = acc.reshape(len(chunk), TILE, TILE)
    return np.ascontiguousarray(image[:ny, :nx])


# ----------------------------------------------------------------------------- cupy


def rasterise_cupy(geom, table: ShapeTable, backend):
    """Launch ``rasterise_tiles`` (kernels/regions.cu): one block per active tile."""
    from ._kernels import get_kernel  # noqa: PLC0415 - cupy only

    xp = backend.xp
    nx, ny = geom.npix
    image = xp.zeros((ny, nx), dtype=xp.uint8)
    if len(table) == 0:
        return image
    tiles, starts, members = bin_shapes(geom, table)
    if len(tiles) == 0:
        return image
    params = geom._device_params
    defines = {"GPUMASK_REGION_SKY": int(table.has_sky), "GPUMASK_TILE": TILE}
    coords = None
    if params is not None:
        defines.update(params.kernel_defines())
        wcs_args = params.kernel_args()
    else:
        # no device projection: read astropy's coordinates, computed once per map
        defines["GPUMASK_REGION_COORDS_FROM_ARRAYS"] = 1
        coords = geom.get_coord(backend=backend)
        wcs_args = (0.0,) * 18
    kernel = get_kernel("regions.cu", "rasterise_tiles", defines=defines, options=("--fmad=false",))
    d = lambda a, dt: to_device(np.ascontiguousarray(a, dtype=dt), backend)  # noqa: E731
    lon, lat = coords if coords is not None else (xp.zeros(1), xp.zeros(1))
    args = (
        image, np.int32(nx), np.int32(ny),
        d(tiles, np.int32), d(starts, np.int32), d(members, np.int32),
        d(table.kind, np.int32), d(table.flags, np.int32), d(table.params, np.float64),
        d(table.vx if len(table.vx) else np.zeros(1), np.float64),
        d(table.vy if len(table.vy) else np.zeros(1), np.float64),
        lon, lat,
    ) + tuple(np.float64(v) for v in wcs_args)
    kernel((len(tiles), 1, 1), (TILE, 8, 1), args)
    return image
