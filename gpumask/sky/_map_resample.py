"""Map resampling and reductions with gammapy 2.1's names and results.

``crop``, ``pad``, ``downsample``, ``upsample``, ``resample_axis``, ``reduce``,
``reduce_over_axes`` and ``sum_over_axes`` as :class:`MapResampleMixin`, a base
class of :class:`~gpumask.Map`.  The geometry follows gammapy exactly (see
:mod:`gpumask.sky._geom_tools`); the data are computed on the map's backend (numpy
or cupy, with ``ndimage.map_coordinates`` of the same backend for spline
upsampling) and nothing is copied to the host.

Boolean maps (masks, True = usable) are resampled by rules rather than by
arithmetic; see :meth:`MapResampleMixin.downsample` and
:meth:`MapResampleMixin.upsample`.
"""

from __future__ import annotations

import numpy as np

from ..backend import to_device
from ._geom_tools import _pixel_pair, _resampled_axis
from .axes import _factor, _pad_pair

__all__ = ["MapResampleMixin", "MASK_RULES"]

#: Rules for downsampling boolean maps: a coarse pixel is True when all / any /
#: more than half of its fine pixels are True.
MASK_RULES = ("all", "any", "majority")
_PAD_MODES = ("constant", "edge")

# numpy ufuncs (gammapy's ``func``/``ufunc`` arguments) -> reductions every backend has
_UFUNC_REDUCTIONS = {
    "add": "sum",
    "multiply": "prod",
    "logical_and": "all",
    "logical_or": "any",
    "maximum": "max",
    "minimum": "min",
    "fmax": "max",
    "fmin": "min",
}
_REDUCTIONS = ("sum", "prod", "any", "all", "max", "min", "mean")


def _reduction_name(func, what="func"):
    if isinstance(func, str) and func in _REDUCTIONS:
        return func
    name = getattr(func, "__name__", None)
    if isinstance(func, np.ufunc) and name in _UFUNC_REDUCTIONS:
        return _UFUNC_REDUCTIONS[name]
    raise ValueError(
        f"{what} must be one of {_REDUCTIONS} or the numpy ufuncs "
        f"{sorted('np.' + k for k in _UFUNC_REDUCTIONS)}, got {func!r}"
    )


def _weights_data(weights, m):
    if weights is None:
        return None
    data = getattr(weights, "data", weights)  # a Map or an array
    return to_device(data, m.backend)


