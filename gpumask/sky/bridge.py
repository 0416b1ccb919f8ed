"""gammapy <-> gpumask: conversion of geometries, axes, maps and datasets.

gammapy is optional (``pip install "gpumask[gammapy]"``).  Nothing here imports it
at module level: a gammapy object is recognised by the module of its type, so
``import gpumask`` stays free of gammapy, and gammapy is imported only when a
gpumask object is converted *to* gammapy.

Two kinds of functions live here:

- the conversions, ``*_from_gammapy`` and ``*_to_gammapy`` (also reached as
  ``WcsGeom.from_gammapy``, ``Map.to_gammapy`` and so on).  Data crosses once: a
  gammapy map's array is uploaded with one counted :func:`~gpumask.to_device` (on
  the NumPy backend it is copied, so the two maps never share memory), and a
  gpumask map reaches gammapy through one counted :func:`~gpumask.to_host`;
- the boundary coercions :func:`as_geom`, :func:`as_map` and :func:`as_dataset`,
  which every public gpumask function applies to its inputs: gpumask objects pass
  through unchanged, gammapy objects are converted, anything else is refused with
  a TypeError naming its module-qualified type and what is accepted.

Round trips are exact: data bit for bit (dtype included, boolean masks stay
boolean), axes node for node, and the WCS object copied as it is, so gammapy's
own ``==`` holds between a geometry and its round trip.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u

from ..backend import is_device_array, resolve_backend, to_device, to_host
from .axes import MapAxis
from .geom import WcsGeom

__all__ = [
    "GAMMAPY_EXTRA",
    "as_dataset",
    "as_geom",
    "as_map",
    "axis_from_gammapy",
    "axis_to_gammapy",
    "dataset_from_gammapy",
    "dataset_to_gammapy",
    "geom_from_gammapy",
    "geom_to_gammapy",
    "is_gammapy_object",
    "map_from_gammapy",
    "map_to_gammapy",
    "qualified_name",
]

#: What to install for the conversions to gammapy.
GAMMAPY_EXTRA = 'pip install "gpumask[gammapy]"  (gammapy 2.1 with regions<0.12)'

# Maps of a gammapy dataset that gpumask holds, per dataset kind.
_DATASET_MAPS = ("counts", "background", "exposure", "mask_safe", "mask_fit")
_ONOFF_MAPS = ("counts", "counts_off", "acceptance", "acceptance_off", "exposure", "mask_safe", "mask_fit")
# gammapy objects a dataset carries that gpumask does not use; kept untouched (host
# objects, no data copy) so that ``to_gammapy`` gives them back.
_DATASET_EXTRAS = ("psf", "edisp", "gti", "models", "meta_table", "meta")


# --------------------------------------------------------------------------- helpers


def qualified_name(obj) -> str:
    """Module-qualified type name of ``obj``, e.g. ``gammapy.maps.wcs.geom.WcsGeom``."""
    cls = type(obj)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def is_gammapy_object(obj) -> bool:
    """Whether ``obj`` is an instance of a gammapy class (checked without importing gammapy)."""
    return any(c.__module__.split(".")[0] == "gammapy" for c in type(obj).__mro__)


def _is_gammapy(obj, *names) -> bool:
    """Whether ``obj`` is a gammapy object whose class (or a base class) is named one of ``names``."""
    return is_gammapy_object(obj) and any(c.__name__ in names for c in type(obj).__mro__)


def _gammapy_maps():
    try:
        import gammapy.maps as gmaps  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        raise ImportError(f"converting to gammapy objects needs gammapy ({exc}); {GAMMAPY_EXTRA}") from None
    return gmaps


def _gammapy_datasets():
    _gammapy_maps()
    import gammapy.datasets as gdatasets  # noqa: PLC0415 - optional dependency

    return gdatasets


# --------------------------------------------------------------------------- axes


def axis_from_gammapy(axis) -> MapAxis:
    """gpumask :class:`~gpumask.MapAxis` equal to a gammapy ``MapAxis``.

    Parameters
    ----------
    axis : `gammapy.maps.MapAxis`
        Any regular gammapy axis (edges or centres, ``lin``/``log``/``sqrt``).
        ``TimeMapAxis``, ``LabelMapAxis`` and periodic axes have no gpumask
        equivalent and are refused.

    Returns
    -------
    `~gpumask.MapAxis`

    Examples
    --------
    >>> from gammapy.maps import MapAxis as GammapyAxis          # doctest: +SKIP
    >>> gaxis = GammapyAxis.from_energy_bounds("1 TeV", "10 TeV", 3)  # doctest: +SKIP
    >>> gpumask.MapAxis.from_gammapy(gaxis).nbin                 # doctest: +SKIP
    3
    """
    if isinstance(axis, MapAxis):
        return axis
    if not _is_gammapy(axis, "MapAxis"):
        if _is_gammapy(axis, "TimeMapAxis", "LabelMapAxis"):
            raise TypeError(
                f"{qualified_name(axis)} has no gpumask equivalent; gpumask maps take regular "
                "gammapy MapAxis objects (edges or centres)"
            )
        raise TypeError(f"axis must be a gpumask or gammapy MapAxis, got {qualified_name(axis)}")
    boundary = str(getattr(axis, "_boundary_type", "monotonic"))
    if boundary != "monotonic":
        raise ValueError(f"axis {axis.name!r}: gpumask axes are monotonic, got boundary_type={boundary!r}")
    return MapAxis(
        u.Quantity(axis._nodes, axis.unit),
        interp=axis.interp,
        name=axis.name,
        node_type=axis.node_type,
    )


def axis_to_gammapy(axis):
    """gammapy ``MapAxis`` equal to a gpumask :class:`~gpumask.MapAxis`.

    Examples
    --------
    >>> axis = gpumask.MapAxis.from_energy_bounds("1 TeV", "10 TeV", 3)
    >>> axis.to_gammapy().nbin                                   # doctest: +SKIP
    3
    """
    if not isinstance(axis, MapAxis):
        raise TypeError(f"axis must be a gpumask MapAxis, got {qualified_name(axis)}")
    gmaps = _gammapy_maps()
    return gmaps.MapAxis(
        u.Quantity(axis._nodes, axis.unit),
        interp=axis.interp,
        name=axis.name,
        node_type=axis.node_type,
    )


# --------------------------------------------------------------------------- geometries


def geom_from_gammapy(geom) -> WcsGeom:
    """gpumask :class:`~gpumask.WcsGeom` equal to a gammapy ``WcsGeom``.

    The WCS is copied as it is (so gammapy's ``==`` holds after a round trip) and
    every non-spatial axis is converted with :func:`axis_from_gammapy`.

    Parameters
    ----------
    geom : `gammapy.maps.WcsGeom`
        A regular geometry (one pixel grid for every non-spatial bin).

    Returns
    -------
    `~gpumask.WcsGeom`

    Examples
    --------
    >>> from gammapy.maps import WcsGeom as GammapyGeom           # doctest: +SKIP
    >>> ggeom = GammapyGeom.create(npix=(40, 20), binsz=0.1, frame="galactic")  # doctest: +SKIP
    >>> gpumask.WcsGeom.from_gammapy(ggeom).npix                 # doctest: +SKIP
    (40, 20)
    """
    if isinstance(geom, WcsGeom):
        return geom
    if not _is_gammapy(geom, "WcsGeom"):
        raise TypeError(_refusal(geom, "geom", "a gpumask or gammapy WcsGeom"))
    if not geom.is_regular:
        raise ValueError(
            "gammapy geometry is irregular (its pixel grid changes along a non-spatial axis); "
            "gpumask maps have one pixel grid: convert one image at a time (geom.to_image())"
        )
    npix = tuple(int(np.ravel(n)[0]) for n in geom.npix)
    axes = [axis_from_gammapy(ax) for ax in geom.axes]
    wcs = geom.wcs.deepcopy()
    if wcs.naxis != 2:
        wcs = wcs.celestial
    return WcsGeom(wcs, npix, axes=axes)


def geom_to_gammapy(geom):
    """gammapy ``WcsGeom`` equal to a gpumask :class:`~gpumask.WcsGeom`.

    Examples
    --------
    >>> geom = gpumask.WcsGeom.create(npix=(40, 20), binsz=0.1, frame="galactic")
    >>> geom.to_gammapy().data_shape                             # doctest: +SKIP
    (20, 40)
    """
    if not isinstance(geom, WcsGeom):
        raise TypeError(f"geom must be a gpumask WcsGeom, got {qualified_name(geom)}")
    gmaps = _gammapy_maps()
    axes = [axis_to_gammapy(ax) for ax in geom.axes]
    return gmaps.WcsGeom(geom.wcs.deepcopy(), npix=tuple(geom.npix), axes=axes)


# --------------------------------------------------------------------------- maps


def map_from_gammapy(m, backend=None):
    """gpumask :class:`~gpumask.Map` holding a gammapy ``WcsNDMap``'s data on a backend.

    One counted upload (:func:`gpumask.to_device`) on CuPy; on NumPy the data is
    copied so that the two maps never share memory.  dtype (in native byte order:
    gammapy keeps FITS data big-endian, which CuPy cannot hold), unit and meta are
    kept; boolean masks stay boolean.

    Parameters
    ----------
    m : `gammapy.maps.WcsNDMap`
    backend : str or `~gpumask.Backend`, optional
        Where the data goes (``backend=`` > ``use_backend`` context >
        ``GPUMASK_BACKEND`` > auto).

    Returns
    -------
    `~gpumask.Map`

    Examples
    --------
    >>> from gammapy.maps import Map as GammapyMap                  # doctest: +SKIP
    >>> gm = GammapyMap.create(npix=(30, 20), binsz=0.1)             # doctest: +SKIP
    >>> m = gpumask.Map.from_gammapy(gm, backend="numpy")            # doctest: +SKIP
    >>> m.data.shape                                                 # doctest: +SKIP
    (20, 30)
    """
    from .maps import Map  # noqa: PLC0415 - maps imports this module

    if isinstance(m, Map):
        return m if backend is None else m.to_backend(backend)
    if not _is_gammapy(m, "WcsNDMap"):
        raise TypeError(_refusal(m, "map", "a gpumask Map or a gammapy WcsNDMap"))
    geom = geom_from_gammapy(m.geom)
    be = resolve_backend(backend)
    host = np.asarray(m.data)
    if not host.dtype.isnative:
        # FITS data read by gammapy is big-endian; CuPy has no such dtypes.  Same
        # values, native byte order, on both backends.
        host = host.astype(host.dtype.newbyteorder("="))
    data = np.array(host, copy=True) if be.name == "numpy" else to_device(host, be)
    meta = dict(m.meta) if m.meta else {}
    return Map(geom, data, unit=m.unit, meta=meta)


def map_to_gammapy(m):
    """gammapy ``WcsNDMap`` with a gpumask map's geometry, data, unit and meta.

    The data reaches the host through one counted :func:`gpumask.to_host` (no copy
    for a NumPy map: gammapy gets a copy of the array so the two never share memory).

    Examples
    --------
    >>> m = gpumask.Map.create(npix=(30, 20), binsz=0.1, backend="numpy")
    >>> m.to_gammapy().data.shape                                    # doctest: +SKIP
    (20, 30)
    """
    from .maps import Map  # noqa: PLC0415 - maps imports this module

    if not isinstance(m, Map):
        raise TypeError(f"map must be a gpumask Map, got {qualified_name(m)}")
    gmaps = _gammapy_maps()
    data = to_host(m.data)
    if not is_device_array(m.data):
        data = data.copy()
    return gmaps.Map.from_geom(geom_to_gammapy(m.geom), data=data, unit=m.unit, meta=dict(m.meta))


# --------------------------------------------------------------------------- datasets


def dataset_from_gammapy(dataset, backend=None):
    """gpumask :class:`~gpumask.MapDataset` (or ``MapDatasetOnOff``) from a gammapy one.

    The maps gpumask uses (counts, background, exposure, mask_safe, mask_fit; for
    on/off datasets counts_off, acceptance, acceptance_off instead of background)
    are converted with :func:`map_from_gammapy`, one counted upload each.  The
    rest of the gammapy dataset (PSF, energy dispersion, GTI, models, meta) is kept
    by reference, untouched, and handed back by :func:`dataset_to_gammapy`.

    Examples
    --------
    >>> from gammapy.datasets import MapDataset as GammapyDataset    # doctest: +SKIP
    >>> gds = GammapyDataset.read("$GAMMAPY_DATA/fermi-3fhl-gc/fermi-3fhl-gc.fits.gz")  # doctest: +SKIP
    >>> ds = gpumask.MapDataset.from_gammapy(gds)                    # doctest: +SKIP
    >>> ds.to_gammapy().counts.data.sum() == gds.counts.data.sum()   # doctest: +SKIP
    True
    """
    from .datasets import MapDataset, MapDatasetOnOff  # noqa: PLC0415 - datasets imports this module

    if isinstance(dataset, MapDataset):
        return dataset if backend is None else dataset.to_backend(backend)
    if not _is_gammapy(dataset, "MapDataset"):
        raise TypeError(_refusal(dataset, "dataset", "a gpumask or gammapy MapDataset / MapDatasetOnOff"))
    be = resolve_backend(backend)
    onoff = _is_gammapy(dataset, "MapDatasetOnOff")
    keys = _ONOFF_MAPS if onoff else _DATASET_MAPS
    maps = {}
    for key in keys:
        value = getattr(dataset, key, None)
        if value is None:
            continue
        if not _is_gammapy(value, "WcsNDMap"):
            raise TypeError(
                f"dataset {dataset.name!r}: {key} is a {qualified_name(value)}; gpumask datasets hold WCS maps"
            )
        maps[key] = map_from_gammapy(value, backend=be)
    if "counts" not in maps:
        raise ValueError(f"dataset {dataset.name!r} has no counts map; gpumask datasets need counts")
    cls = MapDatasetOnOff if onoff else MapDataset
    out = cls(name=dataset.name or "", **maps)
    out._gammapy_extras = {k: getattr(dataset, k, None) for k in _DATASET_EXTRAS}
    return out


def dataset_to_gammapy(dataset):
    """gammapy ``MapDataset`` (or ``MapDatasetOnOff``) from a gpumask dataset.

    Each map crosses with one counted :func:`gpumask.to_host`; the parts of a
    dataset that came from gammapy and gpumask does not hold (PSF, energy
    dispersion, GTI, models, meta) are handed back as they were.

    Examples
    --------
    >>> ds = gpumask.read_dataset("fermi-3fhl-gc.fits.gz")          # doctest: +SKIP
    >>> ds.to_gammapy().stat_type                                    # doctest: +SKIP
    'cash'
    """
    from .datasets import MapDataset, MapDatasetOnOff  # noqa: PLC0415

    if not isinstance(dataset, MapDataset):
        raise TypeError(f"dataset must be a gpumask MapDataset, got {qualified_name(dataset)}")
    gdatasets = _gammapy_datasets()
    kwargs = {key: map_to_gammapy(m) for key, m in dataset.maps.items()}
    extras = getattr(dataset, "_gammapy_extras", None) or {}
    for key in ("psf", "edisp", "gti", "models", "meta_table"):
        if extras.get(key) is not None:
            kwargs[key] = extras[key]
    if extras.get("meta") is not None:
        kwargs["meta"] = extras["meta"]
    cls = gdatasets.MapDatasetOnOff if isinstance(dataset, MapDatasetOnOff) else gdatasets.MapDataset
    return cls(name=dataset.name or None, **kwargs)


# --------------------------------------------------------------------------- boundary coercion


def _refusal(obj, name, accepted) -> str:
    hint = ""
    if is_gammapy_object(obj):
        hint = (
            "; gammapy HEALPix and region maps/geometries have no gpumask equivalent: "
            "reproject them onto a WcsGeom first (gammapy's map.reproject_to_geom / geom.to_wcs_geom())"
        )
    return f"{name} must be {accepted}, got {qualified_name(obj)}{hint}"


def as_geom(geom, name="geom") -> WcsGeom:
    """``geom`` as a gpumask :class:`~gpumask.WcsGeom` (gammapy ones converted).

    A gpumask Map (gpumask or gammapy) gives its geometry.  Anything else raises a
    TypeError naming the module-qualified type, ``name`` and what is accepted.

    Examples
    --------
    >>> from gpumask.sky.bridge import as_geom
    >>> geom = gpumask.WcsGeom.create(npix=10)
    >>> as_geom(geom) is geom
    True
    """
    if isinstance(geom, WcsGeom):
        return geom
    if _is_gammapy(geom, "WcsGeom"):
        return geom_from_gammapy(geom)
    raise TypeError(_refusal(geom, name, "a gpumask WcsGeom or a gammapy WcsGeom"))


def as_map(m, name="map", backend=None):
    """``m`` as a gpumask :class:`~gpumask.Map` (a gammapy ``WcsNDMap`` converted with
    one counted upload to ``backend``).

    gpumask maps pass through unchanged (their backend is theirs: no move).

    Examples
    --------
    >>> from gpumask.sky.bridge import as_map
    >>> m = gpumask.Map.create(npix=10, backend="numpy")
    >>> as_map(m) is m
    True
    """
    from .maps import Map  # noqa: PLC0415 - maps imports this module

    if isinstance(m, Map):
        return m
    if _is_gammapy(m, "WcsNDMap"):
        return map_from_gammapy(m, backend=backend)
    raise TypeError(_refusal(m, name, "a gpumask Map or a gammapy WcsNDMap"))


def as_dataset(dataset, name="dataset", backend=None):
    """``dataset`` as a gpumask :class:`~gpumask.MapDataset` (gammapy ``MapDataset`` /
    ``MapDatasetOnOff`` converted, one counted upload per map).

    Examples
    --------
    >>> from gpumask.sky.bridge import as_dataset
    >>> counts = gpumask.Map.create(npix=10, backend="numpy")
    >>> ds = gpumask.MapDataset(counts)
    >>> as_dataset(ds) is ds
    True
    """
    from .datasets import MapDataset  # noqa: PLC0415

    if isinstance(dataset, MapDataset):
        return dataset
    if _is_gammapy(dataset, "MapDataset"):
        return dataset_from_gammapy(dataset, backend=backend)
    raise TypeError(_refusal(dataset, name, "a gpumask or gammapy MapDataset / MapDatasetOnOff"))

