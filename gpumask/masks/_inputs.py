"""Checks of the inputs of the mask tools: Maps or arrays, connectivity, thresholds, amounts.

Shared by :mod:`gpumask.masks.morphology` (dilation, erosion), :mod:`gpumask.masks._labels`
(labels, holes, small regions, hysteresis) and :mod:`gpumask.masks.significance`.  Every
check raises a ValueError (TypeError for a wrong type) naming the bad value and what is
accepted.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from astropy import units as u

from ..backend import is_device_array
from ..sky.bridge import as_map, is_gammapy_object, qualified_name
from ..sky.maps import Map


def _unwrap(obj, func):
    """``(data, map_or_None)`` of a Map (gpumask or gammapy) or a numpy/cupy array."""
    if is_gammapy_object(obj):
        obj = as_map(obj, "input")
    if isinstance(obj, Map):
        return obj.data, obj
    if isinstance(obj, np.ndarray) or is_device_array(obj):
        if obj.ndim < 2:
            raise ValueError(
                f"{func} needs an image of 2 or more dimensions (..., ny, nx), got shape {obj.shape}"
            )
        return obj, None
    raise TypeError(f"{func} takes a gpumask Map, a gammapy WcsNDMap or a numpy/cupy array, got {qualified_name(obj)}")


def _wrap(data, template):
    """A Map on ``template``'s geometry (keeping its meta), or the bare array."""
    if template is None:
        return data
    return Map(template.geom, data, unit="", meta=dict(template.meta))


def _mask_input(mask, func):
    data, template = _unwrap(mask, func)
    if data.dtype != np.bool_:
        what = "map" if template is not None else "array"
        raise ValueError(
            f"{func} needs a boolean mask (True = used, False = excluded), got a {what} of dtype "
            f"{data.dtype}; make one with a comparison (e.g. `m > 0`) or `.astype(bool)`"
        )
    return data, template


def _image_input(image, func, name="image"):
    data, template = _unwrap(image, func)
    if data.dtype == np.bool_ or data.dtype.kind not in "iuf":
        raise ValueError(f"{func} needs a real-valued {name} (int or float), got dtype {data.dtype}")
    return data, template


def _check_connectivity(connectivity):
    if isinstance(connectivity, bool) or connectivity not in (1, 2):
        raise ValueError(
            f"connectivity must be 1 (4 neighbours, edges) or 2 (8 neighbours, edges and corners), "
            f"got {connectivity!r}"
        )
    return int(connectivity)


def _check_threshold(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number in the image's unit, got {value!r}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN")
    return value


def _parse_amount(value, name, unit, kind, example, pixel_units):
    """``(number, "px")`` from a plain number or a pixel Quantity, or
    ``(number in unit, unit)`` from a str/Quantity equivalent to ``unit``."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a number of pixels or {kind}, got {value!r}")
    if isinstance(value, numbers.Real):
        number, got = float(value), "px"
    elif isinstance(value, (str, u.Quantity)):
        try:
            quantity = u.Quantity(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number of pixels or {kind} like {example}, got {value!r}") from None
        if np.ndim(quantity) != 0:
            raise ValueError(f"{name} must be a single value, got {value!r}")
        if quantity.unit.is_equivalent(unit):
            number, got = float(quantity.to_value(unit)), unit.to_string()
        elif quantity.unit in pixel_units:
            number, got = float(quantity.value), "px"
        else:
            raise ValueError(
                f"{name} must be {kind} (e.g. {example}) or a number of pixels, got unit "
                f"{quantity.unit} in {value!r}"
            )
    else:
        raise ValueError(f"{name} must be a number of pixels or {kind} (str or Quantity), got {value!r}")
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be finite and not negative, got {value!r}")
    return number, got
