"""Why each pixel of a mask is excluded: label maps and a component table.

A :class:`MaskProvenance` rides on a boolean :class:`~gpumask.Map` (``mask.provenance``)
when a mask builder was asked for it (``explain=True``; see
:func:`gpumask.exclusion_mask`, :func:`gpumask.exclusion_from_significance`).
It holds, on the mask's backend:

- ``label``: int32, the mask's shape; the index (1, 2, ...) of the first component,
  in priority order, that covers the pixel; 0 where the pixel is usable;
- ``label2``: int32, the next component that covers it too; 0 when only one does
  (so ``label2 == 0`` marks the pixels a component excludes *alone*);
- the component table: index, kind, name, the rule that sized it, a position, a
  ds9 shape where there is one, and (computed from the labels on request) the
  pixels and solid angle each component excludes, and those it excludes alone.

Priority order: the order of the components in the table.  Builders document theirs
(catalog sources in catalog order, then regions in the order given; significance
blobs by decreasing peak).  Combining masks (``a & b``) puts ``a``'s components
first; growing an exclusion (:func:`~gpumask.binary_erode`) appends one
"dilation ring" per component that grew.

The pair (``label``, ``label2``) is the two smallest component indices covering the
pixel.  That pair is exact under union (two smallest of a union are the two
smallest of the pairs' union), so it stays exact through ``&`` and dilation, and
removing a component's inputs removes exactly the pixels where it is ``label`` and
``label2 == 0``.

This module is a data container (sky layer); the masks layer fills it.
"""

from __future__ import annotations

import json

import numpy as np

from .. import _repr
from ..backend import backend_of, get_backend, to_device, to_host

__all__ = ["MaskProvenance", "COMPONENT_KINDS", "merge_two_smallest"]

#: The kinds of component, in the order figures list them.
COMPONENT_KINDS = ("catalog source", "region", "significance blob", "dilation ring", "mask", "off sky")

#: FITS extension names of the label maps and the table.
HDU_LABEL, HDU_LABEL2, HDU_TABLE = "EXPLAIN_LABEL", "EXPLAIN_LABEL2", "EXPLAIN_COMPONENTS"

#: "no component" while merging pairs of labels (larger than every index)
NO_LABEL = np.int32(np.iinfo(np.int32).max)
_STR_COLUMNS = ("kind", "name", "rule", "region")
_COLUMNS = ("kind", "name", "rule", "lon", "lat", "region", "parent")


def two_smallest(xp, a1, a2, b1, b2):
    """The two smallest distinct of ``{a1, a2} | {b1, b2}``, elementwise, for pairs
    in ascending order with :data:`NO_LABEL` for "none" (the form the merging loops
    work in; :func:`merge_two_smallest` takes and gives 0 for "none")."""
    first = xp.minimum(a1, b1)
    second = xp.where(a1 < b1, xp.minimum(a2, b1), xp.where(b1 < a1, xp.minimum(b2, a1), xp.minimum(a2, b2)))
    return first, second


def merge_two_smallest(xp, a1, a2, b1, b2):
    """The two smallest distinct values of ``{a1, a2} | {b1, b2}``, elementwise.

    Each pair holds a pixel's two smallest component indices, ascending, with 0
    for "none".  Works on any backend (array module ``xp``).

    Examples
    --------
    >>> import numpy as np
    >>> f, s = merge_two_smallest(np, np.array([1, 3, 0]), np.array([4, 0, 0]),
    ...                           np.array([2, 3, 5]), np.array([0, 6, 0]))
    >>> f.tolist(), s.tolist()
    ([1, 3, 5], [2, 6, 0])
    """
    first, second = two_smallest(xp, *(xp.where(v > 0, v, NO_LABEL) for v in (a1, a2, b1, b2)))
    zero = np.int32(0)
    return (xp.where(first == NO_LABEL, zero, first).astype(np.int32, copy=False),
            xp.where(second == NO_LABEL, zero, second).astype(np.int32, copy=False))


