"""Non-spatial map axes (energy, true energy, any named axis).

A :class:`MapAxis` is a small host-side object, like gammapy's: ``nodes`` are either
bin edges (``node_type="edges"``) or bin centres (``node_type="center"``), and
coordinates are interpolated piecewise linearly between nodes in a transformed
space (``interp``: ``"lin"``, ``"log"`` or ``"sqrt"``).  With ``interp="log"`` the
centre of an energy bin is the geometric mean of its edges, as in gammapy.

Bands tables (the ``*_BANDS``, ``EBOUNDS`` and ``ENERGIES`` HDUs) are read and
written in gammapy's layouts ("gadf", "fgst-ccube", "fgst-template").

:class:`MapAxes` is the tuple a geometry keeps its axes in; like gammapy's, it is
also indexed by axis name (``geom.axes["energy"]``).

Axis coordinates of device arrays (cupy) are converted on the device: the small
node tables are uploaded once (:func:`gpumask.backend.device_constant`).
``MapAxis.from_gammapy``/``to_gammapy`` import :mod:`gpumask.sky.bridge` when called.
"""

from __future__ import annotations

import warnings

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import Table

from .._repr import html_table
from ..backend import backend_of, device_constant, is_device_array

__all__ = ["MapAxis", "MapAxes", "axes_header", "axes_to_bands_hdu", "axes_from_bands_hdu"]

_INTERPS = ("lin", "log", "sqrt")
_NODE_TYPES = ("edges", "center")


def _forward(values, interp, xp=np):
    if interp == "lin":
        return values
    if interp == "log":
        return xp.log(values)
    return xp.sign(values) * xp.sqrt(xp.abs(values))


def _inverse(values, interp, xp=np):
    if interp == "lin":
        return values
    if interp == "log":
        return xp.exp(values)
    return xp.sign(values) * values**2


