"""Map: a :class:`~gpumask.WcsGeom` plus data that stays on its backend.

A map's ``data`` is a numpy or cupy array of shape ``geom.data_shape``.  All
operations run where the data lives; nothing here copies device data to the host
except :meth:`Map.to_numpy`, the ``plot*`` methods and the printed summaries, which go
through :func:`gpumask.to_host` and are counted.

Boolean maps follow gammapy's exclusion-mask convention: ``True`` = pixel is used,
``False`` = excluded.

gammapy's value access, interpolation, iteration and resampling methods
(``get_by_coord``, ``interp_by_coord``, ``iter_by_image``, ``crop``, ``pad``,
``downsample``, ``upsample``, ``resample_axis``, ``reduce_over_axes``, ...) come
from :class:`~gpumask.sky._map_tools.MapSamplingMixin` and
:class:`~gpumask.sky._map_resample.MapResampleMixin`.

Reaches up a layer: the gammapy-style methods ``convolve`` and ``smooth``
(:mod:`gpumask.stats`) and ``binary_dilate``/``binary_erode``/``fill_holes``/...
(:mod:`gpumask.masks`) are thin wrappers imported when called.
"""

from __future__ import annotations

import html
import operator

import numpy as np
from astropy import units as u

from ..backend import (
    Backend,
    backend_of,
    common_backend,
    get_backend,
    is_device_array,
    resolve_backend,
    to_device,
    to_host,
)
from ._map_resample import MapResampleMixin
from ._map_tools import MapSamplingMixin
from .bridge import as_geom, as_map, is_gammapy_object
from .geom import WcsGeom

__all__ = ["Map", "WcsNDMap"]


