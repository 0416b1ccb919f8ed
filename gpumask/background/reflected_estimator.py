"""Reflected-region on/off counts from event lists, for many observations and targets at once.

:class:`ReflectedRegionsBackgroundEstimator` is gammapy's
``ReflectedRegionsBackgroundMaker`` without the dataset plumbing: from event
lists (astropy Tables or gammapy ``EventList`` objects) and pointings it finds
the off regions of every (observation, target) pair in one call of the region
finder, counts the events of each observation in all its on and off regions in
one pass (:func:`gpumask.masks._region_points.count_in_regions`: exact on the
sphere, a k-d tree prefilter), and returns one table row per (observation,
target, energy bin) with gammapy ``SpectrumDatasetOnOff`` numbers::

    counts, counts_off, acceptance = 1, acceptance_off = number of off regions
    alpha = acceptance / acceptance_off, excess = counts - alpha counts_off
    sqrt_ts = signed WStat (Li & Ma 1983, eq. 17) significance

With an acceptance map (the background model of the observation, any
geometry), ``acceptance_off`` is the acceptance summed over the pixels of the
off regions divided by the sum over the on region (``acceptance`` stays 1, so
``alpha`` is the acceptance ratio); pixels are selected with
``WcsGeom.region_mask(method="sky")`` on the map's backend.

Differences from gammapy 2.1, on purpose:

* events are counted with exact spherical geometry (a circle holds the events
  within its angular radius); gammapy counts in the pixel frame of a local TAN
  WCS (``RegionGeom.contains``), which can differ for events within a tiny
  distance of a boundary;
* a pair without off regions is a row with ``counts_off = 0``, ``alpha``,
  ``excess`` and ``sqrt_ts`` NaN and ``n_off_regions = 0``, reported in one
  :class:`~gpumask.GpumaskWarning` per call naming the pairs (gammapy returns a
  dataset whose ``mask_safe`` is all False and logs a warning);
* gammapy's point-like (``RAD_MAX``) handling of ``PointSkyRegion`` targets is
  not offered: give a circle of the ``RAD_MAX`` radius.

May import: the device layer, :mod:`gpumask.sky`, :mod:`gpumask.stats` and
:mod:`gpumask.masks`; the finder (:mod:`gpumask.background.reflected`) is
imported when it is needed.
"""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table

from .._repr import html_table, text_block
from ..backend import to_host
from ..errors import GpumaskWarning
from ..masks._region_points import _region_pairs
from ..masks.regions import make_region
from ..sky.bridge import as_geom, as_map, is_gammapy_object
from ..sky.maps import Map
from ..stats.counts_statistic import WStatCountsStatistic

__all__ = ["ReflectedRegionsBackgroundEstimator"]

_COLUMNS = ("obs_index", "obs_id", "target_index", "target", "energy_min", "energy_max", "counts",
            "counts_off", "acceptance", "acceptance_off", "alpha", "excess", "sqrt_ts", "n_off_regions")


