"""The maps of a gammapy MapDataset file, on a gpumask backend.

gammapy writes a MapDataset as an empty PRIMARY HDU followed by COUNTS, EXPOSURE,
BACKGROUND, EDISP, PSF, MASK_SAFE, MASK_FIT (each with a ``*_BANDS`` table) and GTI.
gpumask reads the maps that exclusion masks and background estimation need:
COUNTS, BACKGROUND, EXPOSURE, MASK_SAFE and MASK_FIT (when present).  IRFs (PSF,
EDISP) are not read.  A MapDatasetOnOff file (COUNTS_OFF, ACCEPTANCE,
ACCEPTANCE_OFF) reads as :class:`MapDatasetOnOff`.
"""

from __future__ import annotations


from .._repr import html_table
from ..backend import common_backend
from .bridge import as_map, is_gammapy_object, qualified_name
from .io import FitsReadError, map_from_hdulist, open_fits
from .maps import Map
from .._utils import expand_user

__all__ = ["MapDataset", "MapDatasetOnOff", "read_dataset"]

_MAP_HDUS = ("COUNTS", "BACKGROUND", "EXPOSURE", "MASK_SAFE", "MASK_FIT")
_ONOFF_HDUS = ("COUNTS_OFF", "ACCEPTANCE", "ACCEPTANCE_OFF")