class MapAxis:
    """One non-spatial axis of a map.

    Parameters
    ----------
    nodes : array-like or `~astropy.units.Quantity`
        Bin edges (``node_type="edges"``, n+1 values) or bin centres
        (``node_type="center"``, n values); strictly increasing.
    interp : {"lin", "log", "sqrt"}
        Space in which coordinates are interpolated between nodes.
    name : str
        Axis name; gammapy's conventions are ``"energy"`` (reconstructed) and
        ``"energy_true"``.
    node_type : {"edges", "center"}
    unit : str or `~astropy.units.Unit`, optional
        Unit when ``nodes`` is not a Quantity.
    """

    def __init__(self, nodes, *, interp="lin", name="", node_type="edges", unit=None):
        if interp not in _INTERPS:
            raise ValueError(f"interp must be one of {_INTERPS}, got {interp!r}")
        if node_type not in _NODE_TYPES:
            raise ValueError(f"node_type must be one of {_NODE_TYPES}, got {node_type!r}")
        if not isinstance(name, str):
            raise TypeError(f"axis name must be a string, got {name!r}")
        if isinstance(nodes, u.Quantity):
            unit = nodes.unit if unit is None else u.Unit(unit)
            values = nodes.to_value(unit)
        else:
            unit = u.Unit("" if unit is None else unit)
            values = nodes
        values = np.array(values, dtype=float).ravel()
        min_nodes = 2 if node_type == "edges" else 1
        if values.size < min_nodes:
            raise ValueError(
                f"axis {name!r} needs at least {min_nodes} node(s) for node_type="
                f"{node_type!r}, got {values.size}"
            )
        if not np.all(np.isfinite(values)):
            raise ValueError(f"axis {name!r} nodes must be finite, got {values}")
        if values.size > 1 and not np.all(np.diff(values) > 0):
            raise ValueError(f"axis {name!r} nodes must be strictly increasing, got {values}")
        if interp == "log" and np.any(values <= 0):
            raise ValueError(f"axis {name!r} with interp='log' needs positive nodes, got {values}")
        self._nodes = values
        self._unit = unit
        self._interp = interp
        self._name = name
        self._node_type = node_type

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_edges(cls, edges, *, unit=None, interp="lin", name=""):
        """Axis from bin edges."""
        return cls(edges, unit=unit, interp=interp, name=name, node_type="edges")

    @classmethod
    def from_nodes(cls, nodes, *, unit=None, interp="lin", name=""):
        """Axis from bin centres."""
        return cls(nodes, unit=unit, interp=interp, name=name, node_type="center")

    @classmethod
    def from_energy_edges(cls, energy_edges, *, unit=None, name="energy", interp="log"):
        """Energy axis from edges (log interpolation by default)."""
        axis = cls.from_edges(energy_edges, unit=unit, interp=interp, name=name)
        axis._check_energy()
        return axis

    @classmethod
    def from_energy_bounds(
        cls,
        energy_min,
        energy_max,
        nbin,
        *,
        unit=None,
        per_decade=False,
        name="energy",
        node_type="edges",
    ):
        """Log-spaced energy axis between two bounds, as gammapy's method of the same name.

        ``nbin`` is the total number of bins, or bins per decade when ``per_decade``.
        """
        emin = u.Quantity(energy_min, unit)
        emax = u.Quantity(energy_max, unit)
        unit = emax.unit if unit is None else u.Unit(unit)  # gammapy takes energy_max's unit
        lo, hi = emin.to_value(unit), emax.to_value(unit)
        if not (0 < lo < hi):
            raise ValueError(f"need 0 < energy_min < energy_max, got {emin} and {emax}")
        if per_decade:
            nbin = int(np.ceil(np.log10(hi / lo) * nbin))
        if int(nbin) != nbin or nbin < 1:
            raise ValueError(f"nbin must be a positive integer, got {nbin!r}")
        nbin = int(nbin)
        if node_type == "edges":
            nodes = np.geomspace(lo, hi, nbin + 1)
        elif node_type == "center":
            # gammapy: the bounds are the first and last node
            nodes = np.geomspace(lo, hi, nbin)
        else:
            raise ValueError(f"node_type must be one of {_NODE_TYPES}, got {node_type!r}")
        axis = cls(nodes, unit=unit, interp="log", name=name, node_type=node_type)
        axis._check_energy()
        return axis

    def _check_energy(self):
        if not self._unit.is_equivalent("eV"):
            raise ValueError(f"energy axis {self._name!r} needs an energy unit, got {self._unit!r}")

    # ------------------------------------------------------------------ properties
    @property
    def name(self) -> str:
        return self._name

    @property
    def unit(self) -> u.Unit:
        """Unit of the axis coordinates (nodes, edges, centers)."""
        return self._unit

    @property
    def interp(self) -> str:
        return self._interp

    @property
    def node_type(self) -> str:
        return self._node_type

    @property
    def nbin(self) -> int:
        return self._nodes.size - 1 if self._node_type == "edges" else self._nodes.size

    @property
    def nodes(self) -> u.Quantity:
        return u.Quantity(self._nodes, self._unit)

    @property
    def is_energy_axis(self) -> bool:
        return self._name in ("energy", "energy_true")

    @property
    def edges(self) -> u.Quantity:
        """Bin edges (n+1 values)."""
        return self.pix_to_coord(np.arange(self.nbin + 1, dtype=float) - 0.5)

    @property
    def edges_min(self) -> u.Quantity:
        return self.edges[:-1]

    @property
    def edges_max(self) -> u.Quantity:
        return self.edges[1:]

    @property
    def center(self) -> u.Quantity:
        """Bin centres (log centre for ``interp="log"``)."""
        return self.pix_to_coord(np.arange(self.nbin, dtype=float))

    @property
    def bin_width(self) -> u.Quantity:
        return np.diff(self.edges)

    # ------------------------------------------------------------------ conversions
    def _node_pix(self):
        offset = 0.5 if self._node_type == "edges" else 0.0
        return np.arange(self._nodes.size, dtype=float) - offset

    def pix_to_coord(self, pix):
        """Axis coordinate at (fractional, 0-based) bin index ``pix``; linear
        extrapolation in the interpolation space beyond the nodes.

        Host input gives a `~astropy.units.Quantity`; a device (cupy) array gives a
        device array of values in :attr:`unit` (Quantities hold host memory only).
        """
        if is_device_array(pix):
            xp = backend_of(pix).xp
            pix = pix.astype(np.float64)
            if self._nodes.size == 1:
                return xp.full(pix.shape, float(self._nodes[0]))
            xp_, fp_ = self._node_tables(backend_of(pix), forward=True)
            return _inverse(_interp_extrap(pix, xp_, fp_, xp), self._interp, xp)
        pix = np.asarray(pix, dtype=float)
        xp_, fp_ = self._node_pix(), _forward(self._nodes, self._interp)
        if fp_.size == 1:
            values = np.broadcast_to(self._nodes[0], pix.shape).copy()
        else:
            values = _inverse(_interp_extrap(pix, xp_, fp_), self._interp)
        return u.Quantity(values, self._unit)

    def coord_to_pix(self, coord):
        """Fractional bin index of ``coord`` (inverse of :meth:`pix_to_coord`).

        ``coord``: a Quantity (any convertible unit), a string such as ``"1 TeV"``,
        numbers in :attr:`unit`, or a device (cupy) array in :attr:`unit`, which is
        converted on its device.
        """
        if is_device_array(coord):
            be = backend_of(coord)
            values = coord.astype(np.float64)
            if self._nodes.size == 1:
                return be.xp.where(values == float(self._nodes[0]), 0.0, np.nan)
            xp_, fp_ = self._node_tables(be, forward=False)
            return _interp_extrap(_forward(values, self._interp, be.xp), xp_, fp_, be.xp)
        values = u.Quantity(coord, self._unit).to_value(self._unit)
        values = np.asarray(values, dtype=float)
        fp_, xp_ = self._node_pix(), _forward(self._nodes, self._interp)
        if xp_.size == 1:
            return np.where(values == self._nodes[0], 0.0, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):  # log of <= 0: NaN / -inf pixels
            fwd = _forward(values, self._interp)
        return _interp_extrap(fwd, xp_, fp_)

    def _node_tables(self, backend, forward):
        """(x, y) node tables on ``backend`` for device interpolation: pixel ->
        transformed coordinate (``forward=True``) or the inverse."""
        pix, fwd = self._node_pix(), _forward(self._nodes, self._interp)
        x, y = (pix, fwd) if forward else (fwd, pix)
        return device_constant(np.ascontiguousarray(x), backend), device_constant(np.ascontiguousarray(y), backend)

    def coord_to_idx(self, coord, clip=False) -> np.ndarray:
        """Integer bin index of ``coord``; -1 outside the axis unless ``clip``."""
        pix = self.coord_to_pix(coord)
        finite = np.isfinite(pix)
        idx = np.floor(np.where(finite, pix, 0.0) + 0.5).astype(int)
        if clip:
            idx = np.clip(idx, 0, self.nbin - 1)
        else:
            idx = np.where((idx < 0) | (idx >= self.nbin), -1, idx)
        return np.where(finite, idx, -1)  # NaN/inf never land in a bin (as gammapy)

    def squash(self) -> "MapAxis":
        """One bin spanning the whole axis (edges first and last edge)."""
        edges = self.edges
        return MapAxis.from_edges(edges[[0, -1]], interp=self._interp, name=self._name)

    def slice(self, idx) -> "MapAxis":
        """Axis restricted to the bins selected by the slice ``idx`` (step 1)."""
        start, stop, step = idx.indices(self.nbin)
        if step != 1 or stop <= start:
            raise ValueError(f"axis {self._name!r}: need a non-empty slice with step 1, got {idx}")
        if self._node_type == "edges":
            nodes = self._nodes[start : stop + 1]
        else:
            nodes = self._nodes[start:stop]
        return MapAxis(
            u.Quantity(nodes, self._unit), interp=self._interp, name=self._name,
            node_type=self._node_type,
        )

    def pix_to_idx(self, pix, clip=False):
        """Bin indices from integer pixel indices, as gammapy: -1 outside
        ``[0, nbin)`` unless ``clip``, which clips into range.  Stays on the
        backend of ``pix``.

        Examples
        --------
        >>> axis = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 3)
        >>> axis.pix_to_idx(np.array([-1, 0, 2, 3]))
        array([-1,  0,  2, -1])
        """
        xp = backend_of(pix).xp
        pix = xp.asarray(pix)
        if clip:
            return xp.clip(pix, 0, self.nbin - 1)
        return xp.where((pix < 0) | (pix >= self.nbin), -1, pix)

    def pad(self, pad_width) -> "MapAxis":
        """Axis with ``pad_width`` bins added below and above (gammapy's method).

        Parameters
        ----------
        pad_width : int or (int, int)
            Bins added at both ends, or ``(low, high)``.  New nodes are extrapolated
            linearly in the interpolation space (e.g. log-spaced for energy).

        Returns
        -------
        axis : `MapAxis`
            Same name, interpolation and node type.

        Examples
        --------
        >>> MapAxis.from_edges([1.0, 2.0, 3.0], name="x").pad(1).edges.value
        array([0., 1., 2., 3., 4.])
        """
        low, high = _pad_pair(pad_width, f"pad_width of axis {self._name!r}")
        if self._nodes.size == 1 and low + high > 0:
            raise ValueError(f"axis {self._name!r} has a single node: there is no spacing to pad with")
        if self._node_type == "edges":
            pix = np.arange(-low, self.nbin + high + 1) - 0.5
            return MapAxis.from_edges(self.pix_to_coord(pix), interp=self._interp, name=self._name)
        pix = np.arange(-low, self.nbin + high, dtype=float)
        return MapAxis.from_nodes(self.pix_to_coord(pix), interp=self._interp, name=self._name)

    def upsample(self, factor) -> "MapAxis":
        """Axis with ``factor`` times finer bins (gammapy's method).

        Edges axes get ``nbin * factor`` bins that split every bin evenly in the
        interpolation space (the old edges are kept); centre-node axes get
        ``(nbin - 1) * factor + 1`` nodes.

        Parameters
        ----------
        factor : int
            Positive integer.

        Returns
        -------
        axis : `MapAxis`

        Examples
        --------
        >>> MapAxis.from_energy_bounds("1 TeV", "100 TeV", 2).upsample(2).nbin
        4
        """
        factor = _factor(factor)
        if self._node_type == "edges":
            pix = np.linspace(-0.5, self.nbin - 0.5, self.nbin * factor + 1)
            return MapAxis.from_edges(self.pix_to_coord(pix), interp=self._interp, name=self._name)
        pix = np.linspace(0.0, self.nbin - 1.0, (self.nbin - 1) * factor + 1)
        return MapAxis.from_nodes(self.pix_to_coord(pix), interp=self._interp, name=self._name)

    def downsample(self, factor, strict=True) -> "MapAxis":
        """Axis keeping every ``factor``-th edge (or node), as gammapy's method.

        Parameters
        ----------
        factor : int
            Positive integer.
        strict : bool
            With True, ``nbin`` (edges) or ``nbin - 1`` (centre nodes) must be a
            multiple of ``factor`` (ValueError otherwise); with False the remainder
            goes into the last bin.

        Returns
        -------
        axis : `MapAxis`

        Examples
        --------
        >>> MapAxis.from_energy_bounds("1 TeV", "100 TeV", 4).downsample(2).nbin
        2
        """
        factor = _factor(factor)
        if self._node_type == "edges":
            values, what = self.edges, f"Number of {self._name} bins ({self.nbin})"
        else:
            values, what = self.center, f"Number of {self._name} bins - 1 ({self.nbin - 1})"
        kept = values[::factor]
        if kept[-1] != values[-1]:
            if strict:
                raise ValueError(f"{what} is not divisible by {factor}")
            kept = np.append(kept, values[-1:])
        if self._node_type == "edges":
            return MapAxis.from_edges(kept, interp=self._interp, name=self._name)
        return MapAxis.from_nodes(kept, interp=self._interp, name=self._name)

    def _group_bounds(self, edges) -> np.ndarray:
        """Bin indices ``k_0 < k_1 < ...`` where the coarser ``edges`` fall, each
        snapped to the nearest edge of this axis (gammapy's ``group_table``, normal
        groups only): group ``i`` gathers bins ``k_i .. k_{i+1} - 1``."""
        if self._node_type != "edges":
            raise ValueError(f"axis {self._name!r}: only an edges axis can be regrouped")
        with np.errstate(invalid="ignore", divide="ignore"):
            pix = np.clip(self.coord_to_pix(edges), -0.5, self.nbin - 0.5)
        bounds = np.unique(np.round(pix + 0.5)).astype(int)  # round half to even, as gammapy
        if bounds.size < 2:
            raise ValueError(
                f"no overlap between the edges {edges} and the bins of axis {self._name!r} ({self.edges})"
            )
        return bounds

    @classmethod
    def from_gammapy(cls, axis) -> "MapAxis":
        """The gpumask axis equal to a gammapy ``MapAxis``.

        A thin wrapper of ``gpumask.sky.bridge.axis_from_gammapy`` (imported
        when called).

        Parameters
        ----------
        axis : `gammapy.maps.MapAxis`

        Returns
        -------
        axis : `MapAxis`

        Examples
        --------
        >>> from gammapy.maps import MapAxis as GammapyAxis  # doctest: +SKIP
        >>> MapAxis.from_gammapy(GammapyAxis.from_energy_bounds("1 TeV", "10 TeV", 3))  # doctest: +SKIP
        """
        from .bridge import axis_from_gammapy  # noqa: PLC0415 - gammapy is optional

        return axis_from_gammapy(axis)

    def to_gammapy(self):
        """This axis as a gammapy ``MapAxis``.

        A thin wrapper of ``gpumask.sky.bridge.axis_to_gammapy`` (imported when
        called; needs gammapy).

        Returns
        -------
        axis : `gammapy.maps.MapAxis`

        Examples
        --------
        >>> MapAxis.from_energy_bounds("1 TeV", "10 TeV", 3).to_gammapy()  # doctest: +SKIP
        """
        from .bridge import axis_to_gammapy  # noqa: PLC0415 - gammapy is optional

        return axis_to_gammapy(self)

    def copy(self, **kwargs):
        params = dict(
            nodes=self.nodes, interp=self._interp, name=self._name, node_type=self._node_type
        )
        params.update(kwargs)
        return MapAxis(**params)

    def is_allclose(self, other, rtol=1e-6, atol=1e-6) -> bool:
        if not isinstance(other, MapAxis):
            return False
        if (self._name, self._interp, self._node_type, self._nodes.size) != (
            other._name,
            other._interp,
            other._node_type,
            other._nodes.size,
        ):
            return False
        if not self._unit.is_equivalent(other._unit):
            return False
        theirs = u.Quantity(other._nodes, other._unit).to_value(self._unit)
        return bool(np.allclose(self._nodes, theirs, rtol=rtol, atol=atol))

    def __eq__(self, other):
        if not isinstance(other, MapAxis):
            return NotImplemented
        return self.is_allclose(other)

    __hash__ = None

    def __repr__(self):
        lo, hi = self.edges[0], self.edges[-1]
        return (
            f"MapAxis(name={self._name!r}, nbin={self.nbin}, node_type={self._node_type!r}, "
            f"interp={self._interp!r}, range=[{lo.value:.4g}, {hi.value:.4g}] {self._unit})"
        )

    def _repr_html_(self):
        edges = self.edges.value
        shown = ", ".join(f"{v:.4g}" for v in edges) if edges.size <= 12 else (
            ", ".join(f"{v:.4g}" for v in edges[:5]) + ", ..., " + ", ".join(f"{v:.4g}" for v in edges[-5:]))
        rows = [
            ("name", self._name or "''"),
            ("nbin", str(self.nbin)),
            ("node type", self._node_type),
            ("interp", self._interp),
            ("unit", self._unit.to_string() or "''"),
            ("edges", shown),
        ]
        return html_table("gpumask MapAxis", rows)