class ReflectedRegionsBackgroundEstimator:
    """On and off counts, alpha and significance from reflected regions (gammapy's
    ``ReflectedRegionsBackgroundMaker`` on event lists, batched; see the module
    docstring for the formulas and the differences from gammapy).

    Parameters
    ----------
    region_finder : object, optional
        Finds the off regions: a :class:`gpumask.ReflectedRegionsFinder` (built
        from ``**kwargs`` when not given), or any object with
        ``run_many(regions, centers, exclusion_mask)`` returning one list of off
        regions per pair, or gammapy's ``ReflectedRegionsFinder`` (its ``run``
        is called once per pair; give it a gammapy exclusion mask then).
    exclusion_mask : Map, optional
        Boolean map, True = usable, on any geometry (a gammapy ``WcsNDMap``
        is accepted), handed to the finder.  Non-spatial axes must have one bin.
    **kwargs
        Arguments of :class:`gpumask.ReflectedRegionsFinder` (``angle_increment``,
        ``min_distance``, ``min_distance_input``, ``max_region_number``,
        ``binsz``, ``method``); not allowed together with ``region_finder``.

    Examples
    --------
    >>> import numpy as np, astropy.units as u
    >>> from astropy.coordinates import SkyCoord
    >>> from astropy.table import Table
    >>> from regions import CircleSkyRegion
    >>> from gpumask.background.reflected_estimator import ReflectedRegionsBackgroundEstimator
    >>> rng = np.random.default_rng(0)
    >>> pointing = SkyCoord(83.63, 22.51, unit="deg")
    >>> ev = pointing.directional_offset_by(rng.uniform(0, 360, 5000) * u.deg,
    ...                                     rng.uniform(0, 2, 5000) * u.deg)
    >>> events = Table({"RA": ev.ra.deg, "DEC": ev.dec.deg})
    >>> on = CircleSkyRegion(SkyCoord(83.63, 22.01, unit="deg"), 0.2 * u.deg)
    >>> on.meta["name"] = "Crab"
    >>> est = ReflectedRegionsBackgroundEstimator()
    >>> table = est.run(events, on, pointing)
    >>> str(table["target"][0]), int(table["counts"][0]), int(table["counts_off"][0])
    ('Crab', 100, 614)
    >>> int(table["n_off_regions"][0]), round(float(table["alpha"][0]), 4)
    (6, 0.1667)
    """

    tag = "ReflectedRegionsBackgroundEstimator"

    def __init__(self, region_finder=None, exclusion_mask=None, **kwargs):
        self.exclusion_mask = _check_exclusion(exclusion_mask)
        if region_finder is None:
            from .reflected import ReflectedRegionsFinder  # noqa: PLC0415 - higher module, lazily

            region_finder = ReflectedRegionsFinder(**kwargs)
        elif kwargs:
            raise ValueError(f"no finder arguments can be given with a region_finder, got {sorted(kwargs)}")
        methods = (getattr(region_finder, name, None) for name in ("run_many", "run"))
        if not any(callable(m) for m in methods):
            raise TypeError("region_finder must have a run_many(regions, centers, exclusion_mask) or "
                            f"run(region, center, exclusion_mask) method, got {type(region_finder).__name__}")
        self.region_finder = region_finder

    # ------------------------------------------------------------------ reprs
    def _params(self):
        mask = self.exclusion_mask
        npix = None if mask is None else tuple(int(n) for n in np.ravel(mask.geom.npix))
        label = "None" if mask is None else f"{type(mask).__name__} {npix}"
        finder = " ".join(repr(self.region_finder).split())
        return [("region_finder", finder if len(finder) < 120 else finder[:117] + "..."),
                ("exclusion_mask", label)]

    def __repr__(self):
        return text_block(type(self).__name__, self._params())

    def _repr_html_(self):
        return html_table(f"gpumask {type(self).__name__}", self._params())

    # ------------------------------------------------------------------ public
    def run(self, events, on_region, pointing, energy_axis=None, acceptance=None):
        """On/off numbers of one observation for one or several targets.

        Parameters
        ----------
        events : astropy.table.Table or gammapy.data.EventList
            Event positions in columns ``RA`` and ``DEC`` (deg, ICRS; names
            case-insensitive), energies in ``ENERGY`` when ``energy_axis`` is given
            (a column without unit is taken in the axis' unit).
        on_region : regions.SkyRegion, str, list or dict
            The target(s): a sky region or ds9 string, a list of them, or a dict
            ``name -> region``.  Names default to the region's ``meta["name"]``
            (or ``label``/``text``), else ``"target_<index>"``.
        pointing : astropy.coordinates.SkyCoord
            The pointing (rotation centre of the reflected regions).
        energy_axis : MapAxis, optional
            Energy bins (a gpumask or gammapy ``MapAxis``); events outside them
            are not counted.  Default: one bin, every event.
        acceptance : Map, optional
            Acceptance (background model) of the observation; see the module
            docstring.  2-D, or with one non-spatial axis of 1 or ``nbin`` bins.

        Returns
        -------
        astropy.table.Table
            One row per (target, energy bin); columns ``obs_index``, ``obs_id``,
            ``target_index``, ``target``, ``energy_min``, ``energy_max`` (NaN
            without ``energy_axis``), ``counts``, ``counts_off``, ``acceptance``,
            ``acceptance_off``, ``alpha``, ``excess``, ``sqrt_ts`` and
            ``n_off_regions``.  On the host.

        Examples
        --------
        >>> import numpy as np, astropy.units as u
        >>> from astropy.coordinates import SkyCoord
        >>> from astropy.table import Table
        >>> from gpumask.background.reflected_estimator import ReflectedRegionsBackgroundEstimator
        >>> events = Table({"ra": [83.63, 83.63, 83.63], "dec": [22.01, 23.01, 22.51]})
        >>> est = ReflectedRegionsBackgroundEstimator()
        >>> pointing = SkyCoord(83.63, 22.51, unit="deg")
        >>> t = est.run(events, {"Crab": "icrs;circle(83.63, 22.01, 0.1)"}, pointing)
        >>> int(t["counts"][0]), int(t["counts_off"][0]), round(float(t["alpha"][0]), 4)
        (1, 1, 0.0714)
        """
        return self.run_many([(events, pointing)], on_region, energy_axis=energy_axis,
                             acceptance=None if acceptance is None else [acceptance])

    def run_many(self, observations, on_regions, energy_axis=None, acceptance=None):
        """On/off numbers of many observations x targets: one finder call for all
        pairs, one counting pass per observation.

        Parameters
        ----------
        observations : list
            ``(events, pointing)`` pairs (as in :meth:`run`), or objects with
            ``.events`` and ``.get_pointing_icrs(time)`` (gammapy ``Observation``,
            at ``tmid``) or a SkyCoord ``.pointing``; ``obs_id`` from the object's
            ``obs_id``, else the events' ``OBS_ID`` meta, else the index.
        on_regions : regions.SkyRegion, str, list or dict
            Targets, as in :meth:`run`; every target in every observation.
        energy_axis : MapAxis, optional
            As in :meth:`run`.
        acceptance : list, optional
            One acceptance Map (or None) per observation.

        Returns
        -------
        astropy.table.Table
            One row per (observation, target, energy bin), observations outermost;
            columns as in :meth:`run`.  On the host.

        Warns
        -----
        GpumaskWarning
            Naming the (observation, target) pairs that have no off region.

        Examples
        --------
        >>> from astropy.coordinates import SkyCoord
        >>> from astropy.table import Table
        >>> from gpumask.background.reflected_estimator import ReflectedRegionsBackgroundEstimator
        >>> events = Table({"RA": [83.63, 83.63], "DEC": [22.01, 23.01]})
        >>> obs = [(events, SkyCoord(83.63, 22.51, unit="deg")),
        ...        (events, SkyCoord(83.63, 22.61, unit="deg"))]
        >>> est = ReflectedRegionsBackgroundEstimator()
        >>> t = est.run_many(obs, ["icrs;circle(83.63, 22.01, 0.1)", "icrs;circle(83.63, 23.01, 0.1)"])
        >>> len(t), [int(n) for n in t["n_off_regions"]]
        (4, [14, 14, 17, 11])
        """
        obs = [_observation(o, i) for i, o in enumerate(_as_list(observations, "observations"))]
        names, targets = _targets(on_regions)
        axis = _check_axis(energy_axis)
        n_obs, n_t = len(obs), len(targets)
        nb = 1 if axis is None else axis.nbin
        acceptance = _check_acceptance(acceptance, n_obs)
        offs = self._off_regions(targets, [o[1] for o in obs]) if n_obs and n_t else []
        rows = []
        failed = []
        for i, (table, pointing, obs_id) in enumerate(obs):
            pair_offs = offs[i * n_t : (i + 1) * n_t]
            counts = _count(table, targets + [r for off in pair_offs for r in off], axis)
            on_counts = counts[:n_t]
            if acceptance[i] is None:
                acc_on = np.ones((n_t, nb))
                acc_off_all = np.ones((len(counts) - n_t, nb))
            else:
                sums = _acceptance_sums(acceptance[i], targets + [r for off in pair_offs for r in off], nb)
                acc_on, acc_off_all = sums[:n_t], sums[n_t:]
            k = n_t
            for j in range(n_t):
                n_off = len(pair_offs[j])
                off_counts = counts[k : k + n_off].sum(axis=0)
                off_acc = acc_off_all[k - n_t : k - n_t + n_off].sum(axis=0)
                k += n_off
                if n_off == 0:
                    failed.append(f"({obs_id}, {names[j]!r})")
                with np.errstate(divide="ignore", invalid="ignore"):
                    acc_off = np.where(acc_on[j] > 0, off_acc / acc_on[j], np.nan) if n_off else np.zeros(nb)
                rows.append((i, obs_id, j, names[j], on_counts[j], off_counts, acc_off, n_off))
        if failed:
            shown = ", ".join(failed[:20]) + (f" and {len(failed) - 20} more" if len(failed) > 20 else "")
            warnings.warn(f"{self.tag}: no off region found outside the exclusion mask for "
                          f"(observation, target) {shown}: counts_off = 0, alpha, excess and sqrt_ts NaN "
                          "(gammapy sets mask_safe False)", GpumaskWarning, stacklevel=2)
        return _table(rows, axis, nb, n_obs, n_t, self.tag)

    # ------------------------------------------------------------------ internals
    def _off_regions(self, targets, pointings):
        """One list of off regions per (observation, target) pair, observations outermost."""
        n_t = len(targets)
        regions = [t for _ in pointings for t in targets]
        ra = np.repeat([p.ra.deg for p in pointings], n_t)
        dec = np.repeat([p.dec.deg for p in pointings], n_t)
        centers = SkyCoord(ra, dec, unit="deg", frame="icrs")
        finder = self.region_finder
        if callable(getattr(finder, "run_many", None)):
            offs = finder.run_many(regions, centers, self.exclusion_mask)
        else:  # e.g. gammapy's finder: one call per pair
            offs = [finder.run(region=r, center=c, exclusion_mask=self.exclusion_mask)[0]
                    for r, c in zip(regions, centers)]
        offs = [list(o) for o in offs]
        if len(offs) != len(regions):
            raise ValueError(f"region_finder returned {len(offs)} lists of off regions for {len(regions)} "
                             "(observation, target) pairs")
        return offs


