"""Significance maps from counts: gammapy's ExcessMapEstimator, on the data's backend.

For each energy group (by default one group with every bin, weighted by
``mask_safe``, as gammapy), with ``K`` the correlation-radius disk (``r_px = r /
mean |cdelt|``, inclusive edge, 0/1) and ``mask`` the group's mask (``mask_safe``
OR-ed over the group's bins, AND ``mask_fit`` likewise):

* known background (Cash): ``n_on = rint(conv(counts * mask, K))``,
  ``mu = conv(background * mask, K)``;
* on/off (WStat, Li & Ma eq. 17 without a signal model): ``n_on`` as above,
  ``n_off = conv(counts_off * mask, K)`` and ``alpha = conv(alpha * counts_off *
  mask, K) / n_off`` (``correlate_off=True``, gammapy's default), or the
  uncorrelated ``n_off`` with ``alpha = conv(acceptance * mask, K) /
  acceptance_off``;

then ``ts``, ``sqrt_ts`` and the excess and its errors from
:mod:`gpumask.stats`.  Every output is NaN where ``mask`` is False.  The
convolutions of one call share a single batched real FFT (see
:mod:`gpumask.stats.convolution`) and the kernel transform is cached, so a second field
of the same shape pays for no kernel FFT.

Differences from gammapy 2.1, all on purpose:

* no flux maps (``norm``, ``flux``): exclusion masks need counts-space maps only;
  the errors are returned in counts (``npred_excess_err`` = gammapy's ``norm_err``
  times the reference exposure);
* convolutions are kept in float64 (gammapy rounds them to float32 storage);
* Cash errors solve the Lambert-W equation directly, so they stay accurate for
  large counts, where ``scipy.special.lambertw`` loses digits (see counts_statistic.py);
* the "sensitivity" selection is not available;
* with on/off data, pixels with no off count under the disk get alpha and
  ``sqrt_ts`` NaN; gammapy divides FFT round-off there (an arbitrary alpha,
  often a spurious |sqrt_ts| > 5);
* ``energy_edges`` groups whole bins by integer index; gammapy's
  ``resample_axis`` re-finds the bins with a float ``digitize`` that, on about
  0.25% of log axes, moves a bin into the next group (20 log bins from 0.3 to
  9 TeV grouped at the 11th edge: gammapy sums bins 0-9 and 10-19);
* values in bins outside ``mask_safe`` are ignored even when NaN (gammapy's
  ``counts * mask_safe`` lets one NaN turn the whole map NaN);
* non-finite input pixels (NaN or +-inf in counts or background, or in
  counts_off, acceptance or acceptance_off) inside ``mask_safe`` are left out of
  every sum, in every input at once (a ``where``, not a product), as if
  ``mask_safe`` were False in that bin for the sums only; the output mask is not
  changed, so such a pixel gets the value of the rest of its disk.  Only the
  pixels whose disk holds a bad pixel change, and they equal the maps computed
  with the bad pixel's values set to 0.  gammapy's FFT turns every output pixel
  NaN.  Bad pixels are reported: a :class:`~gpumask.NonFiniteInputWarning`
  naming each input and its count, and ``result.meta["n_nonfinite"]`` (input
  name -> count, 0 when clean).  Finding them costs one device flag per dataset
  (:func:`~gpumask.backend.read_flag`, not a copy); their count is copied only
  when there are some.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .._repr import html_table, text_block
from .._utils import parse_angle
from ..backend import common_backend
from ..sky.axes import MapAxis
from ..sky.bridge import as_dataset, as_geom, as_map, is_gammapy_object
from ..sky.datasets import MapDataset, MapDatasetOnOff
from ..sky.maps import Map
from .convolution import _NonFinite, convolve, disk_kernel
from .counts_statistic import CashCountsStatistic, WStatCountsStatistic, positive_number

__all__ = ["ExcessMapEstimator", "ExcessMaps", "excess_map"]

_OPTIONAL = ("errn-errp", "ul", "alpha", "acceptance_on", "acceptance_off")


class ExcessMaps(Mapping):
    """Result of :class:`ExcessMapEstimator`: maps by name (``result["sqrt_ts"]``).

    Always present: ``npred`` (correlated counts ``n_on``, gammapy's name),
    ``counts`` (the same map, as gammapy), ``npred_background``, ``npred_excess``,
    ``npred_excess_err`` (symmetric, times ``n_sigma``), ``ts`` and ``sqrt_ts``.
    With ``selection_optional``: ``npred_excess_errn``, ``npred_excess_errp``
    ("errn-errp"), ``npred_excess_ul`` ("ul") and, for on/off data, ``alpha``,
    ``acceptance_on``, ``acceptance_off``.

    Attributes
    ----------
    meta : dict
        ``correlation_radius``, ``n_sigma``, ``n_sigma_ul``, ``stat_type`` and
        ``n_nonfinite``: the number of NaN or infinite pixels (inside
        ``mask_safe``) of each input map that was left out of the sums, by
        name (all 0 for clean data).
    """

    def __init__(self, maps: dict, meta=None):
        self._maps = dict(maps)
        self.meta = dict(meta or {})

    def __getitem__(self, name) -> Map:
        try:
            return self._maps[name]
        except KeyError:
            raise KeyError(f"no map {name!r}; available: {self.available_quantities}") from None

    def __iter__(self):
        return iter(self._maps)

    def __len__(self):
        return len(self._maps)

    @property
    def available_quantities(self) -> list[str]:
        return list(self._maps)

    @property
    def geom(self):
        return next(iter(self._maps.values())).geom

    def to_gammapy(self) -> dict:
        """The maps as gammapy ``WcsNDMap`` objects, by name (one counted host copy
        per map; see ``gpumask.sky.bridge.map_to_gammapy``).

        Returns
        -------
        dict of str to `gammapy.maps.WcsNDMap`

        Examples
        --------
        >>> result = gpumask.ExcessMapEstimator("0.4 deg").run(dataset)   # doctest: +SKIP
        >>> result.to_gammapy()["sqrt_ts"].plot(add_cbar=True)             # doctest: +SKIP
        """
        return {name: m.to_gammapy() for name, m in self._maps.items()}

    def _summary(self) -> list[tuple[str, str]]:
        geom = self.geom
        shape = tuple(geom.npix) + tuple(ax.nbin for ax in geom.axes)
        backend = next(iter(self._maps.values())).backend.name
        rows = [
            ("shape", f"{shape} ({', '.join(geom.axes_names)})"),
            ("backend", backend),
            ("quantities", ", ".join(self.available_quantities)),
        ]
        return rows + [(str(k), str(v)) for k, v in self.meta.items()]

    def __repr__(self):
        return text_block("ExcessMaps", self._summary())

    def _repr_html_(self):
        return html_table("gpumask ExcessMaps", self._summary())


class ExcessMapEstimator:
    """Correlated excess and significance maps of a dataset (gammapy's estimator).

    Parameters
    ----------
    correlation_radius : angle, optional
        Radius of the top-hat correlation disk (default "0.1 deg").
    n_sigma : float, optional
        Confidence level of the errors, in sigma (default 1).
    n_sigma_ul : float, optional
        Confidence level of the upper limits, in sigma (default 2).
    selection_optional : list of str or "all", optional
        Extra maps: "errn-errp", "ul", and for on/off data "alpha",
        "acceptance_on", "acceptance_off".
    energy_edges : Quantity, "bins" or None, optional
        None (default): every energy bin summed into one, weighted by
        ``mask_safe`` (gammapy's behaviour).  Edges: bins grouped between the
        dataset edges nearest to them (gammapy's ``resample_axis``).  "bins": each
        bin on its own.
    correlate_off : bool, optional
        Correlate the off counts too (default True, as gammapy).
    dtype : float64 or float32, optional
        Precision of the convolutions.  float32 halves the FFT memory; it moved
        ``sqrt_ts`` by at most 4e-6 on the Fermi Crab and GC datasets and by up to
        1e-4 on 4000 x 4000 maps with ~2e4 counts per 1 deg disk (its round-off
        grows with the counts under the disk), so keep float64 (default) for
        gammapy parity.
    """

    tag = "ExcessMapEstimator"

    def __init__(
        self,
        correlation_radius="0.1 deg",
        n_sigma=1,
        n_sigma_ul=2,
        selection_optional=None,
        energy_edges=None,
        correlate_off=True,
        dtype=np.float64,
    ):
        self.correlation_radius = correlation_radius
        self.n_sigma = positive_number(n_sigma, "n_sigma")
        self.n_sigma_ul = positive_number(n_sigma_ul, "n_sigma_ul")
        self.selection_optional = selection_optional
        self.energy_edges = energy_edges
        self.correlate_off = bool(correlate_off)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise ValueError(f"dtype must be float64 or float32, got {dtype!r}")

    @property
    def correlation_radius(self):
        return self._radius

    @correlation_radius.setter
    def correlation_radius(self, value):
        self._radius = parse_angle(value, "correlation_radius", allow_zero=False)

    @property
    def selection_optional(self) -> list[str]:
        return list(self._selection)

    @selection_optional.setter
    def selection_optional(self, value):
        if value is None:
            self._selection = ()
            return
        if value == "all":
            self._selection = _OPTIONAL
            return
        if isinstance(value, str):
            value = [value]
        bad = [v for v in value if v not in _OPTIONAL]
        if bad:
            raise ValueError(f"selection_optional entries {bad} are not available; choose from {list(_OPTIONAL)} or 'all'")
        self._selection = tuple(value)

    def estimate_kernel(self, geom) -> np.ndarray:
        """The 0/1 correlation disk for ``geom`` (``r_px = r / mean |cdelt|``)."""
        return disk_kernel(f"{self._radius} deg", geom=as_geom(geom))

    def _params(self) -> list[tuple[str, str]]:
        return [
            ("correlation_radius", f"{self._radius:g} deg"),
            ("n_sigma", f"{self.n_sigma:g}"),
            ("n_sigma_ul", f"{self.n_sigma_ul:g}"),
            ("selection_optional", str(self.selection_optional)),
            ("energy_edges", repr(self.energy_edges)),
            ("correlate_off", str(self.correlate_off)),
        ]

    def __repr__(self):
        return "ExcessMapEstimator(" + ", ".join(f"{k}={v}" for k, v in self._params()) + ")"

    def _repr_html_(self):
        return html_table("gpumask ExcessMapEstimator", self._params())

    def run(self, dataset) -> ExcessMaps:
        """Estimate the maps for ``dataset`` (:class:`~gpumask.MapDataset` or
        :class:`~gpumask.MapDatasetOnOff`, e.g. from :func:`gpumask.read_dataset`)."""
        return self.run_many([dataset])[0]

    def run_many(self, datasets, max_batch_bytes=None) -> list[ExcessMaps]:
        """Estimate the maps of many datasets, stacking their convolutions.

        The datasets whose planes have the same shape and the same correlation
        kernel (same pixel size) go through one batched FFT, in batches of at most
        ``max_batch_bytes`` of transforms (default: no limit).  The result of each
        dataset is identical to :meth:`run` on it alone; this only saves the
        per-call overhead that dominates small maps, above all on a GPU.

        Returns
        -------
        list of ExcessMaps
            In the order of ``datasets``.
        """
        datasets = list(datasets)
        pending = [self._prepare(ds) for ds in datasets]
        groups = {}
        for idx, job in enumerate(pending):
            key = (tuple(job.planes.shape[1:]), job.kernel.shape, job.kernel.tobytes(), job.backend.name)
            groups.setdefault(key, []).append(idx)
        results = [None] * len(datasets)
        for members in groups.values():
            for batch in _batches(members, pending, max_batch_bytes):
                xp = pending[batch[0]].backend.xp
                planes = pending[batch[0]].planes if len(batch) == 1 else xp.concatenate(
                    [pending[i].planes for i in batch]
                )
                conv = convolve(planes, pending[batch[0]].kernel, dtype=self.dtype)
                start = 0
                for i in batch:
                    n = len(pending[i].planes)
                    results[i] = pending[i].finish(conv[start : start + n])
                    pending[i] = None  # free the input planes
                    start += n
        return results

    def _prepare(self, dataset) -> "_Pending":
        """The planes to convolve for ``dataset`` and how to finish from their
        convolution."""
        dataset = as_dataset(dataset)
        geom = dataset.counts.geom
        groups, out_geom = _energy_groups(geom, self.energy_edges)
        be = dataset.backend
        xp = be.xp
        grouped = _GroupedData(dataset, groups, xp)
        kernel = self.estimate_kernel(geom)
        mask = grouped.mask
        if isinstance(dataset, MapDatasetOnOff):
            planes, make_stat = self._wstat(grouped, mask, xp)
        else:
            if dataset.background is None:
                raise ValueError("a MapDataset needs a background map for the Cash significance")
            n_on_in = grouped.apply_mask(grouped.counts)
            mu_in = grouped.apply_mask(grouped.sum(dataset.background))
            planes = xp.stack([n_on_in, mu_in])
            del n_on_in, mu_in

            def make_stat(conv):
                return CashCountsStatistic(xp.rint(conv[0]), conv[1]), {}

        def finish(conv):
            stat, extra = make_stat(conv)
            return self._maps(stat, extra, grouped, out_geom, dataset.stat_type, xp)

        return _Pending(planes, kernel, be, finish)

    def _maps(self, stat, extra, grouped, out_geom, stat_type, xp) -> ExcessMaps:
        mask = grouped.mask
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            # ts and n_sig once (the statistic's properties recompute on access)
            n_sig = stat.n_sig
            ts = stat.ts
            values = {
                "npred": stat.n_on,
                "npred_excess": n_sig,
                "npred_background": stat.n_bkg,
                "npred_excess_err": stat.error * self.n_sigma,
                "ts": ts,
                "sqrt_ts": xp.sign(n_sig) * xp.sqrt(ts),
            }
            if "errn-errp" in self._selection:
                values["npred_excess_errn"] = stat.compute_errn(self.n_sigma)
                values["npred_excess_errp"] = stat.compute_errp(self.n_sigma)
            if "ul" in self._selection:
                values["npred_excess_ul"] = stat.compute_upper_limit(self.n_sigma_ul)
            values.update({k: v for k, v in extra.items() if k in self._selection})

        maps = {}
        for name, data in values.items():
            if grouped.masked:
                data = xp.where(mask, data, xp.nan)
            maps[name] = Map.from_geom(out_geom, data=data.reshape(out_geom.data_shape))
        maps["counts"] = maps["npred"]
        meta = {
            "correlation_radius": f"{self._radius:g} deg",
            "n_sigma": self.n_sigma,
            "n_sigma_ul": self.n_sigma_ul,
            "stat_type": stat_type,
            "n_nonfinite": grouped.n_nonfinite,
        }
        return ExcessMaps(maps, meta=meta)

    def _wstat(self, grouped, mask, xp):
        """The on/off planes to convolve and the WStat statistic from their convolution."""
        ds = grouped.dataset
        if ds.counts_off is None or ds.acceptance is None or ds.acceptance_off is None:
            raise ValueError("an on/off dataset needs counts_off, acceptance and acceptance_off")
        counts_off = grouped.sum(ds.counts_off)
        acceptance = grouped.sum(ds.acceptance)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            # (over: an inf acceptance makes alpha the largest float, and alpha *
            # counts_off overflows; such pixels are left out of the sums)
            # gammapy's resample_energy_axis: acceptance_off of the group keeps the
            # group's background alpha * counts_off
            norm = grouped.sum(ds.background)
            acceptance_off = acceptance * counts_off / norm
            alpha_group = xp.nan_to_num(acceptance / acceptance_off)
        n_on_in = grouped.apply_mask(grouped.counts)
        n_off_in = grouped.apply_mask(counts_off)
        extra = {"acceptance_on": acceptance * mask, "acceptance_off": acceptance_off * mask}
        if self.correlate_off:
            background = alpha_group * counts_off * mask
            background = xp.where(acceptance_off == 0, 0.0, background)
            support = (n_off_in != 0).astype(xp.float64)
            planes = xp.stack([n_on_in, n_off_in, background, support])

            def make_stat(conv):
                # Where no off count lies under the disk, n_off and the background are
                # exactly 0 (alpha undefined, NaN), not FFT round-off of +-1e-15 whose
                # ratio would be an arbitrary alpha and a spurious significance.
                empty = xp.rint(conv[3]) == 0
                n_on = xp.rint(conv[0])
                n_off = xp.where(empty, 0.0, conv[1])
                with np.errstate(invalid="ignore", divide="ignore"):
                    alpha = xp.where(empty, 0.0, conv[2]) / n_off
                return WStatCountsStatistic(n_on, n_off, alpha), {**extra, "alpha": alpha}
        else:
            planes = xp.stack([n_on_in, acceptance * mask])

            def make_stat(conv):
                n_on, n_off = xp.rint(conv[0]), n_off_in
                with np.errstate(invalid="ignore", divide="ignore"):
                    alpha = conv[1] / (acceptance_off * mask)
                return WStatCountsStatistic(n_on, n_off, alpha), {**extra, "alpha": alpha}

        return planes, make_stat


class _Pending:
    """One dataset between preparation and convolution: ``planes`` (k, groups, ny,
    nx) to convolve with ``kernel``, and ``finish(conv)`` to make its maps."""

    __slots__ = ("planes", "kernel", "backend", "finish")

    def __init__(self, planes, kernel, backend, finish):
        self.planes = planes
        self.kernel = kernel
        self.backend = backend
        self.finish = finish


def _batches(members, pending, max_batch_bytes):
    """Split ``members`` into runs whose planes' transforms fit ``max_batch_bytes``."""
    if max_batch_bytes is None:
        return [members]
    out, current, size = [], [], 0
    for i in members:
        planes = pending[i].planes
        cost = 2 * planes.nbytes + pending[i].kernel.size * 16 * planes.shape[0]
        if current and size + cost > max_batch_bytes:
            out.append(current)
            current, size = [], 0
        current.append(i)
        size += cost
    if current:
        out.append(current)
    return out


def excess_map(
    counts,
    background=None,
    *,
    counts_off=None,
    acceptance=None,
    acceptance_off=None,
    alpha=None,
    mask_safe=None,
    mask_fit=None,
    correlation_radius="0.1 deg",
    **kwargs,
) -> ExcessMaps:
    """Significance maps from maps: the function form of :class:`ExcessMapEstimator`.

    Known background: ``excess_map(counts, background)``.  On/off data:
    ``excess_map(counts, counts_off=..., acceptance=..., acceptance_off=...)`` or
    ``excess_map(counts, counts_off=..., alpha=...)`` (``alpha = acceptance_on /
    acceptance_off``).  Masks, ``correlation_radius`` and the estimator's other
    keywords (``n_sigma``, ``selection_optional``, ``energy_edges``, ...) as in
    :class:`ExcessMapEstimator`.
    """
    counts = as_map(counts, "counts")
    mask_safe = None if mask_safe is None else as_map(mask_safe, "mask_safe", backend=counts.backend)
    mask_fit = None if mask_fit is None else as_map(mask_fit, "mask_fit", backend=counts.backend)
    onoff = counts_off is not None or alpha is not None or acceptance_off is not None
    if onoff and background is not None:
        raise ValueError("give either background (known background, Cash) or counts_off and alpha/acceptances (on/off), not both")
    estimator = ExcessMapEstimator(correlation_radius=correlation_radius, **kwargs)
    if not onoff:
        if background is None:
            raise ValueError("excess_map needs background= (Cash) or counts_off= with alpha= or acceptances (WStat)")
        dataset = MapDataset(counts, background=_as_map(background, counts, "background"), mask_safe=mask_safe, mask_fit=mask_fit)
        return estimator.run(dataset)
    if counts_off is None:
        raise ValueError("on/off significance needs counts_off")
    if alpha is not None:
        if acceptance is not None or acceptance_off is not None:
            raise ValueError("give alpha or acceptance/acceptance_off, not both")
        acceptance = _as_map(alpha, counts, "alpha")
        acceptance_off = Map.from_geom(counts.geom, data=counts.backend.xp.ones(counts.geom.data_shape))
    elif acceptance is None or acceptance_off is None:
        raise ValueError("on/off significance needs alpha= or both acceptance= and acceptance_off=")
    dataset = MapDatasetOnOff(
        counts,
        counts_off=_as_map(counts_off, counts, "counts_off"),
        acceptance=_as_map(acceptance, counts, "acceptance"),
        acceptance_off=_as_map(acceptance_off, counts, "acceptance_off"),
        mask_safe=mask_safe,
        mask_fit=mask_fit,
    )
    return estimator.run(dataset)


# ----------------------------------------------------------------------------- helpers


def _as_map(value, like, name):
    """A Map on ``like``'s geometry from a Map, an array or a scalar."""
    if isinstance(value, Map) or is_gammapy_object(value):
        return as_map(value, name, backend=like.backend)
    xp = like.backend.xp
    data = value if hasattr(value, "__cuda_array_interface__") else like.backend.asarray(value)
    if data.ndim == 0:
        return Map.from_geom(like.geom, data=xp.broadcast_to(data.astype(xp.float64), like.geom.data_shape).copy())
    if tuple(data.shape) != tuple(like.geom.data_shape):
        raise ValueError(f"{name} has shape {tuple(data.shape)}, the counts map {tuple(like.geom.data_shape)}")
    return Map.from_geom(like.geom, data=data)


def _energy_groups(geom, energy_edges):
    """``[(start, stop), ...]`` bin groups of the non-spatial axis and the output geom."""
    if not geom.axes:
        if energy_edges is not None:
            raise ValueError("energy_edges given but the dataset has no energy axis")
        return None, geom
    if len(geom.axes) > 1:
        raise ValueError(f"datasets with more than one non-spatial axis are not supported: {geom.axes_names}")
    axis = geom.axes[0]
    edges = axis.edges
    if energy_edges is None:
        groups = [(0, axis.nbin)]
    elif isinstance(energy_edges, str):
        if energy_edges != "bins":
            raise ValueError(f"energy_edges must be None, 'bins' or a list of energies, got {energy_edges!r}")
        groups = [(i, i + 1) for i in range(axis.nbin)]
    else:
        target = np.atleast_1d(_energies(energy_edges, edges.unit))
        if target.size < 2 or not np.all(np.diff(target) > 0):
            raise ValueError(f"energy_edges must be at least two increasing energies, got {energy_edges!r}")
        # gammapy's group_table: snap each edge to the nearest bin edge, drop
        # what lies outside the requested range (then whole bins by index, where
        # gammapy's resample_axis re-digitizes floats; see the module docstring)
        pix = np.clip(axis.coord_to_pix(target * edges.unit), -0.5, axis.nbin - 0.5)
        idx = np.unique(np.round(pix + 0.5)).astype(int)
        groups = [(int(a), int(b)) for a, b in zip(idx[:-1], idx[1:]) if b > a]
        if not groups:
            raise ValueError(
                f"energy_edges {energy_edges!r} select no bin of the dataset axis "
                f"({edges[0]:.4g} to {edges[-1]:.4g})"
            )
    new_edges = edges[[groups[0][0]] + [g[1] for g in groups]]
    new_axis = MapAxis.from_edges(new_edges, interp=axis.interp, name=axis.name)
    return groups, geom.to_image().to_cube([new_axis])


def _energies(value, unit):
    import astropy.units as u  # noqa: PLC0415

    try:
        return u.Quantity(value).to_value(unit)
    except (u.UnitsError, TypeError, ValueError) as exc:
        raise ValueError(f"energy_edges must be energies convertible to {unit}, got {value!r}") from exc


class _GroupedData:
    """The dataset's maps summed over energy groups with ``mask_safe`` weights, as
    ``(n_groups, ny, nx)`` float64 arrays; ``mask`` is the group mask."""

    def __init__(self, dataset, groups, xp):
        self.dataset = dataset
        self.groups = groups
        self.xp = xp
        common_backend(*dataset.maps.values(), op="ExcessMapEstimator")
        ms = dataset.mask_safe
        self._weights = None if ms is None else ms.data
        # non-finite pixels leave every sum, in every input (the statistic needs
        # counts and background from the same pixels); the output mask stays
        onoff = isinstance(dataset, MapDatasetOnOff)
        names = ("counts_off", "acceptance", "acceptance_off") if onoff else ("background",)
        inputs = {"counts": dataset.counts}
        inputs.update({k: getattr(dataset, k) for k in names})
        check = _NonFinite(
            {k: None if v is None else v.data for k, v in inputs.items()}, "ExcessMapEstimator",
            within=self._weights,
        )
        self.n_nonfinite = check.counts
        if check.finite is not None:
            self._weights = check.finite if self._weights is None else (self._weights != 0) & check.finite
        self.counts = self.sum(dataset.counts)
        mask = self._any(ms) if ms is not None else None
        if dataset.mask_fit is not None:
            fit = self._any(dataset.mask_fit)
            mask = fit if mask is None else mask & fit
        self.masked = mask is not None  # False: every pixel valid, skip the mask products
        if mask is None:
            mask = xp.ones(self.counts.shape, dtype=bool)
        self.mask = mask

    def apply_mask(self, data):
        """``data * mask`` (a no-op without masks)."""
        return data * self.mask if self.masked else data

    def _planes(self, data):
        return data[None] if self.groups is None else data

    def sum(self, m):
        xp = self.xp
        data = self._planes(m.data).astype(xp.float64)
        if self._weights is not None:
            # where(), not a product: NaN or inf in unsafe bins must not reach the FFT
            data = xp.where(self._planes(self._weights), data, 0.0)
        if self.groups is None:
            return data
        return xp.stack([data[a:b].sum(axis=0) for a, b in self.groups])

    def _any(self, m):
        xp = self.xp
        data = self._planes(m.data).astype(bool)
        if self.groups is None:
            return data
        return xp.stack([data[a:b].any(axis=0) for a, b in self.groups])