def _column_dict(rows):
    cols = {k: [] for k in _COLUMNS}
    for row in rows:
        for k in _COLUMNS:
            cols[k].append(row.get(k, "" if k in _STR_COLUMNS else (0 if k == "parent" else np.nan)))
    return {k: (np.array(v, dtype=object if k in _STR_COLUMNS else (np.int32 if k == "parent" else float)))
            for k, v in cols.items()}


class MaskProvenance:
    """Which component excluded each pixel of a mask, and a table of the components.

    Built by the mask builders on request (``explain=True``) and carried by the
    mask as ``mask.provenance``; read back from the mask's FITS file by
    :func:`gpumask.read_map`.  See the module documentation for the conventions.

    Parameters
    ----------
    geom : WcsGeom
        The mask's geometry.
    label, label2 : array
        int32 arrays of the mask's data shape, on the mask's backend.
    components : list of dict or dict of arrays
        One entry per component (index = position + 1): ``kind`` (one of
        ``COMPONENT_KINDS``), ``name``, ``rule``, ``lon``/``lat`` (deg, in the
        map's frame; NaN when the component has no position), ``region`` (a ds9
        shape, "" if none) and ``parent`` (a dilation ring's component, else 0).
    frame : str, optional
        Frame of ``lon``/``lat`` (default the geometry's).

    Examples
    --------
    >>> import gpumask
    >>> geom = gpumask.WcsGeom.create(npix=(60, 40), binsz=0.05, frame="galactic")
    >>> mask = gpumask.exclusion_mask(geom, regions="galactic;circle(0,0,0.4)\\ncircle(266.4,-28.9,0.3)",
    ...                               explain=True)
    >>> why = mask.provenance
    >>> why.components["kind", "name"].pprint()   # doctest: +SKIP
    >>> str(why.explain(geom.center_skydir)["name"][0])
    'galactic;circle(0.00000000,0.00000000,0.40000000)'
    """

    def __init__(self, geom, label, label2, components, frame=None):
        self.geom = geom
        if tuple(label.shape) != tuple(label2.shape):
            raise ValueError(f"label {label.shape} and label2 {label2.shape} must have one shape")
        self.label = label
        self.label2 = label2
        self._cols = components if isinstance(components, dict) else _column_dict(components)
        self.frame = frame or geom.frame
        self._stats = None

    # ------------------------------------------------------------------ basics
    @property
    def backend(self):
        return backend_of(self.label)

    @property
    def n_components(self) -> int:
        return len(self._cols["kind"])

    def __len__(self):
        return self.n_components

    def to_backend(self, backend) -> "MaskProvenance":
        """The same provenance with its label maps on ``backend``."""
        target = get_backend(backend)
        if target.name == self.backend.name:
            return self
        move = to_host if target.name == "numpy" else (lambda a: to_device(a, target))
        out = MaskProvenance(self.geom, move(self.label), move(self.label2), self._cols, self.frame)
        out._stats = self._stats
        return out

    def label_map(self, second=False):
        """The label map (``second=True``: ``label2``) as an int32 :class:`~gpumask.Map`."""
        from .maps import Map  # noqa: PLC0415 - maps imports this module

        return Map(self.geom, self.label2 if second else self.label)

    # ------------------------------------------------------------------ algebra
    def union(self, other: "MaskProvenance") -> "MaskProvenance":
        """Provenance of the union of two exclusions: ``self``'s components first,
        then ``other``'s (renumbered)."""
        xp = self.backend.xp
        off = np.int32(self.n_components)
        zero = np.int32(0)
        # every id of other (shifted by off) is above every id of self: the two
        # smallest are self's pair, completed from other's where self has fewer
        b1 = xp.where(other.label > 0, other.label + off, zero)
        has1 = self.label > 0
        first = xp.where(has1, self.label, b1)
        second = xp.where(has1, xp.where(self.label2 > 0, self.label2, b1),
                          xp.where(other.label2 > 0, other.label2 + off, zero))
        first, second = (a.astype(np.int32, copy=False) for a in xp.broadcast_arrays(first, second))
        cols = {k: np.concatenate([self._cols[k], np.where(other._cols["parent"] > 0,
                                                            other._cols["parent"] + off, 0).astype(np.int32)
                                   if k == "parent" else other._cols[k]]) for k in _COLUMNS}
        return MaskProvenance(self.geom, first, second, cols, self.frame)

    def restrict(self, covered) -> "MaskProvenance":
        """Labels kept only where ``covered`` (a boolean array) is True: for
        operations that only un-exclude pixels (erosion of an exclusion, removing
        small blobs)."""
        xp = self.backend.xp
        zero = np.int32(0)
        return MaskProvenance(self.geom, xp.where(covered, self.label, zero), xp.where(covered, self.label2, zero),
                              self._cols, self.frame)

    def with_components(self, label, label2, rows) -> "MaskProvenance":
        """New label maps and ``rows`` appended to the table."""
        extra = _column_dict(rows)
        cols = {k: np.concatenate([self._cols[k], extra[k]]) for k in _COLUMNS}
        return MaskProvenance(self.geom, label, label2, cols, self.frame)

    @classmethod
    def from_mask(cls, mask, name="mask", rule="given mask"):
        """Provenance of a plain mask (no explanation): one component, kind "mask",
        covering its excluded (False) pixels."""
        xp = mask.backend.xp
        label = xp.where(mask.data, np.int32(0), np.int32(1)).astype(np.int32, copy=False)
        return cls(mask.geom, label, xp.zeros_like(label), [dict(kind="mask", name=name, rule=rule)])

    # ------------------------------------------------------------------ numbers
    def _compute_stats(self):
        """npix, npix_alone and solid angle (deg2) per component: three bincounts
        on the backend and one counted copy of the small result."""
        if self._stats is not None:
            return self._stats
        xp = self.backend.xp
        n = self.n_components + 1
        flat = self.label.reshape(-1)
        npix = xp.bincount(flat, minlength=n)
        alone = xp.bincount(xp.where(self.label2.reshape(-1) == 0, flat, np.int32(0)), minlength=n)
        omega = self.geom.to_image().solid_angle(backend=self.backend)
        omega = xp.where(xp.isfinite(omega), omega, 0.0)
        weights = xp.broadcast_to(omega, self.label.shape).reshape(-1)
        area = xp.bincount(flat, weights=weights, minlength=n)
        host = to_host(xp.stack([npix.astype(np.float64), alone.astype(np.float64), area]))
        self._stats = (host[0, 1:].astype(np.int64), host[1, 1:].astype(np.int64),
                       host[2, 1:] * (180.0 / np.pi) ** 2)
        return self._stats

    @property
    def components(self):
        """The component table (astropy Table): index, kind, name, rule, lon, lat,
        region, parent, npix, npix_alone, solid_angle (deg2)."""
        from astropy.table import Table  # noqa: PLC0415
        import astropy.units as u  # noqa: PLC0415

        npix, alone, area = self._compute_stats()
        t = Table()
        t["index"] = np.arange(1, self.n_components + 1, dtype=np.int32)
        for k in _COLUMNS:
            t[k] = self._cols[k].astype(str) if k in _STR_COLUMNS else self._cols[k]
        t["lon"].unit = t["lat"].unit = u.deg
        t["npix"] = npix
        t["npix_alone"] = alone
        t["solid_angle"] = area * u.deg**2
        t.meta["frame"] = self.frame
        return t

    def summary(self, top=None, kind=None):
        """Components sorted by excluded solid angle (largest first), optionally of
        one ``kind`` and the ``top`` first; components that exclude nothing are left out."""
        t = self.components
        t = t[t["npix"] > 0]
        if kind is not None:
            if kind not in COMPONENT_KINDS:
                raise ValueError(f"kind must be one of {COMPONENT_KINDS}, got {kind!r}")
            t = t[t["kind"] == kind]
        t = t[np.argsort(-np.asarray(t["solid_angle"]), kind="stable")]
        return t if top is None else t[: int(top)]

    def kind_image(self):
        """int8 image: the position in ``COMPONENT_KINDS`` of each pixel's label's
        kind (first plane of cubes), -1 where usable.  One counted copy to the host."""
        label = to_host(self.label.reshape((-1,) + self.label.shape[-2:])[0])
        codes = np.array([COMPONENT_KINDS.index(k) for k in self._cols["kind"]], np.int8)
        out = np.full(label.shape, -1, np.int8)
        hit = label > 0
        out[hit] = codes[label[hit] - 1]
        return out

    # ------------------------------------------------------------------ questions
    def _rows(self, indices):
        t = self.components
        return t[np.asarray(indices, np.int64) - 1] if len(indices) else t[:0]

    def explain(self, position):
        """The components that exclude the pixel holding ``position`` (a SkyCoord):
        a table of the first and, when another covers it too, the second; empty
        where the pixel is usable.  Raises ValueError off the map."""
        from astropy.coordinates import SkyCoord  # noqa: PLC0415

        if not isinstance(position, SkyCoord) or not position.isscalar:
            raise TypeError(f"position must be a scalar SkyCoord, got {position!r}")
        x, y = self.geom.to_image().coord_to_pix(position)
        x, y = float(np.asarray(x)), float(np.asarray(y))
        nx, ny = self.geom.data_shape_image[::-1]
        ix, iy = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
        if not (np.isfinite(x) and np.isfinite(y) and 0 <= ix < nx and 0 <= iy < ny):
            raise ValueError(f"position {position.to_string('decimal')} ({position.frame.name}) is outside the map")
        plane = (0,) * (self.label.ndim - 2)
        pair = to_host(self.backend.xp.stack([self.label[plane + (iy, ix)], self.label2[plane + (iy, ix)]]))
        rows = self._rows([int(v) for v in pair if v > 0])
        rows.meta["pixel"] = (ix, iy)
        return rows

    def explain_region(self, region_mask):
        """Components excluding pixels inside a region: ``region_mask`` is a boolean
        Map (or array) of the region on this geometry; the table has the component
        rows with ``npix_in_region``, largest first."""
        xp = self.backend.xp
        inside = region_mask.data if hasattr(region_mask, "data") else region_mask
        inside = xp.broadcast_to(xp.asarray(inside, dtype=bool), self.label.shape)
        counts = to_host(xp.bincount(xp.where(inside, self.label, np.int32(0)).reshape(-1),
                                     minlength=self.n_components + 1))[1:]
        idx = np.flatnonzero(counts) + 1
        t = self._rows(idx)
        t["npix_in_region"] = counts[idx - 1]
        t = t[np.argsort(-counts[idx - 1], kind="stable")]
        return t

    # ------------------------------------------------------------------ output
    def to_ds9(self) -> str:
        """The components as ds9 region text, each with its name: a region's or a
        source's own shape; a blob as a circle of its area at its centroid; rings
        as a comment naming their parent."""
        lines = ["# Region file format: DS9 version 4.1", "# gpumask mask provenance: one shape per component"]
        npix, _, area = self._compute_stats()
        for i in range(self.n_components):
            name = str(self._cols["name"][i]).replace("}", ")").replace("{", "(")
            kind = self._cols["kind"][i]
            shape = str(self._cols["region"][i])
            text = f" # text={{{i + 1}: {name}}} tag={{{kind}}}"
            if shape:
                lines.append(shape.split("#")[0].strip() + text)
            elif kind == "significance blob" and np.isfinite(self._cols["lon"][i]) and npix[i]:
                r = float(np.sqrt(area[i] / np.pi))
                frame = "galactic" if self.frame == "galactic" else "icrs"
                lines.append(f"{frame};circle({self._cols['lon'][i]:.6f},{self._cols['lat'][i]:.6f},{r:.6f}){text}")
            else:
                # no ";" in comments: regions splits lines there before it drops comments
                lines.append(f"# {i + 1}: {kind}: {name} ({self._cols['rule'][i]}), {npix[i]} pixels"
                             .replace(";", " "))
        return "\n".join(lines) + "\n"

    def to_hdus(self, header):
        """The extra FITS HDUs (label maps with ``header``'s WCS, the component table)."""
        from astropy.io import fits  # noqa: PLC0415

        hdr = header.copy()
        for key in ("EXTNAME", "BOOLMASK", "GPMBOOL", "META", "BUNIT"):
            hdr.remove(key, ignore_missing=True, remove_all=True)
        out = []
        for name, data, text in ((HDU_LABEL, self.label, "first component excluding the pixel (0: usable)"),
                                 (HDU_LABEL2, self.label2, "second component excluding it (0: none)")):
            h = hdr.copy()
            h["COMMENT"] = f"gpumask provenance: {text}; see {HDU_TABLE}"
            out.append(fits.ImageHDU(to_host(data).astype(np.int32), header=h, name=name))
        t = self.components
        t.meta.clear()
        table = fits.table_to_hdu(t)
        table.name = HDU_TABLE
        table.header["FRAME"] = (self.frame, "frame of LON/LAT")
        table.header["KINDS"] = json.dumps(COMPONENT_KINDS)
        out.append(table)
        return out

    @classmethod
    def from_hdulist(cls, hdulist, geom, backend=None):
        """The provenance stored in ``hdulist`` (None if it has none)."""
        from astropy.table import Table  # noqa: PLC0415

        names = {h.name for h in hdulist}
        if not {HDU_LABEL, HDU_LABEL2, HDU_TABLE} <= names:
            return None
        be = get_backend(backend) if backend is not None else None
        labels = []
        for name in (HDU_LABEL, HDU_LABEL2):
            data = np.asarray(hdulist[name].data, dtype=np.int32)
            if data.shape != tuple(geom.data_shape):
                raise ValueError(f"HDU {name} has shape {data.shape}, the mask {tuple(geom.data_shape)}")
            labels.append(data if be is None else to_device(data, be))
        t = Table.read(hdulist[HDU_TABLE])
        cols = {k: (np.array([str(v) for v in t[k]], dtype=object) if k in _STR_COLUMNS
                    else np.asarray(t[k], dtype=np.int32 if k == "parent" else float)) for k in _COLUMNS}
        n = len(t)
        for lab in labels:
            top = int(to_host(lab.max())) if lab.size else 0
            if top > n:
                raise ValueError(f"label maps name component {top} but {HDU_TABLE} has {n} rows")
        return cls(geom, labels[0], labels[1], cols, frame=hdulist[HDU_TABLE].header.get("FRAME"))

    # ------------------------------------------------------------------ display
    def _summary_rows(self, top=5):
        """Rows of the summary: nothing read from the device (areas only once
        computed, e.g. by :meth:`summary` or :attr:`components`)."""
        rows = [("components", self.n_components), ("backend", self.backend.name),
                ("label shape", "x".join(str(v) for v in self.label.shape))]
        kinds = {}
        for k in self._cols["kind"]:
            kinds[k] = kinds.get(k, 0) + 1
        rows.append(("kinds", ", ".join(f"{v} {k}" for k, v in kinds.items()) or "none"))
        if self._stats is None:
            for i in range(min(top, self.n_components)):
                rows.append((f"#{i + 1} {self._cols['kind'][i]}", f"{self._cols['name'][i]} ({self._cols['rule'][i]})"))
            if self.n_components > top:
                rows.append(("...", f"{self.n_components - top} more; .summary() sorts them by excluded area"))
            return rows
        npix, alone, area = self._stats
        for i in np.argsort(-area, kind="stable")[:top]:
            if npix[i]:
                rows.append((f"#{i + 1} {self._cols['kind'][i]}",
                             f"{self._cols['name'][i]}: {npix[i]} px ({alone[i]} alone), {area[i]:.4g} deg2"))
        return rows

    def __repr__(self):
        return _repr.text_block("MaskProvenance", self._summary_rows())

    def _repr_html_(self):
        return _repr.html_table("gpumask MaskProvenance", self._summary_rows())