class MapDataset:
    """Counts, background, exposure and masks of one dataset (gammapy's names).

    Attributes are :class:`~gpumask.Map` objects or None when absent.  All maps
    live on one backend.
    """

    def __init__(self, counts, background=None, exposure=None, mask_safe=None, mask_fit=None, name="", meta=None):
        if not isinstance(counts, Map) and not is_gammapy_object(counts):
            raise TypeError(f"counts must be a gpumask Map or a gammapy WcsNDMap, got {qualified_name(counts)}")
        # gammapy maps join the backend of the gpumask maps given with them
        given = [counts, background, exposure, mask_safe, mask_fit] + [getattr(self, k, None) for k in self._keys]
        backend = next((m.backend for m in given if isinstance(m, Map)), None)
        self.counts = as_map(counts, "counts", backend=backend)
        self.background = _opt_map(background, "background", backend)
        self.exposure = _opt_map(exposure, "exposure", backend)
        self.mask_safe = _opt_map(mask_safe, "mask_safe", backend)
        self.mask_fit = _opt_map(mask_fit, "mask_fit", backend)
        for key in self._keys:
            if key not in _MAP_KEYS:  # the on/off maps, set by the subclass before this
                setattr(self, key, _opt_map(getattr(self, key), key, backend))
        self.name = name
        self.meta = dict(meta or {})
        # gammapy parts a converted dataset carries back (see gpumask.sky.bridge)
        self._gammapy_extras = None
        common_backend(*self.maps.values(), op="MapDataset")
        self._check_geoms(k for k in self._keys if k not in ("counts", "exposure"))

    def _check_geoms(self, keys):
        counts = self.counts
        for key in keys:
            other = getattr(self, key)
            if other is not None and not other.geom == counts.geom:
                raise ValueError(f"{key} geometry differs from the counts geometry")

    _keys = ("counts", "background", "exposure", "mask_safe", "mask_fit")

    @property
    def maps(self) -> dict[str, Map]:
        """The maps present, by gammapy's attribute name."""
        return {k: getattr(self, k) for k in self._keys if getattr(self, k) is not None}

    @property
    def stat_type(self) -> str:
        """``"cash"`` (known background), as gammapy."""
        return "cash"

    @property
    def backend(self):
        return self.counts.backend

    @property
    def mask(self):
        """``mask_safe & mask_fit`` (either alone when the other is absent; None if both are)."""
        if self.mask_safe is None:
            return self.mask_fit
        if self.mask_fit is None:
            return self.mask_safe
        return self.mask_safe & self.mask_fit

    def to_backend(self, backend) -> "MapDataset":
        maps = {k: v.to_backend(backend) for k, v in self.maps.items()}
        out = type(self)(name=self.name, meta=self.meta, **maps)
        out._gammapy_extras = self._gammapy_extras
        return out

    @classmethod
    def from_gammapy(cls, dataset, backend=None) -> "MapDataset":
        """Dataset from a gammapy ``MapDataset`` or ``MapDatasetOnOff``: the maps gpumask
        uses, one counted upload each; the gammapy IRFs, GTI and models are kept by
        reference for :meth:`to_gammapy` (see ``gpumask.sky.bridge.dataset_from_gammapy``).

        Parameters
        ----------
        dataset : `gammapy.datasets.MapDataset` or `gammapy.datasets.MapDatasetOnOff`
        backend : str or `~gpumask.Backend`, optional
            Where the data goes (default: the active selection).

        Returns
        -------
        `MapDataset` or `MapDatasetOnOff`

        Examples
        --------
        >>> from gammapy.datasets import MapDataset as GammapyDataset   # doctest: +SKIP
        >>> gds = GammapyDataset.read("fermi-3fhl-gc.fits.gz")           # doctest: +SKIP
        >>> ds = gpumask.MapDataset.from_gammapy(gds)                    # doctest: +SKIP
        """
        from .bridge import dataset_from_gammapy  # noqa: PLC0415

        return dataset_from_gammapy(dataset, backend=backend)

    def to_gammapy(self):
        """This dataset as a gammapy ``MapDataset`` (``MapDatasetOnOff``): one counted
        host copy per map (see ``gpumask.sky.bridge.dataset_to_gammapy``).

        Returns
        -------
        `gammapy.datasets.MapDataset` or `gammapy.datasets.MapDatasetOnOff`

        Examples
        --------
        >>> ds = gpumask.read_dataset("fermi-3fhl-gc.fits.gz")          # doctest: +SKIP
        >>> gds = ds.to_gammapy()                                        # doctest: +SKIP
        """
        from .bridge import dataset_to_gammapy  # noqa: PLC0415

        return dataset_to_gammapy(self)

    def _summary(self) -> list[tuple[str, str]]:
        rows = []
        for key, m in self.maps.items():
            shape = tuple(m.geom.npix) + tuple(ax.nbin for ax in m.geom.axes)
            rows.append((key, f"shape {shape}, dtype {m.dtype}, unit {m.unit.to_string() or '-'}"))
        return rows

    def __repr__(self):
        lines = [f"{type(self).__name__} {self.name!r} (backend {self.backend.name}, stat_type {self.stat_type})"]
        lines += [f"  {key:<14s}: {value}" for key, value in self._summary()]
        return "\n".join(lines)

    def _repr_html_(self):
        geom = self.counts.geom
        head = [
            ("name", repr(self.name)),
            ("stat_type", self.stat_type),
            ("backend", self.backend.name),
            ("axes", ", ".join(geom.axes_names)),
            ("frame / projection", f"{geom.frame} / {geom.projection}"),
        ]
        return html_table(f"gpumask {type(self).__name__}", head + self._summary())