# ----------------------------------------------------------------------------- inputs


def _as_list(value, name):
    if isinstance(value, (list, tuple)):
        return list(value)
    raise TypeError(f"{name} must be a list, got {type(value).__name__}")


def _check_exclusion(mask):
    if mask is None:
        return None
    if not (isinstance(mask, Map) or is_gammapy_object(mask)):
        raise TypeError(f"exclusion_mask must be a boolean gpumask Map or gammapy WcsNDMap (True = usable) "
                        f"or None, got {type(mask).__name__}")
    if not mask.is_mask:
        raise ValueError(f"exclusion_mask must contain boolean values, got dtype {mask.data.dtype}")
    if any(ax.nbin != 1 for ax in mask.geom.axes):
        raise ValueError("exclusion_mask must only have spatial dimensions (non-spatial axes of one bin), "
                         f"got axes {[(ax.name, ax.nbin) for ax in mask.geom.axes]}")
    return mask


def _events_table(events):
    table = getattr(events, "table", events) if not isinstance(events, Table) else events
    if not isinstance(table, Table):
        raise TypeError("events must be an astropy Table or a gammapy EventList, "
                        f"got {type(events).__name__}")
    return table


def _column(table, name, required=True):
    found = [c for c in table.colnames if c.upper() == name]
    if not found:
        if required:
            raise ValueError(f"events table has no {name} column (case-insensitive); "
                             f"columns: {table.colnames}")
        return None
    return table[found[0]]