def _block_reduce(xp, data, dims, factor, func):
    """Reduce non-overlapping blocks of ``factor`` along each of ``dims`` (astropy's
    ``block_reduce`` layout: every dim split into (n / f, f), the block axes reduced)."""
    shape, axes = [], []
    for d, n in enumerate(data.shape):
        if d in dims:
            shape += [n // factor, factor]
            axes.append(len(shape) - 1)
        else:
            shape.append(n)
    return func(data.reshape(shape), axis=tuple(axes))


class MapResampleMixin:
    """gammapy's resampling and reductions for :class:`~gpumask.Map`."""

    # ------------------------------------------------------------ crop / pad
    def crop(self, crop_width):
        """Map with ``crop_width`` pixels cut from each spatial edge (gammapy's method).

        Parameters
        ----------
        crop_width : int, (int, int), angle or (angle, angle)
            Pixels per side along (lon, lat); angles are rounded to pixels with the
            pixel scales.

        Returns
        -------
        map : `Map`
            A copy of the data (gammapy returns a view), on the map's backend.

        Examples
        --------
        >>> Map.create(npix=(10, 8), backend="numpy").crop(2).geom.data_shape
        (4, 6)
        """
        cx, cy = _pixel_pair(crop_width, "crop_width", geom=self.geom)
        geom = self.geom.crop((cx, cy))
        nx, ny = self.geom.npix
        data = self.data[..., cy : ny - cy, cx : nx - cx].copy()
        return self._new(data, geom=geom)

    def pad(self, pad_width, axis_name=None, mode="constant", cval=0, method="linear"):
        """Map padded at the edges (gammapy's method).

        Parameters
        ----------
        pad_width : int or (int, int)
            Spatial (``axis_name=None``): pixels added on each side along (lon, lat).
            Non-spatial: bins at both ends or ``(low, high)``.
        axis_name : str, optional
            Axis to pad; None pads the spatial axes.
        mode : {"constant", "edge"}
            Fill with ``cval`` or repeat the edge values.  (gammapy 2.1 ignores
            ``mode`` for the spatial axes and always fills with ``cval``.)
        cval : scalar
            Fill value of ``mode="constant"`` (0, i.e. False for a mask: the
            padding is excluded).
        method : str
            Accepted for gammapy compatibility (its ``mode="interp"`` is not offered).

        Returns
        -------
        map : `Map`
            On the map's backend.

        Examples
        --------
        >>> Map.create(npix=(10, 8), backend="numpy").pad(1).geom.data_shape
        (10, 12)
        """
        if mode not in _PAD_MODES:
            raise ValueError(f"mode must be one of {_PAD_MODES}, got {mode!r}")
        ndim = self.data.ndim
        widths = [(0, 0)] * ndim
        if axis_name is None:
            px, py = _pixel_pair(pad_width, "pad_width")
            widths[-1], widths[-2] = (px, px), (py, py)
            geom = self.geom.pad((px, py))
        else:
            geom = self.geom.pad(pad_width, axis_name=axis_name)
            widths[self.geom.axes.index_data(axis_name)] = _pad_pair(pad_width, "pad_width")
        kwargs = {"constant_values": cval} if mode == "constant" else {}
        return self._new(self.backend.xp.pad(self.data, widths, mode=mode, **kwargs), geom=geom)

    # ------------------------------------------------------------ down / up
    def downsample(self, factor, preserve_counts=True, axis_name=None, weights=None, *, mask_rule="all"):
        """Map with ``factor`` times coarser pixels or axis bins (gammapy's method).

        Numbers: every block of fine pixels is summed, NaN counting as 0 (gammapy's
        ``block_reduce(data * weights, nansum)``); with ``preserve_counts=False``
        the weighted mean (0 where the weights sum to 0).  The dtype is kept.

        Boolean maps (True = usable) follow ``mask_rule``: ``"all"`` (default)
        keeps a coarse pixel True only when all its fine pixels are True, so every
        excluded fine pixel stays excluded; ``"any"`` when at least one is True
        (what gammapy 2.1 computes: it sums the booleans and casts back, shrinking
        exclusion regions); ``"majority"`` when more than half are True (ties are
        excluded).  With ``weights`` only fine pixels of non-zero weight take part
        (a block with none is True under "all", False otherwise); ``"majority"``
        then compares weighted sums.  ``preserve_counts`` does not apply.

        Parameters
        ----------
        factor : int
            Spatial: ``npix`` must be divisible by it.
        preserve_counts : bool
            Sum (True, for counts) or average (False, for intensities).
        axis_name : str, optional
            Non-spatial (edges) axis to downsample; its ``nbin`` must be divisible.
        weights : `Map` or array, optional
            Multiplied with the data before summing (broadcast to it).
        mask_rule : {"all", "any", "majority"}
            Keyword-only; boolean maps only.

        Returns
        -------
        map : `Map`
            ``self`` when ``factor`` is 1 or None (as gammapy); on the map's backend.

        Examples
        --------
        >>> mask = Map.create(npix=4, dtype=bool, backend="numpy")
        >>> mask.data[:] = True
        >>> mask.data[0, 0] = False
        >>> mask.downsample(2).data
        array([[False,  True],
               [ True,  True]])
        >>> mask.downsample(2, mask_rule="any").data.all()
        np.True_
        """
        if mask_rule not in MASK_RULES:
            raise ValueError(f"mask_rule must be one of {MASK_RULES}, got {mask_rule!r}")
        if factor is None or _factor(factor) == 1:
            return self
        factor = _factor(factor)
        geom = self.geom.downsample(factor, axis_name=axis_name)
        if axis_name is None:
            dims = (self.data.ndim - 2, self.data.ndim - 1)
        else:
            if self.geom._axis(axis_name).node_type != "edges":
                raise ValueError(
                    f"axis {axis_name!r} has centre nodes: its downsampled nodes no longer bound blocks "
                    "of bins (gammapy fails here too); downsample an edges axis"
                )
            dims = (self.geom.axes.index_data(axis_name),)
        xp = self.backend.xp
        w = _weights_data(weights, self)
        if self.is_mask:
            data = self._downsample_mask(xp, dims, factor, w, mask_rule)
        else:
            values = self.data if w is None else self.data * w
            data = _block_reduce(xp, values, dims, factor, xp.nansum)
            if not preserve_counts:
                if w is None:  # plain mean of each block
                    data = data / float(factor ** len(dims))
                else:
                    wsum = _block_reduce(xp, xp.broadcast_to(w, self.data.shape), dims, factor, xp.nansum)
                    nonzero = wsum != 0
                    data = xp.where(nonzero, data / xp.where(nonzero, wsum, 1), 0.0)
            data = data.astype(self.dtype)
        return self._new(data, geom=geom)

    def _downsample_mask(self, xp, dims, factor, w, rule):
        mask = self.data
        if w is None:
            if rule == "all":
                return _block_reduce(xp, mask, dims, factor, xp.all)
            if rule == "any":
                return _block_reduce(xp, mask, dims, factor, xp.any)
            ntrue = _block_reduce(xp, mask.astype(np.int64), dims, factor, xp.sum)
            return 2 * ntrue > factor ** len(dims)
        w = xp.broadcast_to(w, mask.shape)
        taking = w != 0
        if rule == "all":
            return _block_reduce(xp, mask | ~taking, dims, factor, xp.all)
        if rule == "any":
            return _block_reduce(xp, mask & taking, dims, factor, xp.any)
        wtrue = _block_reduce(xp, xp.where(mask, w, 0), dims, factor, xp.nansum)
        wall = _block_reduce(xp, w, dims, factor, xp.nansum)
        return 2 * wtrue > wall

    def upsample(self, factor, order=0, preserve_counts=True, axis_name=None):
        """Map with ``factor`` times finer pixels or axis bins (gammapy's method).

        Numbers: gammapy's ``map_coordinates`` sampling of ``data / bin_volume``
        at the fine pixel centres (``(i - (factor - 1) / 2) / factor`` in coarse
        pixels, ``mode="nearest"``, spline ``order``), times the fine bin volume
        when ``preserve_counts`` (so counts are shared by solid angle; gpumask's
        solid angles are exact, gammapy's planar estimates differ by ~1e-5), then
        cast to the map's dtype.  ``order=0`` repeats pixels.  Boolean maps are
        always repeated (``order`` and ``preserve_counts`` do not apply).

        Parameters
        ----------
        factor : int
        order : int
            Spline order 0-5 (per image plane on the map's backend).
        preserve_counts : bool
        axis_name : str, optional
            Non-spatial axis to upsample.

        Returns
        -------
        map : `Map`
            ``self`` when ``factor`` is 1 or None (as gammapy); on the map's backend.

        Examples
        --------
        >>> m = Map.create(npix=2, backend="numpy") + 4.0
        >>> m.upsample(2, preserve_counts=False).geom.data_shape
        (4, 4)
        """
        if factor is None or _factor(factor) == 1:
            return self
        factor = _factor(factor)
        if not isinstance(order, (int, np.integer)) or isinstance(order, bool) or not 0 <= order <= 5:
            raise ValueError(f"order must be an integer spline order 0-5, got {order!r}")
        geom = self.geom.upsample(factor, axis_name=axis_name)
        xp = self.backend.xp
        if axis_name is None:
            data = self._upsample_spatial(xp, geom, factor, order, preserve_counts)
        else:
            data = self._upsample_axis(xp, geom, factor, order, preserve_counts, axis_name)
        return self._new(data.astype(self.dtype), geom=geom)

    def _upsample_spatial(self, xp, geom, factor, order, preserve_counts):
        data = self.data
        if self.is_mask or (order == 0 and not preserve_counts):
            return xp.repeat(xp.repeat(data, factor, axis=-1), factor, axis=-2)
        be = self.backend
        if preserve_counts:
            data = data / self.geom.solid_angle(backend=be)
        if order == 0:
            data = xp.repeat(xp.repeat(data, factor, axis=-1), factor, axis=-2)
        else:
            ny, nx = geom.data_shape_image
            shift = 0.5 * (factor - 1)
            ys = (xp.arange(ny, dtype=np.float64) - shift) / factor
            xs = (xp.arange(nx, dtype=np.float64) - shift) / factor
            yy, xx = xp.meshgrid(ys, xs, indexing="ij")
            coords = xp.stack([yy, xx])
            planes = data.reshape((-1,) + data.shape[-2:])
            out = [be.ndimage.map_coordinates(p, coords, order=order, mode="nearest") for p in planes]
            data = xp.stack(out).reshape(data.shape[:-2] + (ny, nx))
        if preserve_counts:
            data = data * geom.solid_angle(backend=be)
        return data

    def _upsample_axis(self, xp, geom, factor, order, preserve_counts, axis_name):
        be = self.backend
        d = self.geom.axes.index_data(axis_name)
        old, new = self.geom._axis(axis_name), geom._axis(axis_name)
        shape = [1] * self.data.ndim
        shape[d] = -1
        data = self.data
        if preserve_counts and not self.is_mask:
            data = data / to_device(old.bin_width.value.reshape(shape), be)
        src = (np.arange(new.nbin, dtype=np.float64) - 0.5 * (factor - 1)) / factor
        if self.is_mask or order == 0:
            # map_coordinates' order-0 rounding with mode="nearest": floor(p + 0.5), clipped
            index = np.clip(np.floor(src + 0.5), 0, old.nbin - 1).astype(np.int64)
            data = xp.take(data, to_device(index, be), axis=d)
        else:
            grids = [xp.arange(n, dtype=np.float64) for n in data.shape]
            grids[d] = to_device(src, be)
            coords = xp.stack(xp.meshgrid(*grids, indexing="ij"))
            data = be.ndimage.map_coordinates(data, coords, order=order, mode="nearest")
        if preserve_counts and not self.is_mask:
            data = data * to_device(new.bin_width.value.reshape(shape), be)
        return data

    # ------------------------------------------------------------ axes
    def resample_axis(self, axis, weights=None, ufunc=np.add):
        """Map whose axis ``axis.name`` is regrouped into the bins of ``axis``
        (gammapy's method).

        The geometry is :meth:`WcsGeom.resample_axis`; every new bin reduces the old
        bins it gathers with ``ufunc`` (``np.add``, ``np.logical_and``,
        ``np.logical_or``, ``np.maximum``, ``np.minimum``, ``np.multiply``).  As
        gammapy, logical ufuncs give a boolean map and the others float64 (gammapy
        appends a float64 zero plane before ``ufunc.reduceat``).

        Parameters
        ----------
        axis : `MapAxis`
            Coarser binning of an axis of this map.
        weights : `Map` or array, optional
            Multiplied with the data first (broadcast to it).
        ufunc : numpy ufunc

        Returns
        -------
        map : `Map`
            On the map's backend.

        Examples
        --------
        >>> energy = MapAxis.from_energy_bounds("1 TeV", "100 TeV", 4)
        >>> m = Map.create(npix=2, axes=[energy], backend="numpy") + 1.0
        >>> m.resample_axis(MapAxis.from_energy_bounds("1 TeV", "100 TeV", 2)).data[:, 0, 0]
        array([2., 2.])
        """
        name = _reduction_name(ufunc, "ufunc")
        axis_self = self.geom._axis(axis.name)
        new_axis, bounds = _resampled_axis(axis_self, axis)
        geom = self.geom._replace_axis(axis.name, new_axis)
        xp = self.backend.xp
        d = self.geom.axes.index_data(axis.name)
        w = _weights_data(weights, self)
        data = self.data if w is None else self.data * w
        if name in ("any", "all"):
            data = data.astype(bool)
        else:
            data = data.astype(np.result_type(data.dtype, np.float64))
        index = [slice(None)] * data.ndim
        planes = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            index[d] = slice(int(lo), int(hi))
            planes.append(getattr(xp, name)(data[tuple(index)], axis=d, keepdims=True))
        return self._new(xp.concatenate(planes, axis=d), geom=geom)

    def reduce(self, axis_name, func=np.add, keepdims=False, weights=None):
        """Reduce over one non-spatial axis (gammapy's method).

        As gammapy (``func.reduce(data, where=~isnan(data))``), NaN values are
        left out.  ``func``: ``np.add`` (booleans are counted as int64),
        ``np.multiply``, ``np.logical_and``, ``np.logical_or``, ``np.maximum``,
        ``np.minimum`` or the names "sum", "prod", "all", "any", "max", "min",
        "mean".

        Parameters
        ----------
        axis_name : str
        func : numpy ufunc or str
        keepdims : bool
            Keep the axis squashed into one bin (else it is dropped).
        weights : `Map` or array, optional
            Multiplied with the data first.

        Returns
        -------
        map : `Map`
            On the map's backend.

        Examples
        --------
        >>> energy = MapAxis.from_energy_bounds("1 TeV", "100 TeV", 4)
        >>> m = Map.create(npix=2, axes=[energy], backend="numpy") + 1.0
        >>> m.reduce("energy").data
        array([[4., 4.],
               [4., 4.]], dtype=float32)
        """
        name = _reduction_name(func)
        self.geom._axis(axis_name)
        geom = self.geom.squash(axis_name) if keepdims else self.geom.drop(axis_name)
        d = self.geom.axes.index_data(axis_name)
        xp = self.backend.xp
        w = _weights_data(weights, self)
        data = self.data if w is None else self.data * w
        if data.dtype.kind in "fc":
            # gammapy reduces with where=~isnan(data): NaN are left out
            identity = {"sum": 0, "prod": 1, "any": False, "all": True}.get(name)
            if identity is not None:
                data = xp.where(xp.isnan(data), identity, data)
            elif name in ("max", "min", "mean"):
                name = "nan" + name
        if name == "sum" and data.dtype == np.bool_:
            data = data.astype(np.int64)
        out = getattr(xp, name)(data, axis=d, keepdims=keepdims)
        return self._new(out, geom=geom)

    def reduce_over_axes(self, func=np.add, keepdims=False, axes_names=None, weights=None):
        """Reduce over several non-spatial axes, one after the other (gammapy's method).

        Parameters
        ----------
        func : numpy ufunc or str
            See :meth:`reduce`.
        keepdims : bool
            Keep every reduced axis with one bin (gammapy's default: False).
        axes_names : list of str, optional
            Default: all non-spatial axes.
        weights : `Map` or array, optional
            Multiplied with the data first.

        Returns
        -------
        map : `Map`
            On the map's backend.

        Examples
        --------
        >>> energy = MapAxis.from_energy_bounds("1 TeV", "100 TeV", 4)
        >>> mask = Map.create(npix=2, axes=[energy], dtype=bool, backend="numpy")
        >>> mask.reduce_over_axes(np.logical_or).geom.data_shape
        (2, 2)
        """
        _reduction_name(func)
        names = [ax.name for ax in self.geom.axes] if axes_names is None else list(axes_names)
        for n in names:
            self.geom._axis(n)
        out = self.copy()
        w = _weights_data(weights, self)
        if w is not None:
            out = out._new(out.data * w)
        for n in names:
            out = out.reduce(n, func=func, keepdims=keepdims)
        return out

    def sum_over_axes(self, axes_names=None, keepdims=True, weights=None):
        """Sum over non-spatial axes, NaN left out (gammapy's method and defaults;
        booleans are counted as int64).

        Parameters
        ----------
        axes_names : list of str, optional
            Default: all non-spatial axes.
        keepdims : bool
            Keep the summed axes with one bin (default True, as gammapy).
        weights : `Map` or array, optional

        Returns
        -------
        map : `Map`
            On the map's backend.

        Examples
        --------
        >>> energy = MapAxis.from_energy_bounds("1 TeV", "100 TeV", 4)
        >>> (Map.create(npix=2, axes=[energy], backend="numpy") + 1.0).sum_over_axes().geom.data_shape
        (1, 2, 2)
        """
        return self.reduce_over_axes(np.add, keepdims=keepdims, axes_names=axes_names, weights=weights)