class MapDatasetOnOff(MapDataset):
    """On/off dataset (gammapy's MapDatasetOnOff): counts, counts_off and the on and
    off acceptances; ``alpha = acceptance / acceptance_off``.

    ``background`` is not stored: as in gammapy it is ``alpha * counts_off`` (see
    :attr:`background`).
    """

    _keys = ("counts", "counts_off", "acceptance", "acceptance_off", "exposure", "mask_safe", "mask_fit")

    def __init__(
        self,
        counts,
        counts_off=None,
        acceptance=None,
        acceptance_off=None,
        exposure=None,
        mask_safe=None,
        mask_fit=None,
        name="",
        meta=None,
    ):
        self.counts_off = counts_off
        self.acceptance = acceptance
        self.acceptance_off = acceptance_off
        super().__init__(counts, None, exposure, mask_safe, mask_fit, name=name, meta=meta)

    @property
    def stat_type(self) -> str:
        """``"wstat"`` (on/off), as gammapy."""
        return "wstat"

    @property
    def alpha(self) -> Map:
        """``acceptance / acceptance_off`` with NaN and inf replaced as gammapy does
        (``nan_to_num``: 0 and the largest float)."""
        if self.acceptance is None or self.acceptance_off is None:
            raise ValueError("alpha needs both acceptance and acceptance_off")
        xp = self.backend.xp
        with _np_errstate():
            data = xp.nan_to_num(self.acceptance.data / self.acceptance_off.data.astype(xp.float64))
        return Map.from_geom(self.counts.geom, data=data)

    @property
    def background(self):
        """``alpha * counts_off`` (None without counts_off), gammapy's definition."""
        if self.counts_off is None:
            return None
        return Map.from_geom(self.counts.geom, data=self.alpha.data * self.counts_off.data)

    @background.setter
    def background(self, value):
        if value is not None:
            raise AttributeError("an on/off dataset's background is alpha * counts_off; it cannot be set")


_MAP_KEYS = ("counts", "background", "exposure", "mask_safe", "mask_fit")


def _opt_map(value, name, backend):
    if value is None or isinstance(value, Map):
        return value
    return as_map(value, name, backend=backend)


def _np_errstate():
    import numpy as np  # noqa: PLC0415

    return np.errstate(invalid="ignore", divide="ignore")


def read_dataset(filename, name=None, backend=None) -> MapDataset:
    """Read the maps of a gammapy MapDataset FITS file.

    Parameters
    ----------
    filename : str or path
    name : str, optional
        Dataset name (default: the file name stem).
    backend : str, optional
        Where the data goes (``backend=`` > context > ``GPUMASK_BACKEND`` > auto).
    """
    path = expand_user(filename)
    with open_fits(path) as hdulist:
        present = [h.name for h in hdulist]
        if "COUNTS" not in present:
            raise FitsReadError(f"{path}: not a MapDataset file, no COUNTS HDU (HDUs: {present})")
        onoff = "COUNTS_OFF" in present
        maps = {}
        for key in _MAP_HDUS + (_ONOFF_HDUS if onoff else ()):
            if key in present and not (onoff and key == "BACKGROUND"):
                maps[key.lower()] = map_from_hdulist(hdulist, hdu=key, backend=backend, path=str(path))
    if name is None:
        name = path.name.split(".")[0]
    cls = MapDatasetOnOff if onoff else MapDataset
    counts = maps["counts"]
    for key, m in maps.items():
        if key not in ("counts", "exposure") and not m.geom == counts.geom:
            raise FitsReadError(
                f"{path}[{key.upper()}]: geometry differs from the COUNTS geometry "
                f"({_geom_difference(m.geom, counts.geom)}); the maps of a dataset share one geometry"
            )
    try:
        return cls(name=name, **maps)
    except (ValueError, TypeError) as exc:
        raise FitsReadError(f"{path}: {exc}") from None


def _geom_difference(geom, ref) -> str:
    """What differs between two geometries, for messages."""
    if geom.data_shape != ref.data_shape:
        return f"data shape {geom.data_shape}, COUNTS has {ref.data_shape}"
    if len(geom.axes) != len(ref.axes) or not all(a.is_allclose(b) for a, b in zip(geom.axes, ref.axes)):
        return f"axes {[ax.name for ax in geom.axes]} differ in their nodes or units"
    wcs, ref_wcs = geom.wcs.wcs, ref.wcs.wcs
    return (
        f"WCS: CTYPE {list(wcs.ctype)}, CRVAL {list(wcs.crval)}, CRPIX {list(wcs.crpix)}, "
        f"CDELT {list(wcs.cdelt)}; COUNTS has {list(ref_wcs.ctype)}, {list(ref_wcs.crval)}, "
        f"{list(ref_wcs.crpix)}, {list(ref_wcs.cdelt)}"
    )