def _values(column, unit):
    """A column's values in ``unit`` (a column without unit is taken in it)."""
    if getattr(column, "unit", None) is not None:
        return np.asarray(u.Quantity(column).to_value(unit), dtype=float)
    return np.asarray(column, dtype=float)


def _observation(obj, index):
    """(events table, ICRS pointing, obs_id) of one observation."""
    if isinstance(obj, (tuple, list)):
        if len(obj) != 2:
            raise ValueError(f"observation {index}: expected an (events, pointing) pair, "
                             f"got {len(obj)} items")
        events, pointing = obj
        obs_id = None
    elif hasattr(obj, "events"):
        events = obj.events
        if callable(getattr(obj, "get_pointing_icrs", None)):
            pointing = obj.get_pointing_icrs(obj.tmid)
        else:
            pointing = getattr(obj, "pointing", None)
        obs_id = getattr(obj, "obs_id", None)
    else:
        raise TypeError(f"observation {index} must be an (events, pointing) pair or an object with .events "
                        f"and a pointing, got {type(obj).__name__}")
    table = _events_table(events)
    if not isinstance(pointing, SkyCoord) or not pointing.isscalar:
        raise TypeError(f"observation {index}: the pointing must be a scalar SkyCoord, got {pointing!r}")
    if obs_id is None:
        obs_id = table.meta.get("OBS_ID", index)
    return table, pointing.icrs, obs_id