def _interp_extrap(x, xp_, fp_, xp=np):
    """Piecewise linear interpolation with linear extrapolation (xp_ increasing);
    ``xp_``/``fp_`` on the backend of ``x``."""
    if xp is not np:
        # no data-dependent branches on the device: both tails are always evaluated
        out = xp.interp(x, xp_, fp_)
        lo = fp_[0] + (x - xp_[0]) * ((fp_[1] - fp_[0]) / (xp_[1] - xp_[0]))
        hi = fp_[-1] + (x - xp_[-1]) * ((fp_[-1] - fp_[-2]) / (xp_[-1] - xp_[-2]))
        return xp.where(x < xp_[0], lo, xp.where(x > xp_[-1], hi, out))
    out = np.interp(x, xp_, fp_)
    lo = x < xp_[0]
    hi = x > xp_[-1]
    if np.any(lo):
        slope = (fp_[1] - fp_[0]) / (xp_[1] - xp_[0])
        out = np.where(lo, fp_[0] + (x - xp_[0]) * slope, out)
    if np.any(hi):
        slope = (fp_[-1] - fp_[-2]) / (xp_[-1] - xp_[-2])
        out = np.where(hi, fp_[-1] + (x - xp_[-1]) * slope, out)
    return out


def _factor(factor) -> int:
    """A resampling factor: a positive integer (an integral float is accepted)."""
    ok = isinstance(factor, (int, np.integer, float, np.floating)) and not isinstance(factor, (bool, np.bool_))
    if not ok or not np.isfinite(factor) or int(factor) != factor or factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor!r}")
    return int(factor)


