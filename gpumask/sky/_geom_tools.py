"""The geometry tools of :class:`~gpumask.WcsGeom` that gammapy users reach for.

Index conversions (``coord_to_idx``, ``pix_to_idx``), WCS arithmetic (``crop``,
``pad``, ``downsample``, ``upsample``, ``to_binsz``) and axis edits (``squash``,
``drop``, ``slice_by_idx``, ``resample_axis``), with gammapy 2.1's names, arguments
and results: the same arguments give the same header (CRPIX/CDELT) as gammapy.

They live in :class:`GeomToolsMixin`, a base class of ``WcsGeom``, to keep
``geom.py`` small.  Pixel and coordinate arrays stay on their backend: device
(cupy) arrays in give device arrays out, with no copy to the host; host arrays
mixed with device arrays are uploaded.

``from_gammapy``/``to_gammapy`` import :mod:`gpumask.sky.bridge` when called.
"""

from __future__ import annotations

import copy

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

from .._utils import parse_angle_pair
from ..backend import backend_of, get_backend, is_device_array, to_device
from .axes import MapAxis, _factor

__all__ = ["GeomToolsMixin", "parse_coords", "align_arrays", "pix_tuple_to_idx"]


# ---------------------------------------------------------------------- coordinates


def _lonlat_array(value):
    if is_device_array(value):
        return value
    if isinstance(value, u.Quantity):
        return np.asarray(value.to_value(u.deg), dtype=float)
    return np.asarray(value, dtype=float)


def _axis_values(axis, value):
    """Axis coordinates in the axis unit: device arrays as they are, host values
    (numbers, Quantities, strings such as ``"1 TeV"``) as float arrays."""
    if is_device_array(value):
        return value
    if isinstance(value, str):
        value = u.Quantity(value)
    if isinstance(value, u.Quantity):
        try:
            return np.asarray(value.to_value(axis.unit), dtype=float)
        except u.UnitConversionError:
            raise u.UnitConversionError(
                f"coordinates of axis {axis.name!r} in {value.unit!r} cannot be converted to {axis.unit!r}"
            ) from None
    return np.asarray(value, dtype=float)


def _is_mapcoord(obj) -> bool:
    # gammapy.maps.MapCoord, recognised without importing gammapy
    return all(hasattr(obj, name) for name in ("axis_names", "skycoord", "lon", "lat", "match_by_name"))