def _targets(on_regions):
    if isinstance(on_regions, dict):
        items = list(on_regions.items())
    else:
        seq = on_regions if isinstance(on_regions, (list, tuple)) else [on_regions]
        items = [(None, r) for r in seq]
    if not items:
        raise ValueError("on_regions is empty; give at least one sky region")
    names, regions = [], []
    for j, (name, region) in enumerate(items):
        region = make_region(region) if isinstance(region, str) else region
        if name is None:
            meta = getattr(region, "meta", {}) or {}
            name = meta.get("name") or meta.get("label") or meta.get("text") or f"target_{j}"
        names.append(str(name))
        regions.append(region)
    return names, regions


def _check_axis(axis):
    if axis is None:
        return None
    if not all(hasattr(axis, a) for a in ("edges", "nbin", "coord_to_idx")):
        raise TypeError("energy_axis must be a MapAxis (gpumask or gammapy) or None, "
                        f"got {type(axis).__name__}")
    return axis


def _check_acceptance(acceptance, n_obs):
    if acceptance is None:
        return [None] * n_obs
    acceptance = _as_list(acceptance, "acceptance")
    if len(acceptance) != n_obs:
        raise ValueError(f"acceptance must hold one Map (or None) per observation: {n_obs} expected, "
                         f"got {len(acceptance)}")
    return [None if a is None else as_map(a, "acceptance") for a in acceptance]


# ----------------------------------------------------------------------------- counting


def _count(table, regions, axis):
    """(n_regions, n_bins) counts of the events in ``regions``, one exact pass."""
    ra = _values(_column(table, "RA"), u.deg)
    dec = _values(_column(table, "DEC"), u.deg)
    nb = 1 if axis is None else axis.nbin
    coords = SkyCoord(ra, dec, unit="deg", frame="icrs")
    rows, cols, n_regions, _ = _region_pairs(regions, coords)
    if axis is None:
        idx = np.zeros(len(ra), np.int64)
    else:
        energy = _values(_column(table, "ENERGY"), axis.edges.unit) * axis.edges.unit
        idx = np.asarray(axis.coord_to_idx(energy), dtype=np.int64)
        idx = np.where((idx >= 0) & (idx < nb), idx, -1)
    bins = idx[cols]
    ok = bins >= 0
    flat = np.bincount(rows[ok] * nb + bins[ok], minlength=n_regions * nb)
    return flat.reshape(n_regions, nb).astype(np.int64)


