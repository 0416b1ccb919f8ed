"""Map values at coordinates, pixels and indices; iteration over image planes.

gammapy 2.1's ``Map.get_by_coord``/``get_by_pix``/``get_by_idx``,
``interp_by_coord``/``interp_by_pix`` ("nearest" and "linear"), ``quantity``,
``iter_by_image``/``iter_by_image_data``/``iter_by_axis``, ``to_cube`` and the thin
wrappers ``reproject_to_geom``, ``from_gammapy``/``to_gammapy``, as
:class:`MapSamplingMixin`, a base class of :class:`~gpumask.Map`.

Everything runs on the backend of the map's data: host coordinates are converted
on the host (astropy, exactly as gammapy) and the pixel arrays uploaded; device
coordinates are converted on the device.  Results are arrays of the map's backend.
No device data is copied to the host: the one data-dependent decision (the result
dtype of ``get_by_pix`` when some positions are outside the map, as gammapy) reads
one device boolean through :func:`gpumask.backend.read_flag`.

``reproject_to_geom`` and the gammapy bridge import :mod:`gpumask.sky.reproject`
and :mod:`gpumask.sky.bridge` (same layer) when used.
"""

from __future__ import annotations

import itertools

import numpy as np
from astropy import units as u

from ..backend import read_flag, to_device

__all__ = ["MapSamplingMixin", "interp_by_pix"]

_VALUE_SCALES = ("lin", "log", "sqrt")


def _pix_on(backend, pix, ndim, what):
    pix = list(pix)
    if len(pix) != ndim:
        raise ValueError(
            f"{what} needs one array per map dimension {ndim} (lon, lat and the non-spatial axes), "
            f"got {len(pix)}"
        )
    arrays = [to_device(p, backend) for p in pix]
    return list(backend.xp.broadcast_arrays(*arrays))


def _scale(values, scale, xp):
    """gammapy's interpolation value scales (``LogScale`` clips at the dtype's tiny)."""
    if scale == "lin":
        return values
    if scale == "log":
        tiny = np.finfo(values.dtype).tiny if values.dtype.kind == "f" else np.finfo(np.float32).tiny
        return xp.log(xp.clip(values, tiny, np.inf))
    sign = xp.sign(values)
    return sign * xp.sqrt(sign * values)


def _inverse_scale(values, scale, xp):
    if scale == "lin":
        return values
    if scale == "log":
        out = xp.exp(values)
        tiny = np.finfo(out.dtype).tiny
        return xp.where(xp.abs(out) - tiny <= tiny, 0.0, out)
    return values**2


def interp_by_pix(data, pix, method, xp):
    """gammapy's ``ScaledRegularGridInterpolator`` on the pixel grid, on ``xp``.

    ``data``: the (cleaned, scaled) array in data order ``(..., y, x)``; ``pix``:
    broadcast pixel coordinates in axis order ``(x, y, p_0, ...)``.  As scipy's
    ``RegularGridInterpolator`` with ``fill_value=None``: dimensions of length 1
    are ignored; cells are found with ``clip(floor(p), 0, n - 2)`` so positions
    outside extrapolate linearly ("linear") or take the edge value ("nearest",
    ties to the lower index); a NaN coordinate gives NaN.  "linear" sums the
    ``2**k`` corner terms in scipy's order, weights multiplied from the first
    dimension on, in float64.
    """
    sizes = data.shape[::-1]
    dims = [k for k, n in enumerate(sizes) if n > 1]
    shape = pix[0].shape
    index = [xp.zeros(shape, dtype=np.int64) for _ in sizes]
    nans = xp.zeros(shape, dtype=bool)
    cells = {}
    for k in dims:
        p = pix[k].astype(np.float64, copy=False)
        isnan = xp.isnan(p)
        nans = nans | isnan
        lower = xp.clip(xp.floor(xp.where(isnan, 0.0, p)), 0, sizes[k] - 2)
        cells[k] = (lower.astype(np.int64), p - lower)
    if method == "nearest":
        for k in dims:
            lower, dist = cells[k]
            index[k] = xp.where(dist <= 0.5, lower, lower + 1)
        values = data[tuple(index[::-1])]
        if values.dtype.kind != "f":
            values = values.astype(np.float64)
        return xp.where(nans, np.nan, values)
    total = None
    for corner in itertools.product(*([(0, 1)] * len(dims))):
        weight = None
        for k, upper in zip(dims, corner):
            lower, dist = cells[k]
            index[k] = lower + upper
            w = dist if upper else 1.0 - dist
            weight = w if weight is None else weight * w
        term = data[tuple(index[::-1])]
        term = term * weight if weight is not None else term.astype(np.float64)
        total = term if total is None else total + term
    return xp.where(nans, np.nan, total)