def parse_coords(geom, coords):
    """``(lon, lat, {axis name: values})`` from any of gammapy's coordinate forms.

    Accepted: a SkyCoord (any frame); a tuple ``(lon, lat, c_0, ...)`` or
    ``(skycoord, c_0, ...)`` with ``c_i`` for the geometry's axes in order; a dict
    with ``"lon"``/``"lat"`` (or ``"skycoord"``) and axis names; a gammapy
    ``MapCoord``.  Plain lon/lat are in deg in the geometry's frame (as gammapy);
    SkyCoords are transformed to it on the host.  Axis values: Quantities,
    strings or numbers in the axis unit.  Device arrays are kept as they are.
    """
    frame = geom.frame
    names = [ax.name for ax in geom.axes]
    extra = {}
    if isinstance(coords, SkyCoord):
        sph = coords.transform_to(frame).spherical
        lon, lat = sph.lon.deg, sph.lat.deg
    elif _is_mapcoord(coords):
        if coords.frame is None or coords.frame == frame:
            lon, lat = coords.lon, coords.lat
        else:
            sph = coords.skycoord.transform_to(frame).spherical
            lon, lat = sph.lon.deg, sph.lat.deg
        others = [n for n in coords.axis_names if n not in ("lon", "lat")]
        if coords.match_by_name:
            extra = {n: coords[n] for n in others}
        else:
            extra = dict(zip(names, (coords[n] for n in others)))
    elif isinstance(coords, dict):
        if "skycoord" in coords:
            sph = coords["skycoord"].transform_to(frame).spherical
            lon, lat = sph.lon.deg, sph.lat.deg
        elif "lon" in coords and "lat" in coords:
            lon, lat = coords["lon"], coords["lat"]
        else:
            raise ValueError(f"a coordinate dict needs 'lon' and 'lat' (or 'skycoord'), got keys {sorted(coords)}")
        extra = {k: v for k, v in coords.items() if k not in ("lon", "lat", "skycoord")}
    elif isinstance(coords, (tuple, list)) and len(coords) >= 1:
        if isinstance(coords[0], SkyCoord):
            sph = coords[0].transform_to(frame).spherical
            lon, lat = sph.lon.deg, sph.lat.deg
            rest = coords[1:]
        elif len(coords) >= 2:
            lon, lat = coords[0], coords[1]
            rest = coords[2:]
        else:
            raise ValueError(f"coordinates need (lon, lat, ...) or (skycoord, ...), got {coords!r}")
        if len(rest) > len(names):
            raise ValueError(
                f"{len(rest)} non-spatial coordinate(s) given for the axes {names}; pass (lon, lat, "
                + ", ".join(names) + ")"
            )
        extra = dict(zip(names, rest))
    else:
        raise TypeError(
            f"coordinates must be a SkyCoord, a (lon, lat, ...) tuple, a dict or a MapCoord, got "
            f"{type(coords).__name__}"
        )
    axes = {ax.name: _axis_values(ax, extra[ax.name]) for ax in geom.axes if ax.name in extra}
    return _lonlat_array(lon), _lonlat_array(lat), axes


def align_arrays(arrays):
    """The arrays on one backend: the device if any of them is a device array
    (host ones are uploaded), else NumPy.  Returns ``(list, backend)``."""
    device = next((a for a in arrays if is_device_array(a)), None)
    be = backend_of(device) if device is not None else get_backend("numpy")
    return [to_device(a, be) for a in arrays], be


def pix_tuple_to_idx(pix, xp):
    """gammapy's rounding of pixel coordinates to indices: integers are kept,
    floats become ``floor(p + 0.5)`` and non-finite values -1 (arrays ``ndmin=1``)."""
    out = []
    for p in pix:
        p = xp.asarray(p)
        if p.ndim == 0:
            p = p.reshape(1)
        if p.dtype.kind in "iu":
            out.append(p.astype(np.int64, copy=False))
            continue
        p = p.astype(np.float64, copy=False)
        finite = xp.isfinite(p)
        idx = xp.floor(xp.where(finite, p, 0.0) + 0.5).astype(np.int64)
        out.append(xp.where(finite, idx, -1))
    return tuple(out)


def _pixel_pair(value, what, geom=None):
    """``(x, y)`` whole pixel counts from an int, a pair, or (with ``geom``) an angle
    or a pair of angles rounded with the pixel scales (gammapy's ``Map.crop``)."""
    if geom is not None and (isinstance(value, (str, u.Quantity))
                             or (isinstance(value, (tuple, list)) and value
                                 and all(isinstance(v, (str, u.Quantity)) for v in value))):
        wx, wy = parse_angle_pair(value, what)
        sx, sy = geom.pixel_scales.deg
        return int(np.round(wx / sx)), int(np.round(wy / sy))
    values = tuple(value) if isinstance(value, (tuple, list, np.ndarray)) else (value, value)
    if len(values) != 2:
        raise ValueError(f"{what} must be an int or a pair (x, y) of pixel counts, got {value!r}")
    out = []
    for v in values:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer, float, np.floating)) \
                or not np.isfinite(v) or int(v) != v or v < 0:
            raise ValueError(
                f"{what} must be non-negative whole pixel counts (x, y)"
                + (" or an angle" if geom is not None else "") + f", got {value!r}"
            )
        out.append(int(v))
    return tuple(out)


# ---------------------------------------------------------------------- the mixin