def _pad_pair(pad_width, what) -> tuple[int, int]:
    """``(low, high)`` from one non-negative int or a pair."""
    values = tuple(pad_width) if isinstance(pad_width, (tuple, list, np.ndarray)) else (pad_width, pad_width)
    if len(values) != 2:
        raise ValueError(f"{what} must be an int or a pair (low, high), got {pad_width!r}")
    out = []
    for v in values:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer, float, np.floating)) \
                or not np.isfinite(v) or int(v) != v or v < 0:
            raise ValueError(f"{what} must be non-negative whole numbers of bins, got {pad_width!r}")
        out.append(int(v))
    return tuple(out)


class MapAxes(tuple):
    """The non-spatial axes of a geometry: a tuple of :class:`~gpumask.MapAxis`, innermost
    first, that is also indexed by axis name as gammapy's ``MapAxes``.

    Parameters
    ----------
    axes : iterable of `MapAxis`

    Examples
    --------
    >>> axes = MapAxes([MapAxis.from_energy_bounds("1 TeV", "10 TeV", 3)])
    >>> axes["energy"].nbin, axes.names, axes.index_data("energy")
    (3, ['energy'], 0)
    """

    def __new__(cls, axes=()):
        return super().__new__(cls, axes)

    def __getitem__(self, key):
        if isinstance(key, str):
            for ax in self:
                if ax.name == key:
                    return ax
            raise KeyError(f"no axis {key!r}; the axes are {self.names}")
        out = super().__getitem__(key)
        return MapAxes(out) if isinstance(key, slice) else out

    def __add__(self, other):
        return MapAxes(tuple(self) + tuple(other))

    @property
    def names(self) -> list[str]:
        """Axis names, innermost first."""
        return [ax.name for ax in self]

    @property
    def shape(self) -> tuple[int, ...]:
        """Number of bins of each axis, innermost first."""
        return tuple(ax.nbin for ax in self)

    def index(self, axis_name) -> int:
        """Position of ``axis_name`` in the axes (ValueError naming the axes if absent)."""
        if axis_name not in self.names:
            raise ValueError(f"no axis {axis_name!r}; the axes are {self.names}")
        return self.names.index(axis_name)

    def index_data(self, axis_name) -> int:
        """Data dimension of ``axis_name`` (data is reversed axes then ``(y, x)``)."""
        return len(self) - 1 - self.index(axis_name)


