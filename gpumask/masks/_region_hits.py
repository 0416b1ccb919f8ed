"""Which shapes hold a flagged pixel: one answer per shape, for many shapes at once.

The rasteriser (:mod:`gpumask.masks._region_raster`) ORs shapes into one image;
the reflected-region finder needs the opposite question, asked of thousands of
candidate regions in one call: does this shape contain the centre of any
excluded pixel?  The answer reuses the rasteriser's pieces, so a shape means
exactly what it means in ``WcsGeom.region_mask(method="sky")``:

1. the flagged pixels are listed once, grouped by the rasteriser's 32 x 32 tiles,
   with their centres as unit vectors in the map's frame;
2. :func:`~gpumask.masks._region_raster.bin_shapes` pairs every shape with the
   tiles its bounding cap touches (tiles without a flagged pixel are dropped);
3. every (shape, flagged pixel of a touched tile) pair is evaluated with the
   rasteriser's own inside tests, in bounded chunks.

The work is proportional to the flagged pixels near the shapes, not to the map.
The pairing (step 2) runs on the host.  On the CuPy backend the pixel centres
are uploaded once, the circle, annulus, ellipse and box tests of step 3 run on the
device and the answers come back in one counted :func:`~gpumask.to_host` per
call; polygons are tested on the host.
"""

from __future__ import annotations

import numpy as np

from ..backend import get_backend, to_device, to_host
from ._region_compile import KIND_CAP, KIND_SKY_BOX, KIND_SKY_ELLIPSE, KIND_SKY_POLYGON, SKY_KINDS, ShapeTable, unit_xyz
from ._region_raster import TILE, _eval_kind, _pnpoly, bin_shapes, tile_counts

__all__ = ["FlaggedPixels", "shapes_hitting"]

_CHUNK = 1 << 20  # (shape, pixel) pairs evaluated together (bounds temporary memory)