def _acceptance_sums(acceptance, regions, nb):
    """(n_regions, nb) acceptance summed over each region's pixels (region_mask,
    method="sky", on the map's backend; one counted copy for all sums)."""
    geom = as_geom(acceptance.geom)
    axes = list(geom.axes)
    if len(axes) > 1 or (axes and axes[0].nbin not in (1, nb)):
        raise ValueError(f"acceptance must be 2-D or have one non-spatial axis of 1 or {nb} bins, got axes "
                         f"{[(ax.name, ax.nbin) for ax in axes]}")
    xp = acceptance.backend.xp
    data = acceptance.data
    finite = xp.where(xp.isfinite(data), data, 0.0)
    sums = []
    for region in regions:
        mask = geom.region_mask(region, method="sky", backend=acceptance.backend).data
        s = xp.sum(xp.where(mask, finite, 0.0), axis=(-2, -1))
        sums.append(xp.reshape(s, (-1,)))
    host = to_host(xp.stack(sums)) if sums else np.zeros((0, 1))
    return np.broadcast_to(host, (len(regions), nb)).astype(float)


def _table(rows, axis, nb, n_obs, n_t, tag):
    n = len(rows) * nb
    col = {name: [] for name in _COLUMNS}
    for i, obs_id, j, name, on, off, acc_off, n_off in rows:
        col["obs_index"].append(np.full(nb, i))
        col["obs_id"].append([obs_id] * nb)
        col["target_index"].append(np.full(nb, j))
        col["target"].append([name] * nb)
        col["counts"].append(on)
        col["counts_off"].append(off)
        col["acceptance_off"].append(np.broadcast_to(acc_off, (nb,)))
        col["n_off_regions"].append(np.full(nb, n_off))
    out = {}
    for name in ("obs_index", "target_index", "counts", "counts_off", "n_off_regions"):
        out[name] = np.concatenate(col[name]).astype(np.int64) if rows else np.zeros(0, np.int64)
    out["obs_id"] = [v for part in col["obs_id"] for v in part]
    out["target"] = np.array([v for part in col["target"] for v in part], dtype=str)
    acc_off = np.concatenate(col["acceptance_off"]).astype(float) if rows else np.zeros(0)
    acc = np.ones(n)
    counts, counts_off = out["counts"].astype(float), out["counts_off"].astype(float)
    valid = np.isfinite(acc_off) & (acc_off > 0)
    alpha = np.full(n, np.nan)
    alpha[valid] = acc[valid] / acc_off[valid]
    excess = np.full(n, np.nan)
    excess[valid] = counts[valid] - alpha[valid] * counts_off[valid]
    sqrt_ts = np.full(n, np.nan)
    if valid.any():
        stat = WStatCountsStatistic(counts[valid], counts_off[valid], alpha[valid])
        sqrt_ts[valid] = stat.sqrt_ts
    if axis is None:
        e_min = e_max = np.full(n, np.nan) * u.TeV
    else:
        edges = axis.edges
        e_min = np.tile(edges[:-1].value, len(rows)) * edges.unit
        e_max = np.tile(edges[1:].value, len(rows)) * edges.unit
    table = Table()
    table["obs_index"] = out["obs_index"]
    table["obs_id"] = out["obs_id"] if rows else np.zeros(0, np.int64)
    table["target_index"] = out["target_index"]
    table["target"] = out["target"]
    table["energy_min"] = e_min
    table["energy_max"] = e_max
    table["counts"] = out["counts"]
    table["counts_off"] = out["counts_off"]
    table["acceptance"] = acc
    table["acceptance_off"] = acc_off
    table["alpha"] = alpha
    table["excess"] = excess
    table["sqrt_ts"] = sqrt_ts
    table["n_off_regions"] = out["n_off_regions"]
    table.meta.update({"estimator": tag, "n_observations": n_obs, "n_targets": n_t, "n_energy_bins": nb})
    return table