class GeomToolsMixin:
    """gammapy's geometry tools for :class:`~gpumask.WcsGeom` (see the module docstring)."""

    # ------------------------------------------------------------ properties
    @property
    def is_flat(self) -> bool:
        """Whether every non-spatial axis has one bin (an image, as gammapy).

        Examples
        --------
        >>> WcsGeom.create(npix=4).is_flat
        True
        """
        return all(ax.nbin == 1 for ax in self.axes)

    @property
    def is_allsky(self) -> bool:
        """Whether the map spans 360 x 180 deg (npix times CDELT, as gammapy).

        Examples
        --------
        >>> WcsGeom.create(binsz=1.0).is_allsky
        True
        """
        cdelt = np.abs(self.wcs.wcs.cdelt)
        return bool(np.isclose(self.npix[0] * cdelt[0], 360.0) and np.isclose(self.npix[1] * cdelt[1], 180.0))

    @property
    def center_coord(self) -> tuple:
        """Coordinates of the geometry's centre, as gammapy: ``(lon, lat, c_0, ...)``
        as Quantities (lon/lat in deg in the geometry's frame, then the centre of
        every non-spatial axis).

        Examples
        --------
        >>> lon, lat = WcsGeom.create(npix=5, skydir=(10, 20), frame="galactic").center_coord
        >>> float(lon.to_value("deg")), float(lat.to_value("deg"))
        (10.0, 20.0)
        """
        x, y = self.center_pix
        lon, lat = self.wcs.wcs_pix2world(x, y, 0)
        out = (u.Quantity(lon, u.deg), u.Quantity(lat, u.deg))
        return out + tuple(ax.pix_to_coord((ax.nbin - 1) / 2.0) for ax in self.axes)

    # ------------------------------------------------------------ indices
    def coord_to_idx(self, coords, clip=False) -> tuple:
        """Integer pixel indices ``(ix, iy, i_0, ...)`` of coordinates (gammapy's method).

        Parameters
        ----------
        coords : SkyCoord, tuple, dict or gammapy ``MapCoord``
            As :meth:`coord_to_pix`; with no axis coordinates only ``(ix, iy)``.
        clip : bool
            False: -1 for coordinates outside the map; True: indices clipped into range.

        Returns
        -------
        idx : tuple of int64 arrays
            At least 1-d; on the backend of the coordinates (device arrays stay there).

        Examples
        --------
        >>> geom = WcsGeom.create(npix=(4, 3), binsz=1.0)
        >>> geom.coord_to_idx((0.0, 0.4))
        (array([2]), array([1]))
        """
        return self.pix_to_idx(self.coord_to_pix(coords), clip=clip)

    def pix_to_idx(self, pix, clip=False) -> tuple:
        """Integer indices from pixel coordinates ``(x, y, p_0, ...)`` (gammapy's method).

        Floats round to ``floor(p + 0.5)``; non-finite values and values outside
        ``[0, n)`` give -1, or with ``clip=True`` are clipped into range (a NaN then
        becomes 0, as in gammapy).

        Parameters
        ----------
        pix : tuple of arrays
            Pixel coordinates, host or device.
        clip : bool

        Returns
        -------
        idx : tuple of int64 arrays
            At least 1-d, on the device when any input is a device array.

        Examples
        --------
        >>> geom = WcsGeom.create(npix=(4, 3), binsz=1.0)
        >>> geom.pix_to_idx((np.array([-0.6, 0.4, 3.6]), np.array([0.0, 1.0, 2.0])))
        (array([-1,  0, -1]), array([0, 1, 2]))
        """
        pix = list(pix)
        if len(pix) < 2:
            raise ValueError(f"pix needs at least (x, y), got {len(pix)} array(s)")
        arrays, be = align_arrays(pix)
        xp = be.xp
        idx = pix_tuple_to_idx(arrays, xp)
        sizes = list(self.npix) + [ax.nbin for ax in self.axes]
        out = []
        for i, n in zip(idx, sizes):
            if clip:
                out.append(xp.clip(i, 0, n - 1))
            else:
                out.append(xp.where((i < 0) | (i >= n), -1, i))
        return tuple(out)

    def contains_pix(self, pix):
        """Whether pixel coordinates fall inside the map (every index valid).

        Examples
        --------
        >>> WcsGeom.create(npix=3).contains_pix((np.array([0.0, 2.6]), np.array([1.0, 1.0])))
        array([ True, False])
        """
        idx = self.pix_to_idx(pix)
        xp = backend_of(idx[0]).xp
        inside = idx[0] != -1
        for i in idx[1:]:
            inside = inside & (i != -1)
        return xp.asarray(inside)

    # ------------------------------------------------------------ WCS arithmetic
    def _with_wcs(self, npix, crpix_shift=None, factor=None, axes=None):
        wcs = self.wcs.deepcopy()
        if factor is not None:
            # gammapy's get_resampled_wcs: CDELT * f, CRPIX = (CRPIX - 0.5) / f + 0.5
            wcs.wcs.cdelt = wcs.wcs.cdelt * factor
            wcs.wcs.crpix = (wcs.wcs.crpix - 0.5) / factor + 0.5
        if crpix_shift is not None:
            wcs.wcs.crpix = wcs.wcs.crpix + np.asarray(crpix_shift, dtype=float)
        return type(self)(wcs, npix, axes=self.axes if axes is None else axes)

    def crop(self, crop_width):
        """Geometry with ``crop_width`` pixels removed from each spatial edge (gammapy's method).

        Parameters
        ----------
        crop_width : int, (int, int), angle or (angle, angle)
            Pixels removed on each side along (lon, lat); angles are rounded to
            pixels with the pixel scales, as gammapy's ``Map.crop``.

        Returns
        -------
        geom : `WcsGeom`
            ``npix - 2 * crop_width``, CRPIX shifted by ``-crop_width``; same axes.

        Examples
        --------
        >>> WcsGeom.create(npix=(10, 8)).crop((2, 1)).npix
        (6, 6)
        """
        cx, cy = _pixel_pair(crop_width, "crop_width", geom=self)
        nx, ny = self.npix
        if nx - 2 * cx < 1 or ny - 2 * cy < 1:
            raise ValueError(f"crop_width {(cx, cy)} leaves no pixel of the {nx} x {ny} map")
        return self._with_wcs((nx - 2 * cx, ny - 2 * cy), crpix_shift=(-cx, -cy))

    def pad(self, pad_width, axis_name=None):
        """Geometry padded at the edges (gammapy's method).

        Parameters
        ----------
        pad_width : int or (int, int)
            Spatial (``axis_name=None``): pixels added on each side along (lon, lat).
            Non-spatial: bins added at both ends, or ``(low, high)``.
        axis_name : str, optional
            Axis to pad; None pads the spatial axes.

        Returns
        -------
        geom : `WcsGeom`

        Examples
        --------
        >>> WcsGeom.create(npix=(10, 8)).pad(2).npix
        (14, 12)
        """
        if axis_name is None:
            px, py = _pixel_pair(pad_width, "pad_width")
            nx, ny = self.npix
            return self._with_wcs((nx + 2 * px, ny + 2 * py), crpix_shift=(px, py))
        axis = self._axis(axis_name)
        return self._replace_axis(axis_name, axis.pad(pad_width))

    def downsample(self, factor, axis_name=None):
        """Geometry with ``factor`` times coarser pixels or axis bins (gammapy's method).

        Parameters
        ----------
        factor : int
            Spatial: ``npix`` must be divisible by it (pad first otherwise);
            CDELT times ``factor``, CRPIX ``(CRPIX - 0.5) / factor + 0.5``.
        axis_name : str, optional
            Non-spatial axis to downsample (see `MapAxis.downsample`).

        Returns
        -------
        geom : `WcsGeom`

        Examples
        --------
        >>> WcsGeom.create(npix=(10, 8), binsz=0.1).downsample(2).npix
        (5, 4)
        """
        factor = _factor(factor)
        if axis_name is None:
            nx, ny = self.npix
            if nx % factor or ny % factor:
                raise ValueError(
                    f"Spatial shape {(nx, ny)} not divisible by factor {factor!r} in all axes. "
                    "You need to pad prior to calling downsample."
                )
            return self._with_wcs((nx // factor, ny // factor), factor=factor)
        return self._replace_axis(axis_name, self._axis(axis_name).downsample(factor))

    def upsample(self, factor, axis_name=None):
        """Geometry with ``factor`` times finer pixels or axis bins (gammapy's method).

        Parameters
        ----------
        factor : int
            Spatial: ``npix * factor``, CDELT / ``factor``, CRPIX ``(CRPIX - 0.5) * factor + 0.5``.
        axis_name : str, optional
            Non-spatial axis to upsample (see `MapAxis.upsample`).

        Returns
        -------
        geom : `WcsGeom`

        Examples
        --------
        >>> WcsGeom.create(npix=(10, 8), binsz=0.1).upsample(2).npix
        (20, 16)
        """
        factor = _factor(factor)
        if axis_name is None:
            nx, ny = self.npix
            return self._with_wcs((nx * factor, ny * factor), factor=1.0 / factor)
        return self._replace_axis(axis_name, self._axis(axis_name).upsample(factor))

    def to_binsz(self, binsz):
        """Geometry of the same centre, width, projection, frame and axes with
        pixel size ``binsz`` (gammapy's method: ``WcsGeom.create`` with
        ``npix = rint(width / binsz)`` and the reference pixel at the centre).

        Parameters
        ----------
        binsz : angle or (angle, angle)

        Returns
        -------
        geom : `WcsGeom`

        Examples
        --------
        >>> WcsGeom.create(npix=(10, 8), binsz=0.1).to_binsz(0.05).npix
        (20, 16)
        """
        return type(self).create(
            skydir=self.center_skydir,
            binsz=binsz,
            width=tuple(float(w) for w in self.width.to_value(u.deg)),
            proj=self.projection,
            frame=self.frame,
            axes=[copy.deepcopy(ax) for ax in self.axes],
        )

    # ------------------------------------------------------------ axes
    def _axis(self, axis_name):
        names = [ax.name for ax in self.axes]
        if axis_name not in names:
            raise ValueError(f"geometry has no axis {axis_name!r}; its non-spatial axes are {names}")
        return self.axes[names.index(axis_name)]

    def _replace_axis(self, axis_name, new_axis):
        axes = [new_axis if ax.name == axis_name else ax for ax in self.axes]
        return type(self)(self.wcs.deepcopy(), self.npix, axes=axes)

    def squash(self, axis_name):
        """Geometry with ``axis_name`` squashed into one bin spanning it (gammapy's method).

        Examples
        --------
        >>> axis = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 4)
        >>> WcsGeom.create(npix=3, axes=[axis]).squash("energy").data_shape
        (1, 3, 3)
        """
        return self._replace_axis(axis_name, self._axis(axis_name).squash())

    def drop(self, axis_name):
        """Geometry without the axis ``axis_name`` (gammapy's method).

        Examples
        --------
        >>> axis = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 4)
        >>> WcsGeom.create(npix=3, axes=[axis]).drop("energy").data_shape
        (3, 3)
        """
        self._axis(axis_name)
        return type(self)(self.wcs.deepcopy(), self.npix, axes=[ax for ax in self.axes if ax.name != axis_name])

    def slice_by_idx(self, slices):
        """Geometry with non-spatial axes sliced (gammapy's method).

        Parameters
        ----------
        slices : dict
            Axis name -> int (the axis is dropped) or slice with step 1 (the axis
            keeps those bins).  Names the geometry does not have are ignored, as in
            gammapy (``MapDataset.slice_by_idx`` relies on it: one dict serves maps
            with an ``energy`` and maps with an ``energy_true`` axis).

        Returns
        -------
        geom : `WcsGeom`

        Examples
        --------
        >>> axis = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 4)
        >>> WcsGeom.create(npix=3, axes=[axis]).slice_by_idx({"energy": slice(1, 3)}).data_shape
        (2, 3, 3)
        """
        axes = []
        for ax in self.axes:
            sel = slices.get(ax.name, slice(None))
            if isinstance(sel, slice):
                axes.append(ax.slice(sel))
            elif isinstance(sel, (int, np.integer)) and not isinstance(sel, (bool, np.bool_)):
                if not -ax.nbin <= sel < ax.nbin:
                    raise IndexError(f"index {sel!r} out of range for axis {ax.name!r} ({ax.nbin} bins)")
            else:
                raise TypeError(f"slices[{ax.name!r}] must be an int or a slice, got {sel!r}")
        return type(self)(self.wcs.deepcopy(), self.npix, axes=axes)

    def resample_axis(self, axis):
        """Geometry whose axis ``axis.name`` is regrouped into the bins of ``axis``
        (gammapy's method).

        Every edge of ``axis`` is snapped to the nearest edge of the existing axis
        (round half to even in pixel space); bins outside ``axis`` are dropped.

        Parameters
        ----------
        axis : `MapAxis`
            Coarser binning; its name selects the axis, its ``interp`` is kept.

        Returns
        -------
        geom : `WcsGeom`

        Examples
        --------
        >>> energy = MapAxis.from_energy_bounds("1 TeV", "100 TeV", 6)
        >>> coarse = MapAxis.from_energy_bounds("1 TeV", "100 TeV", 2)
        >>> WcsGeom.create(npix=3, axes=[energy]).resample_axis(coarse).axes["energy"].nbin
        2
        """
        return self._replace_axis(axis.name, _resampled_axis(self._axis(axis.name), axis)[0])

    # ------------------------------------------------------------ gammapy bridge
    @classmethod
    def from_gammapy(cls, geom):
        """The gpumask geometry equal to a gammapy ``WcsGeom``.

        A thin wrapper of :func:`gpumask.sky.bridge.geom_from_gammapy` (imported
        when called).

        Parameters
        ----------
        geom : `gammapy.maps.WcsGeom`

        Returns
        -------
        geom : `WcsGeom`

        Examples
        --------
        >>> from gammapy.maps import WcsGeom as GammapyGeom  # doctest: +SKIP
        >>> WcsGeom.from_gammapy(GammapyGeom.create(npix=10, binsz=0.1))  # doctest: +SKIP
        """
        from .bridge import geom_from_gammapy  # noqa: PLC0415 - gammapy is optional

        return geom_from_gammapy(geom)

    def to_gammapy(self):
        """This geometry as a gammapy ``WcsGeom``.

        A thin wrapper of :func:`gpumask.sky.bridge.geom_to_gammapy` (imported when
        called; needs gammapy).

        Returns
        -------
        geom : `gammapy.maps.WcsGeom`

        Examples
        --------
        >>> WcsGeom.create(npix=10, binsz=0.1).to_gammapy()  # doctest: +SKIP
        """
        from .bridge import geom_to_gammapy  # noqa: PLC0415 - gammapy is optional

        return geom_to_gammapy(self)


def _resampled_axis(axis_self, axis):
    """``(new axis, group bounds)`` of gammapy's ``MapAxes.resample``."""
    if not isinstance(axis, MapAxis):
        raise TypeError(f"axis must be a MapAxis, got {type(axis).__name__}")
    bounds = axis_self._group_bounds(axis.edges)
    edges = axis_self.edges[bounds]
    return MapAxis.from_edges(edges, interp=axis.interp, name=axis.name), bounds
