"""Exclusion masks from significance maps: a threshold, or whole excesses by hysteresis.

The significance itself comes from :mod:`gpumask.stats` (``ExcessMapEstimator``);
this module turns it into a mask with the connected-component tools of
:mod:`gpumask.masks.morphology`, on the map's backend.
"""

from __future__ import annotations

from ..backend import backend_of, to_host
from ._labels import _label_stack
from .morphology import _check_connectivity, _check_threshold, _hysteresis, _image_input, _wrap

__all__ = ["exclusion_from_significance"]

_NAN_POLICIES = ("keep", "exclude", "raise")


def exclusion_from_significance(sqrt_ts, threshold=5.0, *, low=None, nan="keep", connectivity=1, explain=False):
    """Exclusion mask from a significance map, in gammapy's convention.

    True = usable for the background, False = excluded.  Without ``low``, the
    pixels with ``sqrt_ts >= threshold`` are excluded (the gammapy tutorial's
    ``mask = sqrt_ts < 5``).  With ``low``, whole excesses are excluded: every
    region of pixels with ``sqrt_ts >= low`` (connected with ``connectivity``)
    that holds a pixel with ``sqrt_ts >= threshold``.  Both comparisons are
    inclusive, so ``low=threshold`` gives the plain threshold; scikit-image's
    ``apply_hysteresis_threshold(sqrt_ts, low, threshold)`` compares strictly
    (``>``) and differs only on pixels exactly equal to ``low`` or ``threshold``.

    Parameters
    ----------
    sqrt_ts : `~gpumask.Map` or array
        Significance, shape ``(..., ny, nx)``; leading axes are independent planes.
    threshold : float
        Pixels at or above it are excluded (and seed the regions when ``low`` is given).
    low : float, optional
        Lower threshold of the hysteresis, ``low <= threshold``.
    nan : {"keep", "exclude", "raise"}
        NaN pixels (those the estimator masked): "keep" (default) makes them
        usable (gammapy's tutorial sets them True), "exclude" excludes them,
        "raise" raises ValueError if there is any.  NaN pixels never seed or
        connect regions.  A NaN is always a local matter: gpumask's estimators
        give NaN only where their masks say so (outside ``mask_safe``), never
        because an input pixel was NaN or infinite -- they leave such a pixel
        out of their sums and its neighbours' values (and the pixel's own,
        from the rest of its disk) stay finite, see
        :class:`~gpumask.NonFiniteInputWarning`.  In gammapy one bad input pixel
        made every ``sqrt_ts`` pixel NaN, so with "keep" the mask excluded
        nothing; with gpumask the mask changes only within the correlation
        radius of the bad pixel.
    connectivity : {1, 2}
        4- or 8-neighbour regions for ``low`` (and the blobs of ``explain``).
    explain : bool
        Also record why each pixel is excluded (``mask.provenance``, needs a
        Map): one "significance blob" component per connected excluded region,
        strongest peak first, named by its peak and position (e.g. ``blob 1:
        peak 12.31 sigma at (0.012, -0.046)``); NaN pixels excluded by
        ``nan="exclude"`` form one component of kind "mask".

    Returns
    -------
    `~gpumask.Map` or array
        Boolean, same geometry/shape and backend as ``sqrt_ts``.  Nothing is copied
        to the host, except one count with ``nan="raise"``.
    """
    data, template = _image_input(sqrt_ts, "exclusion_from_significance", name="sqrt_ts map")
    threshold = _check_threshold(threshold, "threshold")
    if low is not None:
        low = _check_threshold(low, "low")
        if low > threshold:
            raise ValueError(f"low ({low}) must not be above threshold ({threshold})")
    if not isinstance(nan, str) or nan not in _NAN_POLICIES:
        raise ValueError(f"nan must be one of {_NAN_POLICIES}, got {nan!r}")
    connectivity = _check_connectivity(connectivity)
    be = backend_of(data)
    xp = be.xp
    if nan == "raise":
        n_nan = int(to_host(xp.count_nonzero(xp.isnan(data))))
        if n_nan:
            raise ValueError(
                f"sqrt_ts has {n_nan} NaN pixels (nan='raise'); use nan='keep' to count them as "
                "usable or nan='exclude' to exclude them"
            )
    if explain and template is None:
        raise TypeError("explain=True needs a Map (the provenance lives on its geometry), got an array")
    seeds = data >= threshold
    blobs = None
    if low is None:
        excluded = seeds
    elif explain:  # the hysteresis's own labels are the blobs
        labels, n = _label_stack(be, data >= low, connectivity)
        seeded = xp.zeros(n + 1, dtype=bool)
        seeded[xp.where(seeds, labels, 0)] = True
        seeded[0] = False
        excluded = seeded[labels]
        blobs = (xp.where(excluded, labels, 0), n)
    else:
        excluded = _hysteresis(be, data >= low, seeds, connectivity)
    usable = ~excluded
    if nan == "exclude":
        usable &= ~xp.isnan(data)
    out = _wrap(usable, template)
    if explain:
        from ._explain import blob_provenance, carry  # noqa: PLC0415

        rule = (f"sqrt_ts >= {threshold:g}" if low is None else
                f"hysteresis: sqrt_ts >= {low:g} connected to a pixel >= {threshold:g}")
        prov = blob_provenance(template.geom, data, excluded, be, connectivity, rule, labels=blobs)
        if nan == "exclude":  # NaN pixels excluded without a blob: one "mask" component
            out = carry(_wrap(~excluded, template)._explained(prov), out, "NaN significance (nan='exclude')")
        else:
            out._explained(prov)
    return out
