"""Connected-component tools of binary morphology: labels, hole filling, small-region
removal and hysteresis thresholding, on the data's backend.

Each is one connected-component labelling (``scipy.ndimage.label`` /
``cupyx.scipy.ndimage.label``, O(N)) and per-label table look-ups; see
:mod:`gpumask.masks.morphology` (which re-exports these functions) for the
algorithms, boundaries and residency.  Leading (non-spatial) axes are independent
planes: nothing connects across them.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u

from ..backend import backend_of
from ._inputs import _check_connectivity, _check_threshold, _image_input, _mask_input, _parse_amount, _wrap

__all__ = ["fill_holes", "hysteresis_threshold", "label", "remove_small_regions"]


# ----------------------------------------------------------------------------- labels


def _structure(ndim, connectivity):
    """3^ndim structure connecting pixels within each 2-D plane only."""
    from scipy.ndimage import generate_binary_structure  # noqa: PLC0415 - host-side helper

    plane = generate_binary_structure(2, connectivity)
    out = np.zeros((3,) * ndim, dtype=bool)
    out[(1,) * (ndim - 2)] = plane
    return out


def _label_stack(be, m, connectivity):
    """Labels of ``m`` with no connection across planes, numbered in raster order
    over the whole stack, and their number (a Python int; cupyx reads it back)."""
    labels, n = be.ndimage.label(m, structure=_structure(m.ndim, connectivity))
    return labels, int(n)


def _table(xp, n):
    return xp.zeros(n + 1, dtype=bool)


def label(mask, *, connectivity=1):
    """Connected components of the True pixels, plane by plane.

    Parameters
    ----------
    mask : `~gpumask.Map` or array
        Boolean, shape ``(..., ny, nx)``.
    connectivity : {1, 2}
        1: pixels sharing an edge are connected (4 neighbours); 2: also those
        sharing a corner (8 neighbours).

    Returns
    -------
    `~gpumask.Map` or array
        int32 labels, 0 on False pixels, 1..n on the n components of each 2-D
        plane (numbering restarts in every plane), same backend as ``mask``.
        Each plane equals ``scipy.ndimage.label(plane,
        generate_binary_structure(2, connectivity))[0]``: components are numbered
        in the raster order of their first pixel.

    Notes
    -----
    The number of components is not returned, as it would have to be copied to
    the host: it is ``labels.max()`` (per plane ``labels.max(axis=(-2, -1))``), a
    device scalar until you convert it.  On CuPy, ``cupyx.scipy.ndimage.label``
    synchronises the device once (it reads the count back internally).
    """
    data, template = _mask_input(mask, "label")
    connectivity = _check_connectivity(connectivity)
    be = backend_of(data)
    xp = be.xp
    labels, _ = _label_stack(be, data, connectivity)
    labels = labels.astype(np.int32, copy=False)
    if data.ndim > 2:
        # stack labels are in raster order, plane after plane: shift each plane's to 1..n
        big = np.iinfo(np.int32).max
        first = xp.where(labels > 0, labels, big).min(axis=(-2, -1), keepdims=True)
        labels = xp.where(labels > 0, labels - (first - 1), 0).astype(np.int32, copy=False)
    return _wrap(labels, template)


def fill_holes(mask):
    """Fill the holes of the True regions, plane by plane.

    A hole is a set of False pixels not 4-connected (through False pixels) to the
    map edge; filling sets it True.  Equal to ``scipy.ndimage.binary_fill_holes``
    on every 2-D plane, computed with one labelling of ``~mask`` (O(N)) instead
    of scipy's iterated dilation from the border.

    Parameters
    ----------
    mask : `~gpumask.Map` or array
        Boolean, shape ``(..., ny, nx)``.

    Returns
    -------
    `~gpumask.Map` or array
        Boolean, same geometry/shape and backend as ``mask``.
    """
    data, template = _mask_input(mask, "fill_holes")
    be = backend_of(data)
    labels, n = _label_stack(be, ~data, 1)
    touches_edge = _table(be.xp, n)
    for edge in (labels[..., 0, :], labels[..., -1, :], labels[..., :, 0], labels[..., :, -1]):
        touches_edge[edge] = True
    touches_edge[0] = False  # label 0: the True pixels themselves
    return _carry(template, _wrap(~touches_edge[labels], template), "fill_holes")


def _parse_area(min_area):
    """``(value, "px")`` or ``(value_sr, "sr")``."""
    return _parse_amount(
        min_area, "min_area", u.sr, "a solid angle", "'1e-5 sr' or '0.01 deg2'",
        (u.dimensionless_unscaled, u.pix, u.pix**2),
    )


def _component_sums(be, labels, n, weights):
    """Per-label sums of ``weights`` (float64; pixel counts when None), length n + 1."""
    xp = be.xp
    flat = labels.ravel()
    if be.name == "numpy":
        w = None if weights is None else np.broadcast_to(weights, labels.shape).ravel()
        return np.bincount(flat, weights=w, minlength=n + 1).astype(np.float64, copy=False)
    # cupy.bincount synchronises (it reads max(labels) back); add.at does not
    out = xp.zeros(n + 1, dtype=xp.float64)
    if weights is None:
        values = xp.ones(flat.shape, dtype=xp.float64)
    else:
        values = xp.ascontiguousarray(xp.broadcast_to(weights, labels.shape)).ravel()
    xp.add.at(out, flat, values)  # CuPy has ufunc.at since 12.1 (gpumask needs 13)
    return out


def remove_small_regions(mask, min_area, *, connectivity=1):
    """Set to False the True regions smaller than ``min_area``, plane by plane.

    A region is a connected component of True pixels; it is removed when its area
    is strictly smaller than ``min_area`` (regions of exactly ``min_area`` stay).
    For pixel counts this equals scikit-image 0.26's
    ``remove_small_objects(mask, max_size=ceil(min_area) - 1,
    connectivity=connectivity)`` (its ``max_size`` removes sizes ``<=``
    ``max_size``; the deprecated ``min_size=k`` removed sizes ``< k``).

    Parameters
    ----------
    mask : `~gpumask.Map` or array
        Boolean, shape ``(..., ny, nx)``.
    min_area : float, str or `~astropy.units.Quantity`
        A number (or dimensionless/pix Quantity) is a pixel count; a solid angle
        (``"1e-5 sr"``, ``"0.01 deg2"``) is compared with the sum of the regions'
        pixel solid angles (:meth:`~gpumask.WcsGeom.solid_angle`; pixels outside
        the projection count as 0), which needs a Map.
    connectivity : {1, 2}
        4- or 8-neighbour regions.

    Returns
    -------
    `~gpumask.Map` or array
        Boolean, same geometry/shape and backend as ``mask``.

    Notes
    -----
    Solid-angle sums are float64 and their rounding depends on the summation
    order (NumPy's bincount and CuPy's atomics differ): a region whose area equals
    ``min_area`` to 1e-15 may be kept on one backend and removed on the other.
    """
    data, template = _mask_input(mask, "remove_small_regions")
    connectivity = _check_connectivity(connectivity)
    value, unit = _parse_area(min_area)
    if unit == "sr" and template is None:
        raise ValueError(
            f"min_area {min_area!r} is a solid angle, which needs a Map (its geometry gives the "
            "pixel solid angles); for a raw array give a number of pixels"
        )
    be = backend_of(data)
    xp = be.xp
    labels, n = _label_stack(be, data, connectivity)
    weights = None
    if unit == "sr":
        omega = template.geom.solid_angle(backend=be)
        weights = xp.where(xp.isfinite(omega), omega, 0.0)
    areas = _component_sums(be, labels, n, weights)
    keep = areas >= value
    keep[0] = False
    out = _wrap(keep[labels], template)
    return _carry(template, out, f"remove_small_regions: usable islands under {min_area}")


# ----------------------------------------------------------------------------- thresholds


def _carry(template, out, detail):
    from ._explain import carry  # noqa: PLC0415 - _explain imports this module's users

    return carry(template, out, detail)


def _hysteresis(be, low_mask, high_mask, connectivity):
    """Components of ``low_mask`` holding a pixel of ``high_mask`` (a subset)."""
    xp = be.xp
    labels, n = _label_stack(be, low_mask, connectivity)
    seeded = _table(xp, n)
    seeded[xp.where(high_mask, labels, 0)] = True
    seeded[0] = False
    return seeded[labels]


def hysteresis_threshold(image, low, high, *, connectivity=1):
    """Pixels above ``low`` connected to a pixel above ``high``, plane by plane.

    Equal to ``skimage.filters.apply_hysteresis_threshold(image, low, high)``
    (strict comparisons: ``image > low``, ``image > high``; NaN is above nothing)
    on every 2-D plane for ``connectivity=1``, which is scikit-image's (4
    neighbours); ``connectivity=2`` connects corners too.

    Parameters
    ----------
    image : `~gpumask.Map` or array
        Real-valued, shape ``(..., ny, nx)``.
    low, high : float
        Thresholds in the image's unit, ``low <= high`` (scikit-image silently
        clips ``low`` to ``high``; this raises).
    connectivity : {1, 2}

    Returns
    -------
    `~gpumask.Map` or array
        Boolean (True = above the thresholds), same geometry/shape and backend.
    """
    data, template = _image_input(image, "hysteresis_threshold")
    low = _check_threshold(low, "low")
    high = _check_threshold(high, "high")
    if low > high:
        raise ValueError(f"low ({low}) must not be above high ({high})")
    connectivity = _check_connectivity(connectivity)
    be = backend_of(data)
    return _wrap(_hysteresis(be, data > low, data > high, connectivity), template)