class MapSamplingMixin:
    """gammapy's value access and iteration for :class:`~gpumask.Map`."""

    # ------------------------------------------------------------ quantity
    @property
    def quantity(self) -> u.Quantity:
        """The data as an astropy Quantity (a view, no copy), as gammapy.

        Quantities hold host memory: on a device (cupy) map this raises TypeError
        instead of copying; use ``map.to_backend("numpy").quantity``.  Setting a
        Quantity sets data (on the map's backend) and unit.

        Examples
        --------
        >>> m = Map.create(npix=2, unit="cm-2", backend="numpy")
        >>> m.quantity.unit
        Unit("1 / cm2")
        >>> m.quantity = np.ones((2, 2)) * u.Unit("m-2")
        >>> m.unit
        Unit("1 / m2")
        """
        if self.backend.is_gpu:
            raise TypeError(
                "Map.quantity is an astropy Quantity, which holds host memory; this map's data is on "
                "the device: use map.to_backend('numpy').quantity (an explicit, counted copy), or "
                "map.data with map.unit"
            )
        return u.Quantity(self.data, self.unit, copy=False)

    @quantity.setter
    def quantity(self, value):
        value = u.Quantity(value)
        data = to_device(value.value, self.backend)
        self.data = data
        self._unit = value.unit

    # ------------------------------------------------------------ values by index / pixel / coordinate
    def get_by_idx(self, idx):
        """Map values at integer indices ``(ix, iy, i_0, ...)`` (gammapy's method).

        Float indices are rounded to ``floor(p + 0.5)``; as in gammapy, -1 selects
        the last pixel (use :meth:`get_by_pix` for a fill value outside).

        Parameters
        ----------
        idx : tuple of arrays
            One array per map dimension, host or device.

        Returns
        -------
        values : array
            On the map's backend.

        Examples
        --------
        >>> m = Map.from_geom(WcsGeom.create(npix=(3, 2)), data=np.arange(6.0).reshape(2, 3))
        >>> m.get_by_idx((np.array([0, 2]), np.array([1, 0])))
        array([3., 2.])
        """
        from ._geom_tools import pix_tuple_to_idx  # noqa: PLC0415 - geometry helpers

        be = self.backend
        idx = pix_tuple_to_idx([to_device(i, be) for i in idx], be.xp)
        return self.data.T[idx]

    def get_by_pix(self, pix, fill_value=np.nan):
        """Map values at pixel coordinates ``(x, y, p_0, ...)`` (gammapy's method).

        Each position takes the value of the pixel containing it; positions outside
        the map take ``fill_value``.  As gammapy, the result keeps the data's dtype
        when every position is inside and becomes ``type(fill_value)`` (float64
        for NaN) otherwise; on a device map that decision reads one boolean
        (:func:`gpumask.backend.read_flag`), never the values.

        Parameters
        ----------
        pix : tuple of arrays
            One array per map dimension (broadcast together), host or device.
        fill_value : scalar
            Value outside the map.

        Returns
        -------
        values : array
            On the map's backend.

        Examples
        --------
        >>> m = Map.from_geom(WcsGeom.create(npix=(3, 2)), data=np.arange(6.0).reshape(2, 3))
        >>> m.get_by_pix((np.array([0.4, 5.0]), np.array([0.6, 0.0])))
        array([ 3., nan])
        """
        be = self.backend
        xp = be.xp
        pix = _pix_on(be, pix, self.data.ndim, "pix")
        idx = self.geom.pix_to_idx(pix)
        values = self.data.T[idx]
        inside = idx[0] != -1
        for i in idx[1:]:
            inside = inside & (i != -1)
        all_inside = read_flag(xp.all(inside)) if be.is_gpu else bool(inside.all())
        if all_inside:
            return values
        dtype = np.dtype(type(fill_value))
        return xp.where(inside, values.astype(dtype), xp.asarray(fill_value, dtype=dtype))

    def get_by_coord(self, coords, fill_value=np.nan):
        """Map values at coordinates (gammapy's method): the pixel containing each
        position; ``fill_value`` outside (see :meth:`get_by_pix` for the dtype).

        Parameters
        ----------
        coords : SkyCoord, tuple, dict or gammapy ``MapCoord``
            ``(lon, lat, c_0, ...)`` in deg in the map's frame with one coordinate
            per non-spatial axis; a dict ``{"lon": ..., "lat": ..., "energy": ...}``
            or ``{"skycoord": ..., "energy": ...}``; a SkyCoord alone for an image.
            Host or device arrays.
        fill_value : scalar

        Returns
        -------
        values : array
            On the map's backend.

        Examples
        --------
        >>> m = Map.create(npix=(3, 2), binsz=1.0, backend="numpy") + 1.0
        >>> m.get_by_coord({"lon": [0.0, 40.0], "lat": [0.0, 0.0]})
        array([ 1., nan])
        """
        return self.get_by_pix(self._coord_pix(coords), fill_value=fill_value)

    def _coord_pix(self, coords):
        pix = self.geom.coord_to_pix(coords)
        if len(pix) != self.data.ndim:
            raise ValueError(
                f"coordinates for the map axes {self.geom.axes_names} are needed, got {len(pix)} of them"
            )
        return [to_device(p, self.backend) for p in pix]

    # ------------------------------------------------------------ interpolation
    def interp_by_pix(self, pix, method="linear", fill_value=None, values_scale="lin"):
        """Interpolate the map at pixel coordinates ``(x, y, p_0, ...)`` (gammapy's method).

        Multilinear ("linear") or nearest-neighbour ("nearest") interpolation on
        the pixel grid of every dimension, on the map's backend, as gammapy's
        ``ScaledRegularGridInterpolator``: non-finite data count as 0 (unless no
        value is finite); dimensions with one bin are ignored; positions outside
        are extrapolated ("linear") or take the edge value ("nearest").  Along a
        non-spatial axis the pixel coordinate already carries the axis'
        interpolation scale (log for energy).

        Parameters
        ----------
        pix : tuple of arrays
            One array per map dimension, broadcast together; host or device.
        method : {"linear", "nearest"}
        fill_value : float, optional
            None (default) extrapolates; a number replaces the values at positions
            outside ``[-0.5, n - 0.5)`` in any dimension and non-finite results.
        values_scale : {"lin", "log", "sqrt"}
            Interpolate the values in this scale (gammapy's ``values_scale``).

        Returns
        -------
        values : array
            float64 (float32 for "nearest" on float32 data), on the map's backend.

        Examples
        --------
        >>> m = Map.from_geom(WcsGeom.create(npix=(3, 2)), data=np.arange(6.0).reshape(2, 3))
        >>> m.interp_by_pix((np.array([0.5]), np.array([0.5])))
        array([2.])
        """
        if method not in ("linear", "nearest"):
            raise ValueError(f"method must be 'linear' or 'nearest', got {method!r}")
        if values_scale not in _VALUE_SCALES:
            raise ValueError(f"values_scale must be one of {_VALUE_SCALES}, got {values_scale!r}")
        be = self.backend
        xp = be.xp
        pix = _pix_on(be, pix, self.data.ndim, "pix")
        data = self.data
        if data.dtype.kind in "fc":
            finite = xp.isfinite(data)
            # as gammapy: non-finite values count as 0 unless nothing is finite
            data = xp.where(finite | ~xp.any(finite), data, 0)
        elif data.dtype.kind not in "iub":
            raise TypeError(f"cannot interpolate a map of dtype {data.dtype}")
        data = _scale(data, values_scale, xp)
        values = _inverse_scale(interp_by_pix(data, pix, method, xp), values_scale, xp)
        if fill_value is not None:
            idx = self.geom.pix_to_idx(pix)
            invalid = ~xp.isfinite(values)
            for i in idx:
                invalid = invalid | (i.reshape(values.shape) == -1)
            values = xp.where(invalid, xp.asarray(fill_value, dtype=values.dtype), values)
        return values

    def interp_by_coord(self, coords, method="linear", fill_value=None, values_scale="lin"):
        """Interpolate the map at coordinates (gammapy's method): the coordinates
        go to pixel coordinates (:meth:`WcsGeom.coord_to_pix`, the axes' interp
        scales included), then :meth:`interp_by_pix`.

        Parameters
        ----------
        coords : SkyCoord, tuple, dict or gammapy ``MapCoord``
            As :meth:`get_by_coord`.
        method : {"linear", "nearest"}
        fill_value : float, optional
        values_scale : {"lin", "log", "sqrt"}

        Returns
        -------
        values : array
            On the map's backend.

        Examples
        --------
        >>> m = Map.create(npix=(3, 2), binsz=1.0, backend="numpy") + 2.0
        >>> m.interp_by_coord((np.array([0.2]), np.array([0.1])))
        array([2.])
        """
        return self.interp_by_pix(
            self._coord_pix(coords), method=method, fill_value=fill_value, values_scale=values_scale
        )

    # ------------------------------------------------------------ iteration
    def iter_by_image(self, keepdims=False):
        """Iterate over the image planes as maps (gammapy's method).

        Planes come in ``numpy.ndindex`` order over the axes (innermost axis
        first, the last axis varying fastest), as gammapy.  Each plane is a view
        of this map's data, on its backend.

        Parameters
        ----------
        keepdims : bool
            Keep every axis with one bin instead of returning images.

        Yields
        ------
        map : `Map`

        Examples
        --------
        >>> axis = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 3)
        >>> cube = Map.create(npix=4, axes=[axis], backend="numpy")
        >>> [image.geom.data_shape for image in cube.iter_by_image()]
        [(4, 4), (4, 4), (4, 4)]
        """
        names = [ax.name for ax in self.geom.axes]
        for idx in np.ndindex(*self.geom.axes.shape):
            if keepdims:
                yield self.slice_by_idx({n: slice(i, i + 1) for n, i in zip(names, idx)})
            else:
                yield self.get_image_by_idx(idx)

    def iter_by_image_data(self):
        """Iterate over the image planes' data (gammapy's method).

        Yields
        ------
        (data, idx) : tuple
            A view of one plane (on the map's backend) and its index in data order,
            so that ``map.data[idx]`` is the plane.

        Examples
        --------
        >>> axis = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 2)
        >>> [idx for _, idx in Map.create(npix=4, axes=[axis], backend="numpy").iter_by_image_data()]
        [(0,), (1,)]
        """
        for idx in np.ndindex(*self.geom.axes.shape):
            yield self.data[idx[::-1]], idx[::-1]

    def iter_by_image_index(self):
        """Iterate over the image planes' indices in data order (gammapy's method).

        Yields
        ------
        idx : tuple of int

        Examples
        --------
        >>> axis = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 2)
        >>> list(Map.create(npix=4, axes=[axis], backend="numpy").iter_by_image_index())
        [(0,), (1,)]
        """
        for idx in np.ndindex(*self.geom.axes.shape):
            yield idx[::-1]

    def iter_by_axis(self, axis_name, keepdims=False):
        """Iterate over the bins of one axis (gammapy's method).

        Parameters
        ----------
        axis_name : str
        keepdims : bool
            Keep the axis with one bin instead of dropping it.

        Yields
        ------
        map : `Map`

        Examples
        --------
        >>> axis = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 2)
        >>> cube = Map.create(npix=4, axes=[axis], backend="numpy")
        >>> [m.geom.data_shape for m in cube.iter_by_axis("energy", keepdims=True)]
        [(1, 4, 4), (1, 4, 4)]
        """
        axis = self.geom._axis(axis_name)
        for idx in range(axis.nbin):
            yield self.slice_by_idx({axis_name: slice(idx, idx + 1) if keepdims else idx})

    def to_cube(self, axes):
        """Map with one-bin ``axes`` appended (gammapy's method; data reshaped, no copy).

        Parameters
        ----------
        axes : list of `MapAxis`
            Each with one bin.

        Returns
        -------
        map : `Map`

        Examples
        --------
        >>> axis = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 1)
        >>> Map.create(npix=4, backend="numpy").to_cube([axis]).geom.data_shape
        (1, 4, 4)
        """
        axes = list(axes)
        for ax in axes:
            if ax.nbin > 1:
                raise ValueError(f"to_cube appends axes with one bin; axis {ax.name!r} has {ax.nbin}")
        geom = self.geom.to_cube(axes)
        return self._new(self.data.reshape((1,) * len(axes) + self.data.shape), geom=geom)

    # ------------------------------------------------------------ thin wrappers
    def reproject_to_geom(self, geom, preserve_counts=False, precision_factor=10):
        """Reproject onto another geometry (gammapy's method).

        A thin wrapper of :func:`gpumask.sky.reproject.reproject_to_geom` (imported
        when called).

        Parameters
        ----------
        geom : `WcsGeom`
        preserve_counts : bool
        precision_factor : int

        Returns
        -------
        map : `Map`

        Examples
        --------
        >>> m = Map.create(npix=20, binsz=0.1, backend="numpy")
        >>> m.reproject_to_geom(WcsGeom.create(npix=10, binsz=0.2))  # doctest: +SKIP
        """
        from .reproject import reproject_to_geom  # noqa: PLC0415

        return reproject_to_geom(self, geom, preserve_counts=preserve_counts, precision_factor=precision_factor)

    @classmethod
    def from_gammapy(cls, m, backend=None):
        """The gpumask map equal to a gammapy ``WcsNDMap`` (data on ``backend``).

        A thin wrapper of :func:`gpumask.sky.bridge.map_from_gammapy` (imported
        when called).

        Parameters
        ----------
        m : `gammapy.maps.WcsNDMap`
        backend : str or Backend, optional
            Where the data goes (default: the active selection).

        Returns
        -------
        map : `Map`

        Examples
        --------
        >>> from gammapy.maps import Map as GammapyMap  # doctest: +SKIP
        >>> Map.from_gammapy(GammapyMap.create(npix=10), backend="numpy")  # doctest: +SKIP
        """
        from .bridge import map_from_gammapy  # noqa: PLC0415 - gammapy is optional

        return map_from_gammapy(m, backend=backend)

    def to_gammapy(self):
        """This map as a gammapy ``WcsNDMap`` (device data is copied to the host,
        counted).

        A thin wrapper of :func:`gpumask.sky.bridge.map_to_gammapy` (imported when
        called; needs gammapy).

        Returns
        -------
        map : `gammapy.maps.WcsNDMap`

        Examples
        --------
        >>> Map.create(npix=10, backend="numpy").to_gammapy()  # doctest: +SKIP
        """
        from .bridge import map_to_gammapy  # noqa: PLC0415 - gammapy is optional

        return map_to_gammapy(self)
