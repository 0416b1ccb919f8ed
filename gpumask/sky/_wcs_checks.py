"""Checks of WCS headers and WCS objects before gpumask (or astropy) relies on them.

Split from :mod:`gpumask.sky.geom`: the numbers of a celestial WCS must be finite
reals and its pixel sizes within :data:`MIN_PIXEL_SIZE_DEG` and
:data:`MAX_PIXEL_SIZE_DEG`; the celestial part of a header is cut out before astropy
parses it (a WCSAXES of 10^9 made it hang).
"""

from __future__ import annotations

import math
import numbers
import re

import numpy as np
from astropy.io import fits

#: Accepted pixel sizes in deg.  Below 1e-10 deg (0.36 micro-arcsec) neighbouring
#: pixel centres are no longer told apart by float64 sky coordinates (the spacing of
#: doubles near 360 deg is 6e-14 deg); above 360 deg one pixel is larger than the sky.
MIN_PIXEL_SIZE_DEG = 1e-10
MAX_PIXEL_SIZE_DEG = 360.0
# Header keywords of the celestial WCS that must hold finite numbers.
_WCS_NUMERIC_KEYS = re.compile(
    r"(CRVAL[12]|CRPIX[12]|CDELT[12]|CROTA[12]|CD[12]_[12]|PC[12]_[12]|PV[12]_\d+|LONPOLE|LATPOLE)"
)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _finite_real(value) -> bool:
    """A real number (not a bool) that is finite as a float (a huge int is not)."""
    if not _is_real(value):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


_INDEXED_KEY = re.compile(r"(?:CTYPE|CUNIT|CRVAL|CRPIX|CDELT|CROTA|CRDER|CSYER|CNAME)(\d+)[A-Z]?")
_MATRIX_KEY = re.compile(r"(?:PC|CD|PV|PS)(\d+)_(\d+)[A-Z]?")


def _celestial_header(header) -> fits.Header:
    """The header's WCS keywords of pixel axes 1 and 2 only, with ``WCSAXES = 2``.

    wcslib sizes its work by the largest axis index it sees (``WCSAXES`` or a
    ``CTYPE7408`` card) and then spends time cubic in it: a hostile
    ``WCSAXES = 7408`` took minutes.  The celestial axes are all a map needs
    (the others come from the bands table).
    """
    out = fits.Header()
    for card in header.cards:
        key = card.keyword
        if key in ("WCSAXES", "NAXIS") or key.startswith("NAXIS") or key in ("", "COMMENT", "HISTORY"):
            continue
        indexed = _INDEXED_KEY.fullmatch(key)
        if indexed and int(indexed.group(1)) not in (1, 2):
            continue
        matrix = _MATRIX_KEY.fullmatch(key)
        if matrix and (int(matrix.group(1)) not in (1, 2)
                       or (key.startswith(("PC", "CD")) and int(matrix.group(2)) not in (1, 2))):
            continue
        if matrix is None and indexed is None and re.search(r"\d{3,}", key):
            continue  # other indexed keywords with absurd indices (e.g. ``PROJP999``)
        out.append(card)
    out.insert(0, ("WCSAXES", 2))
    out.insert(0, ("NAXIS2", header.get("NAXIS2", 1) if _is_real(header.get("NAXIS2")) else 1))
    out.insert(0, ("NAXIS1", header.get("NAXIS1", 1) if _is_real(header.get("NAXIS1")) else 1))
    out.insert(0, ("NAXIS", 2))
    return out


def _check_header_numbers(header):
    """The celestial WCS keywords of ``header`` hold finite numbers (astropy reads
    an unparsable or non-numeric ``CDELT1`` as its default, 1 deg, silently) and
    its type keywords strings."""
    for key in header.keys():
        numeric = _WCS_NUMERIC_KEYS.fullmatch(key) is not None
        if not numeric and key not in ("CTYPE1", "CTYPE2", "CUNIT1", "CUNIT2", "RADESYS"):
            continue
        try:
            value = header[key]
        except Exception as exc:  # astropy's VerifyError for an unparsable card
            raise ValueError(f"card {key} is unparsable ({exc})") from None
        if not numeric and not isinstance(value, str):
            raise ValueError(f"{key} = {value!r} is not a string")
        if numeric and not _finite_real(value):
            raise ValueError(f"{key} = {value!r} is not a finite number")
        if key.startswith("CDELT") and value == 0 and "CD1_1" not in header and "CD2_2" not in header:
            raise ValueError(
                f"{key} = {value!r}: a pixel size of zero (accepted: pixel sizes from "
                f"{MIN_PIXEL_SIZE_DEG:g} to {MAX_PIXEL_SIZE_DEG:g} deg)"
            )


def _check_pixel_scales(wcs, header=None):
    """Pixel sizes (from CDELT, PC or CD) within the accepted range and a pixel
    area that is not zero."""
    with np.errstate(all="ignore"):  # inf * 0 in astropy's product: refused below
        matrix = np.asarray(wcs.pixel_scale_matrix, dtype=float)
    if header is not None and any(k in header for k in ("CD1_1", "CD1_2", "CD2_1", "CD2_2")):
        keys = ("CD1_1", "CD1_2", "CD2_1", "CD2_2")
        source = ", ".join(keys) + " = " + ", ".join(repr(header.get(k, 0.0)) for k in keys)
    elif header is not None:
        source = f"CDELT1 = {header.get('CDELT1', 1.0)!r}, CDELT2 = {header.get('CDELT2', 1.0)!r}"
        if any(k in header for k in ("PC1_1", "PC1_2", "PC2_1", "PC2_2")):
            source += " with the PC matrix"
    else:
        source = f"CDELT {list(wcs.wcs.cdelt)}"
    accepted = f"accepted: pixel sizes from {MIN_PIXEL_SIZE_DEG:g} to {MAX_PIXEL_SIZE_DEG:g} deg"
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"pixel scale matrix is not finite ({source}); {accepted}")
    with np.errstate(all="ignore"):
        scales = np.hypot(matrix[0], matrix[1])  # hypot: no overflow for huge entries
        for axis, scale in zip(("lon", "lat"), scales):
            if not MIN_PIXEL_SIZE_DEG <= scale <= MAX_PIXEL_SIZE_DEG:
                raise ValueError(f"pixel size along {axis} is {scale:g} deg ({source}); {accepted}")
        det = abs(matrix[0, 0] * matrix[1, 1] - matrix[0, 1] * matrix[1, 0])
        if not det >= 1e-6 * scales[0] * scales[1]:
            raise ValueError(f"pixels have (nearly) zero area: the pixel axes are parallel ({source})")


def _check_wcs_numbers(wcs):
    """The reference point and the pixel scales of a WCS are usable numbers."""
    for name, values in (("CRVAL", wcs.wcs.crval), ("CRPIX", wcs.wcs.crpix)):
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{name} must be finite numbers, got {list(values)}")
    _check_pixel_scales(wcs)


def _parse_wcsshape(text) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in str(text).strip().strip("()").split(",") if v.strip())
    except ValueError:
        raise ValueError(f"invalid WCSSHAPE {text!r}; expected '(nx,ny,...)'") from None
    if len(values) < 2:
        raise ValueError(f"invalid WCSSHAPE {text!r}; expected '(nx,ny,...)'")
    return values
