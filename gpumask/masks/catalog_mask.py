"""Exclusion masks from source catalogs: one region per source, one device pass.

gammapy has no catalog-to-exclusion helper; its tutorial draws a fixed 0.3 deg
circle around every source.  Here each source gets a region from its morphology
(the rules of :mod:`gpumask.catalog.shapes`), the sources whose region touches the
map are kept, and all of them are rasterised together with any user regions by the
region engine of :mod:`gpumask.masks.regions` (exact spherical geometry,
tile-binned, one kernel launch on the GPU).

``radius=`` (a constant or one value per source) replaces the rules: circles of
that radius, as the tutorial's 0.3 deg.
"""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np

from ..catalog.shapes import SourceShapes, regions_of, source_shapes
from ..errors import GpumaskWarning
from ..sky.bridge import as_geom
from . import _region_compile as rc
from ._region_raster import bin_shapes
from .regions import _include, _region_mask, parse_regions

__all__ = ["touching", "exclusion_mask"]


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
    geom = as_geom(geom)
    return _touching(geom, source_shapes(catalog, radius=radius, psf=psf, scale=scale, min_radius=min_radius))


def _touching(geom, shapes: SourceShapes) -> np.ndarray:
    keep = np.zeros(len(shapes), bool)
    if not len(shapes):
        return keep
    table, order = _shape_table(shapes, rc.map_frame(geom))
    _, _, members = bin_shapes(geom, table)
    keep[order[np.unique(members)]] = True
    return keep


def exclusion_mask(geom, catalog=None, regions=None, *, radius=None, psf=None, scale=None, min_radius=None,
                   method="sky", backend=None, explain=False):
    """Exclusion mask (gammapy's convention: True = usable, False = excluded) from
    source catalogs and regions.

    Parameters
    ----------
    geom : WcsGeom
    catalog : SourceCatalog or list of them, optional
        Every source whose region touches the map is excluded; the regions follow
        the morphology rules of :func:`gpumask.catalog.source_shapes` unless ``radius`` is given.
    regions : optional
        More regions to exclude, anything :meth:`WcsGeom.region_mask` accepts
        (ds9 strings and files, regions objects).  They are read as a set on their
        own, ds9 exclusions (``-circle``) included, and their union with the
        sources is excluded: a ``-`` shape never un-excludes a catalog source.
    radius, psf, scale, min_radius
        See :func:`gpumask.catalog.source_shapes`.
    method : {"sky", "pixel"}
        "sky" (default): exact spherical shapes, the sources rasterised straight
        from arrays in the same pass as the regions.  "pixel": gammapy 2.1's pixel
        semantics, the sources going through ``regions`` objects.
    backend : str, optional
        Where the mask is built.
    explain : bool
        Also record why each pixel is excluded: ``mask.provenance`` (a
        :class:`~gpumask.sky.provenance.MaskProvenance`) with one component per
        source that touches the map (its name and the rule that sized it, e.g.
        ``gauss 3 sigma (sigma 0.1 deg) + psf 0.1 deg (quadrature) = 0.32 deg``)
        and per region.  Priority order: the sources in catalog order (catalogs
        in the order given), then the regions in the order given.  The labels
        come from the mask's own rasterisation pass.

    Examples
    --------
    >>> import gpumask
    >>> geom = gpumask.WcsGeom.create(npix=(200, 100), binsz=0.02, frame="galactic")
    >>> mask = exclusion_mask(geom, gpumask.demo_catalog(), explain=True)
    >>> mask.explain(top=3)["name", "npix"]   # doctest: +SKIP
    """
    geom = as_geom(geom)
    catalogs = _as_catalogs(catalog)
    kwargs = dict(radius=radius, psf=psf, scale=scale, min_radius=min_radius)
    items = [] if regions is None else parse_regions(regions)
    if explain:
        return _explained(geom, catalogs, kwargs, items, method, backend)
    if method == "pixel":
        sources = []
        for cat in catalogs:
            shapes = source_shapes(cat, **kwargs)
            sel = np.flatnonzero(_touching(geom, shapes))
            if len(sel):
                sources.extend(regions_of(shapes.select(sel)))
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


def _explained(geom, catalogs, kwargs, items, method, backend):
    """exclusion_mask(..., explain=True): the sources that touch the map become
    components (catalog order), then the regions; one labelled pass."""
    from ._explain import source_rows  # noqa: PLC0415

    frame = rc.map_frame(geom)
    tables, rows = [], []
    pixel_sources, pixel_rules = [], {}
    for cat in catalogs:
        shapes = source_shapes(cat, **kwargs)
        if not len(shapes):
            continue
        sel = np.flatnonzero(_touching(geom, shapes))
        if not len(sel):
            continue
        # the rules in words only for the sources on the map (warnings were given above)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GpumaskWarning)
            shapes = source_shapes(cat, rules=sel, **kwargs).select(sel)
        if method == "pixel":  # the sources go through regions objects, named by their text label
            pixel_sources.extend(regions_of(shapes))
            pixel_rules.update(zip((str(n) for n in shapes.names), shapes.rules))
            continue
        table, order = _shape_table(shapes, frame)
        tables.append(table)
        rows.extend(source_rows(shapes.select(order), geom.frame))
    extra = rc.ShapeTable.concatenate(tables) if tables else None
    if not pixel_sources:
        return _region_mask(geom, items, False, method, backend, extra=extra, explain=True, extra_rows=rows)
    # method="pixel": sources first, as regions; ds9 -shapes of the user regions
    # must not carve them, so the two sets are explained apart and combined
    sources = _region_mask(geom, pixel_sources, False, method, backend, explain=True)
    cols = sources.provenance._cols
    for i in range(len(pixel_sources)):
        cols["kind"][i] = "catalog source"
        cols["rule"][i] = str(pixel_rules.get(cols["name"][i], cols["rule"][i]))
    if not items:
        return sources
    return sources & _region_mask(geom, items, False, method, backend, explain=True)
