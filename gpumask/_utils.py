"""Small argument parsers shared by the public API (angles, pairs, paths)."""

from __future__ import annotations

import numbers
import os
from pathlib import Path

import numpy as np
from astropy import units as u

__all__ = ["parse_angle", "parse_angle_pair", "expand_user"]


def parse_angle(value, name: str = "angle", *, allow_zero=True, allow_negative=False) -> float:
    """An angle in degrees from a float (deg), a string ("0.3 deg", "5 arcmin"),
    a Quantity or an Angle.  Raises ValueError naming ``name`` and the bad value."""
    try:
        if isinstance(value, str):
            quantity = u.Quantity(value)
            if quantity.unit == u.dimensionless_unscaled:
                quantity = quantity * u.deg
        elif isinstance(value, u.Quantity):
            quantity = value
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            quantity = float(value) * u.deg
        else:
            raise TypeError
        deg = quantity.to_value(u.deg)
    except (TypeError, ValueError, u.UnitsError):
        raise ValueError(
            f"{name} must be an angle (a number in deg, a string like '0.3 deg', a Quantity "
            f"or an Angle), got {value!r}"
        ) from None
    if np.ndim(deg) != 0:
        raise ValueError(f"{name} must be a single angle, got {value!r}")
    deg = float(deg)
    if not np.isfinite(deg):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if deg < 0 and not allow_negative:
        raise ValueError(f"{name} must not be negative, got {value!r}")
    if deg == 0 and not allow_zero:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return deg


def parse_angle_pair(value, name: str = "angle", **kwargs) -> tuple[float, float]:
    """``(lon, lat)`` angles in degrees from one angle or a pair of angles."""
    if isinstance(value, (tuple, list)) or (
        isinstance(value, (np.ndarray, u.Quantity)) and np.ndim(value) == 1
    ):
        if len(value) != 2:
            raise ValueError(f"{name} must be one angle or a (lon, lat) pair, got {value!r}")
        return (
            parse_angle(value[0], f"{name}[0] (lon)", **kwargs),
            parse_angle(value[1], f"{name}[1] (lat)", **kwargs),
        )
    angle = parse_angle(value, name, **kwargs)
    return angle, angle


def expand_user(path) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded, as a Path.

    ``os.path.expanduser`` rather than ``Path.expanduser``: for an unknown user
    (``~0``) it leaves the path as it is instead of raising RuntimeError.
    """
    return Path(os.path.expanduser(os.fspath(path)))