class Map(MapSamplingMixin, MapResampleMixin):
    """A WCS map: geometry, data on its backend, unit and metadata.

    Create maps with :meth:`from_geom`, :meth:`create` or :meth:`read`.

    Parameters
    ----------
    geom : `~gpumask.WcsGeom`
    data : array (numpy or cupy)
        Shape ``geom.data_shape``.  Kept as given (no copy, same backend).
    unit : str or `~astropy.units.Unit`
    meta : dict, optional
    """

    # numpy must not turn ``ndarray * map`` into an object array: defer to Map.
    __array_ufunc__ = None

    def __init__(self, geom, data, unit="", meta=None):
        self._geom = as_geom(geom)
        self._unit = u.Unit(unit)
        self.meta = dict(meta or {})
        self._data = None
        self.data = data

    # ------------------------------------------------------------------ creation
    @classmethod
    def from_geom(cls, geom, data=None, dtype=None, unit="", meta=None, backend=None):
        """Map on ``geom``.

        With ``data=None`` a zero-filled array of ``dtype`` (default float32, as
        gammapy; as gammapy too, the pixels of a float all-sky map outside the
        projection are NaN) is created on the selected backend (``backend=`` > ``use_backend``
        context > ``GPUMASK_BACKEND`` > auto).  A given numpy/cupy array stays on
        its own backend unless ``backend=`` asks to move it; other array-likes
        (lists, Quantities) are new data and go to the selected backend.
        """
        geom = as_geom(geom)
        if is_gammapy_object(data):
            data = as_map(data, "data", backend=backend)
        if isinstance(data, Map):
            unit = data.unit if unit == "" else unit
            data = data.data
        if isinstance(data, u.Quantity):
            unit = data.unit if unit == "" else unit
            data = data.value
        if data is None:
            be = resolve_backend(backend)
            data = be.xp.zeros(geom.data_shape, dtype=np.dtype(dtype or np.float32))
            if data.dtype.kind == "f" and geom.is_allsky:
                lon, _ = geom.get_coord(backend=be)
                data[..., be.xp.isnan(lon)] = np.nan
        else:
            if backend is not None:
                be = get_backend(backend)
            elif isinstance(data, np.ndarray) or is_device_array(data):
                be = backend_of(data)
            else:
                be = resolve_backend()
            data = to_device(data, be, dtype=dtype)
        return cls(geom, data, unit=unit, meta=meta)

    @classmethod
    def create(
        cls,
        map_type="wcs",
        npix=None,
        binsz=0.1,
        width=None,
        proj="CAR",
        frame="icrs",
        refpix=None,
        axes=None,
        skydir=None,
        dtype="float32",
        meta=None,
        unit="",
        *,
        backend=None,
        data=None,
    ) -> "Map":
        """Map on a new geometry, with gammapy's ``Map.create`` arguments and defaults.

        The geometry is ``WcsGeom.create(npix, binsz, proj, frame, refpix, axes,
        skydir, width)``; note ``binsz=0.1`` deg here (gammapy's ``Map.create``)
        where ``WcsGeom.create`` defaults to 0.5.  The data are zeros of ``dtype``
        on ``backend`` (see :meth:`from_geom`) unless ``data`` is given; as gammapy,
        the pixels of a float all-sky map that fall outside the projection are NaN.

        Parameters
        ----------
        map_type : {"wcs"}
            gammapy's map type; only WCS maps exist in gpumask.
        npix, binsz, width, proj, frame, refpix, axes, skydir
            See :meth:`WcsGeom.create`.
        dtype : str or dtype
            dtype of the zeros (default "float32"); ``data`` keep their own.
        meta : dict, optional
        unit : str or `~astropy.units.Unit`
        backend : str or Backend, optional
            Keyword-only: where the data live (default: the active selection).
        data : array, optional
            Keyword-only: data instead of zeros.

        Returns
        -------
        map : `Map`

        Examples
        --------
        >>> m = Map.create(width=2, frame="galactic", backend="numpy")
        >>> m.geom.npix, m.dtype
        ((20, 20), dtype('float32'))
        """
        if not isinstance(map_type, str) or map_type.lower() != "wcs":
            raise ValueError(f"map_type must be 'wcs' (gpumask has WCS maps only), got {map_type!r}")
        geom = WcsGeom.create(
            npix=npix, binsz=binsz, proj=proj, frame=frame, refpix=refpix, axes=axes, skydir=skydir,
            width=width,
        )
        if data is not None:
            dtype = None  # as gammapy: dtype applies to the zeros, given data keep theirs
        return cls.from_geom(geom, data=data, dtype=dtype, unit=unit, meta=meta, backend=backend)

    @classmethod
    def read(cls, filename, hdu=None, hdu_bands=None, format=None, backend=None):
        """Read a map from a FITS file (see :func:`gpumask.read_map`)."""
        from .io import read_map  # noqa: PLC0415

        return read_map(filename, hdu=hdu, hdu_bands=hdu_bands, format=format, backend=backend)

    def write(self, filename, overwrite=False, hdu=None, hdu_bands=None, checksum=False):
        """Write to FITS atomically (see :func:`gpumask.write_map`)."""
        from .io import write_map  # noqa: PLC0415

        write_map(self, filename, overwrite=overwrite, hdu=hdu, hdu_bands=hdu_bands, checksum=checksum)

    # ------------------------------------------------------------------ properties
    @property
    def geom(self) -> WcsGeom:
        return self._geom

    @property
    def data(self):
        """The data array (numpy or cupy), shape ``geom.data_shape``."""
        return self._data

    @data.setter
    def data(self, value):
        if isinstance(value, u.Quantity):
            value = value.to_value(self._unit)
        if not (isinstance(value, np.ndarray) or is_device_array(value)):
            if self._data is None:
                raise TypeError(
                    f"data must be a numpy or cupy array, got {type(value).__name__}; "
                    "use Map.from_geom to convert other inputs"
                )
            value = to_device(value, self.backend)
        if tuple(value.shape) != self._geom.data_shape:
            raise ValueError(
                f"data shape {tuple(value.shape)} does not match the geometry's data shape "
                f"{self._geom.data_shape} (axes {self._geom.axes_names[::-1]})"
            )
        if self._data is not None and backend_of(value).name != self.backend.name:
            raise ValueError(
                f"cannot assign {backend_of(value).name} data to a {self.backend.name} map; "
                "use map.to_backend() or gpumask.to_device()"
            )
        self._data = value
        self._provenance = None  # new data: any explanation of the old one is void

    @property
    def provenance(self):
        """Why each excluded pixel is excluded (:class:`~gpumask.sky.provenance.MaskProvenance`),
        when the mask was built with ``explain=True`` (or read from such a file); None
        otherwise.  Assigning new data drops it."""
        return self._provenance

    def _explained(self, provenance) -> "Map":
        """Attach ``provenance`` (same geometry and backend) and return self."""
        if provenance is not None:
            if provenance.label.shape != self._data.shape and provenance.label.shape != self._data.shape[-2:]:
                raise ValueError(f"provenance labels {provenance.label.shape} do not fit data {self._data.shape}")
            if provenance.backend.name != self.backend.name:
                provenance = provenance.to_backend(self.backend)
        self._provenance = provenance
        return self

    def explain(self, position=None, *, top=None):
        """Which components exclude the pixel at ``position`` (a SkyCoord) - or,
        without a position, the components sorted by excluded area (``top`` first).

        Needs a mask built with ``explain=True``; see :class:`~gpumask.sky.provenance.MaskProvenance`.

        Examples
        --------
        >>> import gpumask
        >>> geom = gpumask.WcsGeom.create(npix=(40, 40), binsz=0.05, frame="galactic")
        >>> mask = gpumask.exclusion_mask(geom, regions="galactic;circle(0,0,0.3)", explain=True)
        >>> str(mask.explain(geom.center_skydir)["kind"][0])
        'region'
        """
        if self._provenance is None:
            raise ValueError(
                "this mask carries no provenance: build it with explain=True "
                "(exclusion_mask, region_mask, exclusion_from_significance) or read a file written from one"
            )
        if position is None:
            return self._provenance.summary(top=top)
        return self._provenance.explain(position)

    @property
    def backend(self) -> Backend:
        return backend_of(self._data)

    @property
    def unit(self) -> u.Unit:
        return self._unit

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def is_mask(self) -> bool:
        return self._data.dtype == np.bool_

    # ------------------------------------------------------------------ conversions
    def to_backend(self, backend) -> "Map":
        """This map on ``backend``: ``self`` when already there, else a copy
        (upload to the device, or a counted copy to the host)."""
        target = get_backend(backend)
        if target.name == self.backend.name:
            return self
        if target.name == "numpy":
            data = to_host(self._data)
        else:
            data = to_device(self._data, target)
        out = self._new(data)
        if self._provenance is not None:
            out._provenance = self._provenance.to_backend(target)
        return out

    def to_numpy(self) -> np.ndarray:
        """The data as a numpy array (a counted device->host copy for cupy maps)."""
        return to_host(self._data)

    def __array__(self, *args, **kwargs):
        raise TypeError(
            "gpumask maps do not convert implicitly to numpy arrays (that would hide a "
            "device->host copy); call map.to_numpy() or use map.data"
        )

    def copy(self, **kwargs) -> "Map":
        """Copy with new ``geom``, ``data``, ``unit`` or ``meta`` where given (data
        is copied on its backend otherwise)."""
        params = dict(geom=self._geom, unit=self._unit, meta=dict(self.meta))
        params.update(kwargs)
        keep = "data" not in params and "geom" not in kwargs
        if "data" not in params:
            params["data"] = self._data.copy()
        out = Map(**params)
        if keep:
            out._provenance = self._provenance  # labels are never written in place
        return out

    def _new(self, data, geom=None, unit=None) -> "Map":
        return Map(geom or self._geom, data, unit=self._unit if unit is None else unit, meta=dict(self.meta))

    def astype(self, dtype) -> "Map":
        """Map with data cast to ``dtype`` (on the same backend)."""
        return self._new(self._data.astype(dtype))

    # ------------------------------------------------------------------ axes
    def _axis_index(self, name) -> int:
        names = [ax.name for ax in self._geom.axes]
        if name not in names:
            raise ValueError(f"map has no axis {name!r}; its axes are {names}")
        # axes are stored innermost-first; data dims are reversed axes then (y, x)
        return len(names) - 1 - names.index(name)

    def slice_by_idx(self, slices) -> "Map":
        """Select along non-spatial axes (gammapy's method): ``{"energy": 2}`` drops
        the axis, ``{"energy": slice(1, 3)}`` keeps a sub-range (step 1).

        Names the map does not have are ignored, as in gammapy (whose
        ``MapDataset.slice_by_idx`` gives one dict to maps with ``energy`` and
        ``energy_true`` axes).  The data are a view, on the map's backend.

        Examples
        --------
        >>> energy = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 4)
        >>> cube = Map.create(npix=3, axes=[energy], backend="numpy")
        >>> cube.slice_by_idx({"energy": slice(1, 3)}).geom.data_shape
        (2, 3, 3)
        """
        geom = self._geom.slice_by_idx(slices)
        index = [slice(None)] * self._data.ndim
        for ax in self._geom.axes:
            sel = slices.get(ax.name, slice(None))
            dim = self._axis_index(ax.name)
            if isinstance(sel, slice):
                start, stop, _ = sel.indices(ax.nbin)
                index[dim] = slice(start, stop)
            else:
                index[dim] = int(sel)
        return self._new(self._data[tuple(index)], geom=geom)

    def get_image_by_idx(self, idx) -> "Map":
        """The image at non-spatial bin indices ``idx`` (innermost axis first)."""
        names = [ax.name for ax in self._geom.axes]
        if len(idx) != len(names):
            raise ValueError(f"need one index per axis {names}, got {idx!r}")
        return self.slice_by_idx(dict(zip(names, idx)))

    def cutout(self, position, width, mode="trim", odd_npix=False, min_npix=1) -> "Map":
        """Cutout around ``position`` (data sliced on its backend; with
        ``mode="partial"`` pixels outside the parent are NaN, or False/0)."""
        geom, sl_orig, sl_cut = self._geom._cutout(position, width, mode, odd_npix, min_npix)
        if mode == "partial":
            fill = np.nan if np.issubdtype(self.dtype, np.floating) else 0
            data = self.backend.xp.full(geom.data_shape, fill, dtype=self.dtype)
            data[(Ellipsis,) + tuple(sl_cut)] = self._data[(Ellipsis,) + tuple(sl_orig)]
        else:
            data = self._data[(Ellipsis,) + tuple(sl_orig)].copy()
        return self._new(data, geom=geom)

    def interp_to_geom(self, geom, method="nearest", fill_value=None) -> "Map":
        """This map sampled at the pixel centres of another geometry, on its backend.

        Every pixel centre of ``geom`` takes the value of the pixel of this map that
        contains it (nearest neighbour; gammapy's ``interp_to_geom`` name).  Centres
        outside this map, or off its projection, take ``fill_value`` (default: NaN
        for float maps, True for masks so that nothing outside is excluded, 0 for
        integers).  Frames differ freely (galactic / icrs).

        Only image maps are resampled spatially; a map with non-spatial axes must
        match ``geom``'s axes, and its planes are resampled alike.  With ``geom``
        equal to this map's geometry the map itself is returned.
        """
        if method != "nearest":
            raise ValueError(f"method must be 'nearest' (the only resampling gpumask offers), got {method!r}")
        geom = as_geom(geom)
        if geom == self._geom:
            return self
        if fill_value is None:
            fill_value = True if self.is_mask else (np.nan if np.issubdtype(self.dtype, np.floating) else 0)
        if self._geom.axes:
            if geom.to_image().to_cube(self._geom.axes) != geom:
                raise ValueError(
                    f"a map with axes {self._geom.axes_names[2:]} resamples onto geometries with the "
                    f"same axes, got {geom.axes_names[2:]}; reduce it first (e.g. reduce_over_axes('all'))"
                )
        be = self.backend
        xp = be.xp
        if be.name == "cupy" and not self._geom.device_projection:
            raise NotImplementedError(
                f"projection {self._geom.projection!r} of the source map has no device implementation; "
                "resample on numpy (map.to_backend('numpy'))"
            )
        from .reproject import _nearest  # noqa: PLC0415 - reproject imports this module

        lon, lat = geom.get_coord(frame=self._geom.frame, backend=be)
        x, y = self._geom.coord_to_pix((lon, lat))
        values, inside = _nearest(self._data, x, y, xp)
        data = xp.where(inside, values, xp.asarray(fill_value, dtype=self.dtype))
        out_geom = geom.to_image().to_cube(self._geom.axes) if self._geom.axes else geom.to_image()
        return self._new(data, geom=out_geom)

    # ------------------------------------------------------------------ arithmetic
    def _other_data(self, other, op_name, same_unit):
        """Data of ``other`` ready to combine with ours, and the other unit."""
        if is_gammapy_object(other):
            other = as_map(other, "other", backend=self.backend)  # one counted upload
        if isinstance(other, Map):
            if not self._geom == other._geom:
                raise ValueError(
                    f"{op_name}: map geometries differ ({self._geom.data_shape} vs "
                    f"{other._geom.data_shape}, or different WCS/axes); reproject or cut one "
                    "map to the other's geometry first"
                )
            common_backend(self, other, op=f"map {op_name}")
            data, unit = other._data, other._unit
        elif isinstance(other, u.Quantity):
            data, unit = other.value, other.unit
            if np.ndim(data) != 0:
                data = to_device(data, self.backend)
        elif isinstance(other, (np.ndarray,)) or is_device_array(other):
            common_backend(self._data, other, op=f"map {op_name}")
            data, unit = other, u.dimensionless_unscaled
        elif np.isscalar(other) or isinstance(other, (bool, np.bool_)):
            data, unit = other, u.dimensionless_unscaled
        else:
            return NotImplemented, None
        # Plain numbers and arrays are taken in the map's unit; maps and Quantities
        # are converted to it.
        if same_unit:
            if isinstance(other, (Map, u.Quantity)) and unit != self._unit:
                try:
                    factor = unit.to(self._unit)
                except u.UnitConversionError:
                    raise u.UnitConversionError(
                        f"{op_name}: unit {unit!r} is not convertible to the map's unit {self._unit!r}"
                    ) from None
                if factor != 1.0:
                    data = data * factor
            unit = self._unit
        return data, unit

    def _binary(self, other, func, op_name, kind, reflected=False):
        same_unit = kind in ("add", "compare", "logic")
        data, unit = self._other_data(other, op_name, same_unit)
        if data is NotImplemented:
            return NotImplemented
        a, b = (data, self._data) if reflected else (self._data, data)
        result = func(a, b)
        if kind == "mul":
            out_unit = unit * self._unit
        elif kind == "div":
            out_unit = unit / self._unit if reflected else self._unit / unit
        elif kind == "add":
            out_unit = self._unit
        else:
            out_unit = u.dimensionless_unscaled
        return self._new(result, unit=out_unit)

    def _inplace(self, other, func, op_name, kind):
        same_unit = kind in ("add", "logic")
        data, unit = self._other_data(other, op_name, same_unit)
        if data is NotImplemented:
            return NotImplemented
        if kind in ("mul", "div") and unit != u.dimensionless_unscaled:
            self._unit = self._unit * unit if kind == "mul" else self._unit / unit
        func(self._data, data, out=self._data)
        return self

    def _xp(self, name):
        return getattr(self.backend.xp, name)

    def __add__(self, other):
        return self._binary(other, operator.add, "+", "add")

    def __radd__(self, other):
        return self._binary(other, operator.add, "+", "add", reflected=True)

    def __sub__(self, other):
        return self._binary(other, operator.sub, "-", "add")

    def __rsub__(self, other):
        return self._binary(other, operator.sub, "-", "add", reflected=True)

    def __mul__(self, other):
        return self._binary(other, operator.mul, "*", "mul")

    def __rmul__(self, other):
        return self._binary(other, operator.mul, "*", "mul", reflected=True)

    def __truediv__(self, other):
        return self._binary(other, operator.truediv, "/", "div")

    def __rtruediv__(self, other):
        return self._binary(other, operator.truediv, "/", "div", reflected=True)

    def __pow__(self, other):
        if isinstance(other, Map) or not np.isscalar(other):
            raise TypeError("map ** x needs a scalar exponent")
        return self._new(self._data**other, unit=self._unit**other)

    def __iadd__(self, other):
        return self._inplace(other, self._xp("add"), "+=", "add")

    def __isub__(self, other):
        return self._inplace(other, self._xp("subtract"), "-=", "add")

    def __imul__(self, other):
        # bool *= bool is a logical AND in numpy/cupy: the seed notebook's mask combination
        return self._inplace(other, self._xp("multiply"), "*=", "mul")

    def __itruediv__(self, other):
        return self._inplace(other, self._xp("true_divide"), "/=", "div")

    def __neg__(self):
        return self._new(-self._data)

    def __pos__(self):
        return self.copy()

    def __abs__(self):
        return self._new(abs(self._data))

    # comparisons (elementwise, as gammapy; results are boolean maps)
    def __lt__(self, other):
        return self._binary(other, operator.lt, "<", "compare")

    def __le__(self, other):
        return self._binary(other, operator.le, "<=", "compare")

    def __gt__(self, other):
        return self._binary(other, operator.gt, ">", "compare")

    def __ge__(self, other):
        return self._binary(other, operator.ge, ">=", "compare")

    def __eq__(self, other):
        return self._binary(other, operator.eq, "==", "compare")

    def __ne__(self, other):
        return self._binary(other, operator.ne, "!=", "compare")

    __hash__ = None

    # logic
    def _check_logical(self, op_name):
        if not (self.is_mask or np.issubdtype(self.dtype, np.integer)):
            raise TypeError(f"{op_name} needs a boolean (or integer) map, this one is {self.dtype}")

    def _union_provenance(self, other, out, reflected):
        """Provenance of ``self & other`` for exclusion masks (the union of their
        excluded pixels), when either side has one; a side without one counts as
        one component of kind "mask"."""
        mine = self._provenance
        theirs = other._provenance if isinstance(other, Map) else None
        if (mine is None and theirs is None) or not out.is_mask or not isinstance(other, Map) \
                or not other.is_mask or other.geom.data_shape_image != self.geom.data_shape_image:
            return out
        from .provenance import MaskProvenance  # noqa: PLC0415

        mine = mine or MaskProvenance.from_mask(self)
        theirs = (theirs or MaskProvenance.from_mask(other)).to_backend(self.backend)
        first, second = (theirs, mine) if reflected else (mine, theirs)
        return out._explained(first.union(second))

    def __and__(self, other):
        self._check_logical("&")
        out = self._binary(other, operator.and_, "&", "logic")
        return self._union_provenance(other, out, False)

    def __rand__(self, other):
        self._check_logical("&")
        out = self._binary(other, operator.and_, "&", "logic", reflected=True)
        return self._union_provenance(other, out, True)

    def __or__(self, other):
        self._check_logical("|")
        return self._binary(other, operator.or_, "|", "logic")

    def __ror__(self, other):
        self._check_logical("|")
        return self._binary(other, operator.or_, "|", "logic", reflected=True)

    def __xor__(self, other):
        self._check_logical("^")
        return self._binary(other, operator.xor, "^", "logic")

    def __rxor__(self, other):
        self._check_logical("^")
        return self._binary(other, operator.xor, "^", "logic", reflected=True)

    def __iand__(self, other):
        self._check_logical("&=")
        return self._inplace(other, self._xp("bitwise_and"), "&=", "logic")

    def __ior__(self, other):
        self._check_logical("|=")
        return self._inplace(other, self._xp("bitwise_or"), "|=", "logic")

    def __invert__(self):
        self._check_logical("~")
        return self._new(~self._data)

    def __bool__(self):
        raise TypeError(
            "the truth value of a map is ambiguous; reduce it explicitly "
            "(e.g. bool(map.data.any()), which copies one value to the host)"
        )

    # ------------------------------------------------------------------ convolution
    def convolve(self, kernel, dtype=np.float64) -> "Map":
        """Zero-padded "same" FFT convolution of every image plane with ``kernel``
        (gammapy's method name); see :func:`gpumask.stats.convolve`."""
        from ..stats.convolution import convolve  # noqa: PLC0415

        return convolve(self, kernel, dtype=dtype)

    def smooth(self, width, kernel="gauss", **kwargs):
        """Smooth every image plane with a ``kernel`` of ``width`` (gammapy's method).

        A thin wrapper of :func:`gpumask.smooth` (imported when called;
        see there for kernels, boundaries and options).

        Parameters
        ----------
        width : angle or float
            Kernel width (an angle, or pixels as a number).
        kernel : {"gauss", "disk", "box"}
        **kwargs
            Passed on.

        Returns
        -------
        map : `Map`
            On the map's backend.

        Examples
        --------
        >>> Map.create(npix=20, binsz=0.1, backend="numpy").smooth("0.3 deg")  # doctest: +SKIP
        """
        from ..stats.smooth import smooth  # noqa: PLC0415

        return smooth(self, width, kernel=kernel, **kwargs)

    # ------------------------------------------------------------------ morphology
    # Thin wrappers of gpumask.masks.morphology (see there for algorithms and boundaries).
    def binary_dilate(self, width, kernel="disk", use_fft=None, *, gammapy_rounding=False, method="auto") -> "Map":
        """Dilate a boolean map by a disk or box of ``width`` (gammapy's method).

        Exact (equal to ``scipy.ndimage.binary_dilation`` with the footprint) and
        O(N) whatever the width: see :func:`gpumask.binary_dilate`.
        ``use_fft`` is accepted for gammapy compatibility and ignored (gammapy's
        FFT dilation drops isolated pixels).  Same backend as the map.
        """
        from ..masks.morphology import _check_use_fft, binary_dilate  # noqa: PLC0415

        _check_use_fft(use_fft)
        return binary_dilate(self, width, kernel=kernel, gammapy_rounding=gammapy_rounding, method=method)

    def binary_erode(
        self, width, kernel="disk", use_fft=None, *, gammapy_rounding=False, border_value=True, method="auto"
    ) -> "Map":
        """Erode a boolean map by a disk or box of ``width`` (gammapy's method).

        Exact and O(N): see :func:`gpumask.binary_erode`.  Outside the
        map counts as True by default (``border_value=True``: the edge erodes
        nothing), which differs from gammapy: its erosion (FFT or not) eats a
        margin along every edge, as ``border_value=False`` does here.
        ``use_fft`` is accepted for gammapy compatibility and ignored.
        """
        from ..masks.morphology import _check_use_fft, binary_erode  # noqa: PLC0415

        _check_use_fft(use_fft)
        return binary_erode(
            self, width, kernel=kernel, gammapy_rounding=gammapy_rounding, border_value=border_value, method=method
        )

    def fill_holes(self) -> "Map":
        """Boolean map with the holes of its True regions filled
        (:func:`gpumask.fill_holes`)."""
        from ..masks.morphology import fill_holes  # noqa: PLC0415

        return fill_holes(self)

    def remove_small_regions(self, min_area, *, connectivity=1) -> "Map":
        """Boolean map without the True regions smaller than ``min_area`` (pixels
        or a solid angle; :func:`gpumask.remove_small_regions`)."""
        from ..masks.morphology import remove_small_regions  # noqa: PLC0415

        return remove_small_regions(self, min_area, connectivity=connectivity)

    def label(self, *, connectivity=1) -> "Map":
        """int32 map of connected-component labels, per 2-D plane
        (:func:`gpumask.label`)."""
        from ..masks.morphology import label  # noqa: PLC0415

        return label(self, connectivity=connectivity)

    def hysteresis_threshold(self, low, high, *, connectivity=1) -> "Map":
        """Boolean map of the pixels above ``low`` connected to a pixel above
        ``high`` (:func:`gpumask.hysteresis_threshold`)."""
        from ..masks.morphology import hysteresis_threshold  # noqa: PLC0415

        return hysteresis_threshold(self, low, high, connectivity=connectivity)

    # ------------------------------------------------------------------ display
    def _summary(self) -> list[tuple[str, str]]:
        geom = self._geom
        be = self.backend
        backend = be.name
        if be.is_gpu:
            backend += f" (device {self._data.device.id})"
        rows = [
            ("geom", "WcsGeom"),
            ("axes", str(geom.axes_names)),
            ("shape", str(tuple(geom.npix) + tuple(ax.nbin for ax in geom.axes))),
            ("ndim", str(geom.ndim)),
            ("frame", geom.frame),
            ("projection", geom.projection),
            ("unit", self._unit.to_string() or "''"),
            ("dtype", str(self.dtype)),
            ("backend", backend),
        ]
        if self.is_mask:
            # One scalar crosses to the host here, through the counted funnel.
            used = int(to_host(self._data.sum()))
            size = int(self._data.size)
            frac = 100.0 * (size - used) / size if size else 0.0
            rows.append(("excluded", f"{size - used} of {size} pixels ({frac:.2f} %, False = excluded)"))
        if self._provenance is not None:
            kinds = {}
            for k in self._provenance._cols["kind"]:
                kinds[k] = kinds.get(k, 0) + 1
            rows.append(("provenance", f"{self._provenance.n_components} components ("
                         + ", ".join(f"{v} {k}" for k, v in kinds.items()) + "); map.explain()"))
        return rows

    def __repr__(self):
        body = "".join(f"\t{key:<10s} : {value}\n" for key, value in self._summary())
        return f"Map\n\n{body}"

    def _repr_html_(self):
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
            f"{html.escape(v)}</td></tr>"
            for k, v in self._summary()
        )
        return f"<div><strong>gpumask Map</strong><table>{rows}</table></div>"

    def plot(self, ax=None, fig=None, add_cbar=False, stretch="linear", axes_loc=None, kwargs_colorbar=None,
             *, masks=None, kwargs_masks=None, **kwargs):
        """Plot the image on matplotlib WCS axes (gammapy's ``WcsNDMap.plot``).

        One-bin non-spatial axes are squeezed (a ``sqrt_ts`` map with one energy
        bin plots as its image); a map with several bins raises a ValueError
        pointing to :meth:`plot_grid` and :meth:`slice_by_idx`.  The image crosses
        to the host once (counted, via :meth:`to_numpy`).  The code lives in
        ``gpumask.sky._plot`` (matplotlib is imported when called).

        A near-constant image (max - min below 1e-9 of the largest magnitude) is drawn
        in one colour with its value stated (colorbar tick ``"42 (uniform)"``, or the
        title), not as stripes of round-off.  NaN pixels are blank; masks are black
        (False, excluded) and white (True), as in gammapy.

        Parameters
        ----------
        ax : `~astropy.visualization.wcsaxes.WCSAxes`, optional
            Axes to draw on (default: a new WCS subplot of ``fig``).
        fig : `~matplotlib.figure.Figure`, optional
            Figure for the new axes (default: ``plt.gcf()``).
        add_cbar : bool
            Add a colorbar labelled with the unit.
        stretch : {"linear", "sqrt", "power", "log", "sinh", "asinh"}
            Passed to `astropy.visualization.simple_norm` with ``vmin``/``vmax``.
        axes_loc : dict, optional
            Where the colorbar goes (``AxesDivider.append_axes`` arguments).
        kwargs_colorbar : dict, optional
            Passed to ``Figure.colorbar`` (e.g. ``{"label": "sqrt(TS)"}``).
        masks : dict of {str: `Map`} or `Map`, optional
            Keyword-only: boolean maps whose excluded regions are outlined as
            contours, with a legend of the labels (see
            ``gpumask.sky._plot.plot_contours``).
        kwargs_masks : dict, optional
            Keyword-only: passed to ``plot_contours`` (``colors``, ``linewidths``,
            ``linestyles``, ``legend``, ``kwargs_legend``).
        **kwargs
            Passed to ``imshow`` (``cmap``, ``vmin``, ``vmax``, ...).

        Returns
        -------
        ax : `~astropy.visualization.wcsaxes.WCSAxes`

        Examples
        --------
        >>> result = ExcessMapEstimator("0.4 deg").run(dataset)           # doctest: +SKIP
        >>> result["sqrt_ts"].plot(add_cbar=True, stretch="sqrt",          # doctest: +SKIP
        ...                        masks={"catalog": catalog_mask, "significance": sig_mask})
        """
        from ._plot import plot  # noqa: PLC0415

        return plot(self, ax=ax, fig=fig, add_cbar=add_cbar, stretch=stretch, axes_loc=axes_loc,
                    kwargs_colorbar=kwargs_colorbar, masks=masks, kwargs_masks=kwargs_masks, **kwargs)

    def plot_mask(self, ax=None, *, hatch=None, contour=None, by_kind=None, **kwargs):
        """Shade the excluded pixels (False) of a boolean map (gammapy's ``WcsNDMap.plot_mask``).

        ``contourf(levels=[0, 0.5])``, white at alpha 0.5 as gammapy, usually over an
        image drawn first.  One counted host copy.

        Parameters
        ----------
        ax : `~astropy.visualization.wcsaxes.WCSAxes`, optional
        hatch : str, optional
            Keyword-only: a matplotlib hatch pattern (e.g. ``"//"``) for the excluded area.
        contour : bool, str or dict, optional
            Keyword-only: also outline the excluded regions' edges (True: in the
            fill colour; a colour name; or a dict of ``contour`` arguments).
        by_kind : bool, optional
            Keyword-only: colour the excluded pixels by component kind (catalog
            source, region, significance blob, dilation ring, ...) with a legend
            of each kind's excluded fraction.  Default: when the mask carries a
            ``provenance`` (``explain=True``) and no ``colors``/``hatch`` is given.
        **kwargs
            Passed to ``contourf`` (``colors``, ``alpha``, ...).

        Returns
        -------
        ax : `~astropy.visualization.wcsaxes.WCSAxes`

        Examples
        --------
        >>> ax = counts.plot()                                             # doctest: +SKIP
        >>> mask.plot_mask(ax=ax, hatch="//", contour="cyan")              # doctest: +SKIP
        """
        from ._plot import plot_mask  # noqa: PLC0415

        return plot_mask(self, ax=ax, hatch=hatch, contour=contour, by_kind=by_kind, **kwargs)

    def plot_grid(self, figsize=None, ncols=3, **kwargs):
        """One panel per bin of the non-spatial axis, titled with the bin's range
        (gammapy's ``Map.plot_grid``; other axes must have one bin).  The cube
        crosses to the host once (counted).

        Parameters
        ----------
        figsize : tuple, optional
            Default ``(12, 12 * rows / cols)``.
        ncols : int
            Panels per row (default 3).
        **kwargs
            Passed to :meth:`plot` for every panel (``add_cbar``, ``stretch``, ``cmap``, ...).

        Returns
        -------
        axes : `~numpy.ndarray` of `~astropy.visualization.wcsaxes.WCSAxes`
            Shape ``(rows, cols)``.

        Examples
        --------
        >>> cube.plot_grid(ncols=2, add_cbar=True)                         # doctest: +SKIP
        """
        from ._plot import plot_grid  # noqa: PLC0415

        return plot_grid(self, ncols=ncols, figsize=figsize, **kwargs)


#: gammapy's name for the WCS map class.
WcsNDMap = Map