class FlaggedPixels:
    """The flagged pixels of a host boolean image on ``geom``, grouped by tile,
    with their centres as unit vectors (built once, asked many times); the
    centres go to ``backend`` once, when first needed there."""

    def __init__(self, geom, flagged, backend="numpy"):
        flagged = np.asarray(flagged, dtype=bool)
        if flagged.shape != geom.data_shape[-2:]:
            raise ValueError(f"flagged image of shape {flagged.shape} does not match the geometry "
                             f"{geom.data_shape[-2:]}")
        self.geom = geom
        ntx, nty = tile_counts(geom)
        iy, ix = np.nonzero(flagged)
        tile = (iy // TILE) * ntx + ix // TILE
        order = np.argsort(tile, kind="stable")
        iy, ix, tile = iy[order], ix[order], tile[order]
        self.starts = np.searchsorted(tile, np.arange(ntx * nty + 1)).astype(np.int64)
        lon, lat = geom.to_image().pix_to_coord((ix.astype(float), iy.astype(float)))
        xyz = unit_xyz(np.radians(lon), np.radians(lat))
        ok = np.isfinite(xyz).all(axis=1)  # off the sky of an all-sky projection: never inside
        self.xyz = np.where(ok[:, None], xyz, np.nan)
        self.count = int(ok.sum())
        self.backend = get_backend(backend)
        self._device_xyz = None

    def device_xyz(self):
        """The centres on :attr:`backend` (uploaded on first use)."""
        if self._device_xyz is None:
            self._device_xyz = to_device(self.xyz, self.backend)
        return self._device_xyz

    def __len__(self):
        return self.count


def shapes_hitting(pixels: FlaggedPixels, table: ShapeTable) -> np.ndarray:
    """bool (len(table),): whether each sky shape of ``table`` contains the centre
    of a flagged pixel (the rasteriser's inside tests on the sphere)."""
    out = np.zeros(len(table), bool)
    if len(table) == 0 or len(pixels) == 0:
        return out
    if not np.isin(table.kind, SKY_KINDS).all():
        raise ValueError("shapes_hitting takes sky shapes only (method='sky')")
    tiles, starts, members = bin_shapes(pixels.geom, table)
    per_tile = np.diff(starts)
    pair_tile = np.repeat(tiles, per_tile)
    n_pix = pixels.starts[pair_tile + 1] - pixels.starts[pair_tile]
    keep = n_pix > 0
    pair_tile, pair_shape, n_pix = pair_tile[keep], members[keep], n_pix[keep]
    if not len(pair_shape):
        return out
    device = pixels.backend.name != "numpy"
    if device:
        xp = pixels.backend.xp
        params = to_device(table.params, pixels.backend)
        hit = xp.zeros(len(table), dtype=bool)
    # bounded chunks of (shape, pixel) pairs
    ends = np.cumsum(n_pix)
    k0 = 0
    while k0 < len(pair_shape):
        base = ends[k0] - n_pix[k0]
        k1 = max(k0 + 1, int(np.searchsorted(ends, base + _CHUNK, side="right")))
        if device:
            _evaluate_device(pixels, table, params, pair_tile[k0:k1], pair_shape[k0:k1], n_pix[k0:k1], hit, out)
        else:
            _evaluate(pixels, table, pair_tile[k0:k1], pair_shape[k0:k1], n_pix[k0:k1], out)
        k0 = k1
    if device:
        out |= to_host(hit)
    return out


def _expand(pixels, pair_tile, pair_shape, n_pix):
    """(shape index, pixel index) of every pair's flagged pixels."""
    shape = np.repeat(pair_shape, n_pix)
    first = np.repeat(pixels.starts[pair_tile], n_pix)
    offset = np.arange(len(shape)) - np.repeat(np.cumsum(n_pix) - n_pix, n_pix)
    return shape, first + offset


def _evaluate_device(pixels, table, params, pair_tile, pair_shape, n_pix, hit, out):
    """:func:`_evaluate` on the device for caps, ellipses and boxes (same
    arithmetic as the rasteriser's tests); polygons on the host."""
    shape, pix = _expand(pixels, pair_tile, pair_shape, n_pix)
    kinds = table.kind[shape]
    polygon = kinds == KIND_SKY_POLYGON
    if polygon.any():
        sel = np.flatnonzero(polygon)
        inside = _polygons(table, shape[sel], pixels.xyz[pix[sel]])
        out[shape[sel][inside]] = True
    be = pixels.backend
    xp = be.xp
    xyz = pixels.device_xyz()
    for kind in np.unique(kinds[~polygon]):
        sel = np.flatnonzero(kinds == kind)
        m = to_device(shape[sel], be)
        v = xyz[to_device(pix[sel], be)]
        inside = _inside_xp(xp, int(kind), params[m], v)
        hit[m[inside]] = True


def _inside_xp(xp, kind, rows, v):
    """The rasteriser's inside tests of caps, ellipses and boxes, one pixel per row."""
    px, py, pz = v[:, 0], v[:, 1], v[:, 2]
    if kind == KIND_CAP:
        d2 = (px - rows[:, 0]) ** 2 + (py - rows[:, 1]) ** 2 + (pz - rows[:, 2]) ** 2
        return (d2 >= rows[:, 3]) & (d2 <= rows[:, 4])
    w = px * rows[:, 0] + py * rows[:, 1] + pz * rows[:, 2]
    front = w > 0
    w = xp.where(front, w, 1.0)  # behind the tangent plane: never inside
    a = (px * rows[:, 3] + py * rows[:, 4] + pz * rows[:, 5]) / w
    b = (px * rows[:, 6] + py * rows[:, 7] + pz * rows[:, 8]) / w
    if kind == KIND_SKY_ELLIPSE:
        return front & ((a * rows[:, 9]) ** 2 + (b * rows[:, 10]) ** 2 <= 1.0)
    if kind == KIND_SKY_BOX:
        return front & (xp.abs(a) <= rows[:, 9]) & (xp.abs(b) <= rows[:, 10])
    raise ValueError(f"unknown sky shape kind {kind}")


def _evaluate(pixels, table, pair_tile, pair_shape, n_pix, out):
    shape, pix = _expand(pixels, pair_tile, pair_shape, n_pix)
    xyz = pixels.xyz[pix]
    kinds = table.kind[shape]
    for kind in np.unique(kinds):
        sel = np.flatnonzero(kinds == kind)
        m = shape[sel]
        v = xyz[sel]
        if kind == KIND_SKY_POLYGON:
            inside = _polygons(table, m, v)
        else:
            rows = table.params[m]  # one gather; the columns below are views
            p = [rows[:, k : k + 1] for k in range(rows.shape[1])]
            pix = {"px": v[:, 0:1], "py": v[:, 1:2], "pz": v[:, 2:3]}
            inside = _eval_kind(int(kind), p, table, m, pix)[:, 0]
        hit = m[inside]
        out[hit] = True


def _polygons(table, members, v):
    """Inside test of polygon shapes, one pixel per entry, grouped by polygon."""
    inside = np.zeros(len(members), bool)
    for shape in np.unique(members):
        sel = np.flatnonzero(members == shape)
        c, e1, e2 = (table.params[shape, k : k + 3] for k in (0, 3, 6))
        w = v[sel] @ c
        with np.errstate(divide="ignore", invalid="ignore"):
            a = (v[sel] @ e1) / w
            b = (v[sel] @ e2) / w
        first, count = int(table.params[shape, 9]), int(table.params[shape, 10])
        vs = slice(first, first + count)
        inside[sel] = (w > 0) & _pnpoly(a, b, table.vx[vs], table.vy[vs])
    return inside