# ---------------------------------------------------------------------- bands tables


def _gadf_colnames(axis):
    name = axis.name.upper()
    if name == "ENERGY":
        return "ENERGY", "E_MIN", "E_MAX"
    return name, f"{name}_MIN", f"{name}_MAX"


def axes_header(axes) -> fits.Header:
    """gammapy's ``AXCOLSi``/``INTERPi`` keywords for ``axes`` (1-based ``i``); they
    go both on the bands table and on the image HDU."""
    header = fits.Header()
    for idx, ax in enumerate(axes, start=1):
        ctr, cmin, cmax = _gadf_colnames(ax)
        header[f"AXCOLS{idx}"] = f"{cmin},{cmax}" if ax.node_type == "edges" else ctr
        header[f"INTERP{idx}"] = ax.interp
    return header


def axes_to_bands_hdu(axes, hdu_bands="BANDS") -> fits.BinTableHDU:
    """gammapy "gadf" bands table for ``axes`` (CHANNEL, centre, MIN/MAX columns,
    ``AXCOLSi``/``INTERPi`` keywords), the layout gammapy 2.1 writes and reads."""
    axes = list(axes)
    table = Table()
    nchan = int(np.prod([ax.nbin for ax in axes]))
    table["CHANNEL"] = np.arange(nchan)
    # gammapy ravels np.meshgrid(...) with its default "xy" indexing; do the same so
    # multi-axis tables line up with the files gammapy writes.
    centers = np.meshgrid(*[ax.center.value for ax in axes])
    mins = np.meshgrid(*[ax.edges_min.value for ax in axes])
    maxs = np.meshgrid(*[ax.edges_max.value for ax in axes])
    for idx, ax in enumerate(axes):
        for colname, grid in zip(_gadf_colnames(ax), (centers, mins, maxs)):
            table[colname] = u.Quantity(np.ravel(grid[idx]), ax.unit)
    return fits.BinTableHDU(table, name=hdu_bands, header=axes_header(axes))


def axes_from_bands_hdu(hdu, format="gadf") -> list[MapAxis]:
    """Axes described by a bands table HDU.

    ``format``: ``"gadf"`` (``*_BANDS`` with ``AXCOLSi``), ``"fgst-ccube"`` (Fermi
    ``EBOUNDS``: E_MIN/E_MAX, reconstructed energy) or ``"fgst-template"`` (Fermi
    ``ENERGIES``: node energies in MeV, true energy).
    """
    if hdu is None:
        return []
    with warnings.catch_warnings():
        # a unit astropy cannot parse becomes an UnrecognizedUnit; _column refuses it
        warnings.simplefilter("ignore", u.UnitsWarning)
        table = Table.read(hdu)
    if format == "fgst-ccube":
        emin, emax = _column(table, "E_MIN", "keV"), _column(table, "E_MAX", "keV")
        edges = np.append(emin.value, emax.to_value(emin.unit)[-1]) * emin.unit
        return [MapAxis.from_edges(edges, interp="log", name="energy")]
    if format == "fgst-template":
        for name in ("ENERGY", "Energy", "energy"):
            if name in table.colnames:
                nodes = _column(table, name, "MeV")
                return [MapAxis.from_nodes(nodes, interp="log", name="energy_true")]
        raise ValueError(f"ENERGIES table has no ENERGY column (columns: {table.colnames})")
    if format != "gadf":
        raise ValueError(
            f"unknown bands format {format!r}; use 'gadf', 'fgst-ccube' or 'fgst-template'"
        )
    axes = []
    for idx in range(1, 10):
        axcols = table.meta.get(f"AXCOLS{idx}")
        if axcols is None:
            break
        if not isinstance(axcols, str):
            raise ValueError(
                f"AXCOLS{idx} = {axcols!r} is not a column list (accepted: 'NAME' or 'NAME_MIN,NAME_MAX')"
            )
        cols = [c.strip() for c in axcols.split(",")]
        if len(cols) not in (1, 2) or not all(cols):
            raise ValueError(
                f"AXCOLS{idx} = {axcols!r} is not a column list (accepted: 'NAME' or 'NAME_MIN,NAME_MAX')"
            )
        interp = table.meta.get(f"INTERP{idx}", "lin")
        if len(cols) == 2:
            name = "energy" if cols[0] == "E_MIN" else cols[0].removesuffix("_MIN").lower()
            lo = np.unique(_column(table, cols[0]))
            hi = np.unique(_column(table, cols[1]).to(lo.unit))
            edges = np.append(lo.value, hi.value[-1]) * lo.unit
            axes.append(MapAxis.from_edges(edges, interp=interp, name=name))
        else:
            name = cols[0].lower()
            if name == "theta":  # gammapy's backward-compatible spelling
                name = "rad"
            axes.append(
                MapAxis.from_nodes(np.unique(_column(table, cols[0])), interp=interp, name=name)
            )
    return axes


def _column(table, name, default_unit=""):
    if name not in table.colnames:
        raise KeyError(f"bands table has no column {name!r} (columns: {table.colnames})")
    col = table[name]
    unit = col.unit if col.unit is not None else u.Unit(default_unit)
    if isinstance(unit, u.UnrecognizedUnit):
        raise ValueError(f"bands table column {name!r} has an unknown unit {unit.to_string()!r}")
    if col.ndim != 1 or col.dtype.kind not in "iuf":
        raise ValueError(
            f"bands table column {name!r} must hold one number per row, got {col.dtype} {col.shape}"
        )
    return u.Quantity(np.asarray(col, dtype=float), unit)
